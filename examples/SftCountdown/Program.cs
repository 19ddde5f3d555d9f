// Supervised fine-tuning on Countdown through the library API, top to bottom.
//
//   dotnet run --project examples/SftCountdown -c Release                 # ~3 minutes on 2 cores
//   dotnet run --project examples/SftCountdown -c Release -- --tiny       # a few seconds (what CI runs)
//
// Make problems with worked solutions → build a character tokenizer and a small Llama-style
// model → SFT → greedy accuracy on held-out problems. Outputs land in runs/example-sft/.
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tasks;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Evaluation;
using Sharpen.Training.Sft;

namespace Sharpen.Examples;

public static class SftCountdown
{
    public static int Main(string[] args)
    {
        bool tiny = args.Contains("--tiny");
        string output = args.SkipWhile(a => a != "--out").Skip(1).FirstOrDefault() ?? "runs/example-sft";

        // 1. A task and its data: problems generated from a seed, each with a worked solution.
        var task = new CountdownTask(new CountdownOptions { MinNumbers = 3, MaxNumbers = 3 });
        var problems = task.Generate(tiny ? 300 : 20_500, seed: 1);
        var train = problems.Skip(tiny ? 50 : 500).Select(p => DatasetWriter.ToSftExample(task, p)).ToList();
        var heldOut = problems.Take(tiny ? 50 : 500).ToList();

        // 2. Tokenizer and model.
        var tokenizer = CharTokenizer.Create(task.Alphabet);
        using var model = new CausalLM(new ModelConfig
        {
            VocabSize = tokenizer.VocabSize, HiddenSize = tiny ? 32 : 192, IntermediateSize = tiny ? 64 : 512,
            NumHiddenLayers = tiny ? 1 : 4, NumAttentionHeads = tiny ? 2 : 6, NumKeyValueHeads = tiny ? 2 : 6,
            MaxPositionEmbeddings = 128, TieWordEmbeddings = true,
            EosTokenIds = [tokenizer.EosTokenId!.Value], PadTokenId = tokenizer.PadTokenId, BosTokenId = tokenizer.BosTokenId,
        }, seed: 1);

        // 3. SFT: loss on completion tokens only.
        var options = new SftOptions { MaxSteps = tiny ? 5 : 400, BatchSize = tiny ? 8 : 64, LearningRate = 2e-3, WarmupSteps = tiny ? 1 : 30, EvalEvery = 0, CheckpointEvery = 0 };
        var result = new SftTrainer(model, tokenizer, options) { Log = Console.WriteLine }.Run(train, [], output);

        // 4. Held-out greedy accuracy.
        var eval = Evaluator.Run(new RolloutEngine(model, tokenizer), task, heldOut, maxNewTokens: 48);
        Console.WriteLine($"{result.Steps} steps, final loss {result.FinalLoss:F3}; held-out greedy accuracy {eval.Accuracy:P1} (n={eval.N})");
        return 0;
    }
}
