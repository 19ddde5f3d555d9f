// GRPO with LoRA adapters and a reward of your own, through the library API, top to bottom.
//
//   dotnet run --project examples/GrpoLora -c Release                 # ~6 minutes on 2 cores
//   dotnet run --project examples/GrpoLora -c Release -- --tiny       # a few seconds (what CI runs)
//
// SFT a small model on Countdown → attach LoRA adapters (the base is frozen) → GRPO against the task's verifier plus a
// small bonus for short answers → held-out greedy accuracy before and after. Outputs land in runs/example-grpo-lora/:
// final/ is a plain Hugging Face folder (adapters merged) and final/adapter/ the adapters alone in PEFT's layout.
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tasks;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Evaluation;
using Sharpen.Training.Rl;
using Sharpen.Training.Sft;

namespace Sharpen.Examples;

public static class GrpoLora
{
    public static int Main(string[] args)
    {
        bool tiny = args.Contains("--tiny");
        string output = args.SkipWhile(a => a != "--out").Skip(1).FirstOrDefault() ?? "runs/example-grpo-lora";

        // 1. Task, data and a small model, fine-tuned on worked solutions (see examples/SftCountdown).
        var task = new CountdownTask(new CountdownOptions { MinNumbers = 3, MaxNumbers = 3, MaxNumber = 40 });
        var problems = task.Generate(tiny ? 300 : 25_000, seed: 1);
        var heldOut = problems.Take(tiny ? 20 : 500).ToList();
        var sft = problems.Skip(heldOut.Count).Take(tiny ? 200 : 20_000).Select(p => DatasetWriter.ToSftExample(task, p)).ToList();
        var rlPrompts = problems.Skip(heldOut.Count + sft.Count).Select(RlPrompt.From).ToList();   // problems SFT never saw
        var tokenizer = CharTokenizer.Create(task.Alphabet);
        using var model = new CausalLM(new ModelConfig
        {
            VocabSize = tokenizer.VocabSize, HiddenSize = tiny ? 32 : 192, IntermediateSize = tiny ? 64 : 512,
            NumHiddenLayers = tiny ? 1 : 4, NumAttentionHeads = tiny ? 2 : 6, NumKeyValueHeads = tiny ? 2 : 6,
            MaxPositionEmbeddings = 128, TieWordEmbeddings = true,
            EosTokenIds = [tokenizer.EosTokenId!.Value], PadTokenId = tokenizer.PadTokenId, BosTokenId = tokenizer.BosTokenId,
        }, seed: 1);
        new SftTrainer(model, tokenizer, new SftOptions { MaxSteps = tiny ? 5 : 400, BatchSize = tiny ? 8 : 64, LearningRate = 2e-3, WarmupSteps = tiny ? 1 : 30, EvalEvery = 0, CheckpointEvery = 0 })
            .Run(sft, [], Path.Combine(output, "sft"));
        var before = Evaluator.Run(new RolloutEngine(model, tokenizer), task, heldOut, maxNewTokens: 48);

        // 2. LoRA: rank-8 adapters on every projection; only they train, and the RL reference is the base with them off.
        model.AddLora(new LoraOptions { R = 8, Alpha = 16 }, seed: 1);

        // 3. Rewards: the verifier (1 for a correct answer) plus a bonus of your own; a delegate sees the prompt, the
        //    completion and the row's fields, and may return null for "not applicable". A reward served over HTTP in any
        //    language plugs in the same way: new HttpReward(new Uri("http://127.0.0.1:8000/score"), "judge").
        IReadOnlyList<WeightedReward> rewards =
        [
            new(new TaskReward(task)),
            new(new DelegateReward("short", c => c.CompletionTokens <= 24 ? 1.0 : 0.0), Weight: 0.1),
        ];

        // 4. GRPO. LoRA usually wants a larger learning rate than full fine-tuning.
        var options = RlOptions.Grpo() with
        {
            Iterations = tiny ? 2 : 40, PromptsPerIteration = tiny ? 4 : 64, SamplesPerPrompt = tiny ? 2 : 8, Temperature = 0.7,
            MaxNewTokens = 48, LearningRate = tiny ? 1e-3 : 5e-4, Beta = 0.01, EvalEvery = 0,
        };
        new RlTrainer(model, tokenizer, options, rewards) { Log = Console.WriteLine }.Run(rlPrompts, output);

        var after = Evaluator.Run(new RolloutEngine(model, tokenizer), task, heldOut, maxNewTokens: 48);
        long trained = model.TrainableParameters().Sum(p => p.numel());
        Console.WriteLine($"LoRA: {trained} of {model.ParameterCount()} parameters trained; held-out greedy accuracy {before.Accuracy:P1} → {after.Accuracy:P1} (n={after.N})");
        return 0;
    }
}
