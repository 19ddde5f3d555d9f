using Sharpen.Checkpoints;
using Sharpen.Cli.Commands;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tests.Cli;
using Sharpen.Training;
using static TorchSharp.torch;
using Sharpen.Recipes;
using Sharpen.Training.Preference;
using Sharpen.Training.Rl;
using Sharpen.Data;

namespace Sharpen.Tests.Training;

/// <summary>LoRA through the trainers: only the adapters move, the results load as plain models, and resume is exact.</summary>
[Collection("console")]
public class LoraTrainingTests
{
    static void Equal(Dictionary<string, float[]> a, Dictionary<string, float[]> b, double tol)
    {
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, x) in a)
            for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(x[i] - b[name][i]) <= tol, $"{name}[{i}]: {x[i]} vs {b[name][i]}");
    }

    static float[] Logits(CausalLM m)
    {
        using var _ = no_grad();
        return m.Forward(tensor(new long[] { 1, 5, 7, 3, 6 }).view(1, 5)).Logits.contiguous().data<float>().ToArray();
    }

    [Fact]
    public void An_sft_recipe_with_lora_trains_the_adapters_alone_and_resumes_exactly()
    {
        using var dir = new TempDir();
        var text = $"""
            kind: sft
            output: {dir.File("run")}
            model:
              init: {"{"} hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 96 {"}"}
              lora: {"{"} r: 4, alpha: 8, target_modules: [q_proj, v_proj, down_proj] {"}"}
            task: {"{"} name: countdown, min_numbers: 3, max_numbers: 3 {"}"}
            data: {"{"} train_problems: 120, test_problems: 10 {"}"}
            sft: {"{"} max_steps: 4, batch_size: 8, warmup_steps: 1, log_every: 1, checkpoint_every: 2, learning_rate: 0.01 {"}"}
            eval: {"{"} problems: 4, samples: 1, max_new_tokens: 8 {"}"}
            """;
        File.WriteAllText(dir.File("r.yaml"), text);
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.True(code == 0, err + output);
        var final = Path.Combine(dir.File("run"), "final");
        var firstAdapter = WeightValues.Of(Safetensors.Load(Path.Combine(final, "adapter", "adapter_model.safetensors")).Select(kv => (kv.Key, kv.Value)));
        Assert.Equal(6, firstAdapter.Count);   // A and B of q_proj, v_proj and down_proj in 1 layer
        Assert.Contains("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight", firstAdapter.Keys);

        // The frozen base: the same recipe without lora builds the model the run started from.
        var recipe = Recipe.Parse(text);
        var task = recipe.Task!.Build("r.yaml");
        var (fresh, _) = SftPipeline.LoadPolicy(recipe with { Model = recipe.Model with { Lora = null } }, task);
        using (fresh)
        {
            var start = WeightValues.Of(fresh.Weights());
            var loaded = HfCheckpoint.Load(final);
            using (loaded.Model)
            {
                var trained = WeightValues.Of(loaded.Model.Weights());
                foreach (var name in new[] { "model.embed_tokens.weight", "model.layers.0.self_attn.k_proj.weight", "model.layers.0.mlp.up_proj.weight", "model.norm.weight" })
                    Assert.Equal(start[name], trained[name]);   // not adapted: bit for bit the initial weights
                foreach (var name in new[] { "model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight" })
                    Assert.NotEqual(start[name], trained[name]);   // adapted: W + (alpha/r)·B·A with B moved off zero
                // The initial model plus the adapter folder computes what the merged final folder computes.
                HfCheckpoint.LoadAdapter(Path.Combine(final, "adapter"), fresh);
                var a = Logits(fresh);
                var b = Logits(loaded.Model);
                for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) < 1e-4, $"logit {i}: {a[i]} vs {b[i]}");
            }
        }

        // Resuming from the step-2 checkpoint (adapters and optimizer state; the base comes from the recipe) ends where the run ended.
        var (code2, output2, err2) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"), "--resume");
        Assert.True(code2 == 0, err2 + output2);
        Assert.Contains("resumed from", output2);
        Equal(firstAdapter, WeightValues.Of(Safetensors.Load(Path.Combine(final, "adapter", "adapter_model.safetensors")).Select(kv => (kv.Key, kv.Value))), 1e-6);
    }

    [Fact]
    public void Grpo_with_lora_learns_the_bandit()
    {
        using var dir = new TempDir();
        // Wider (32) and initialised at 0.2 rather than the bandit's 16 and 0.02: the lm_head stays frozen, and a logit can move at
        // most by |w_c − w_other|·|norm(h)| ≈ (0.2·√(2·32))·√32, about 9 here but about 0.3 for the bandit's model, where π(c)
        // could not reach 0.9 however the adapters trained.
        using var model = new CausalLM(Sharpen.Tests.Models.CausalLMTests.Tiny() with
            { VocabSize = Bandit.Tok.VocabSize, MaxPositionEmbeddings = 32, HiddenSize = 32, IntermediateSize = 48 }, seed: 1);
        var frozen = WeightValues.Of(model.Weights());
        model.AddLora(new LoraOptions { R = 4, Alpha = 8 }, seed: 2);
        var o = RlOptions.Grpo() with { Iterations = 40, PromptsPerIteration = 16, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 3e-2, Beta = 0.0, EvalEvery = 0 };
        var prompts = Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string>()), 16).ToList();
        double before = Bandit.ProbabilityOfC(model);
        new RlTrainer(model, Bandit.Tok, o, Bandit.RewardC).Run(prompts, dir.Path);
        double after = Bandit.ProbabilityOfC(model);
        Assert.True(before < 0.5 && after > 0.9, $"p(c) went from {before:F3} to {after:F3}");
        var p = model.named_parameters().Where(x => !x.name.Contains(".lora_")).ToDictionary(x => x.name, x => x.parameter.detach().contiguous().data<float>().ToArray());
        foreach (var (name, w) in frozen) Assert.Equal(w, p[name]);   // the base did not move
        Assert.True(File.Exists(Path.Combine(dir.Path, "final", "adapter", "adapter_model.safetensors")));
    }

    [Fact]
    public void A_stopped_grpo_run_with_lora_resumes_to_the_weights_of_an_uninterrupted_one()
    {
        var prompts = "a b c d ab cd".Split(' ').Select(p => new RlPrompt(p, new Dictionary<string, string>())).ToList();
        IReadOnlyList<WeightedReward> rewards = [new(new DelegateReward("len", c => c.Completion.Length / 4.0))];
        var o = RlOptions.Grpo() with
        {
            Iterations = 6, PromptsPerIteration = 4, SamplesPerPrompt = 3, MaxNewTokens = 4, LearningRate = 2e-2, Beta = 0.1,
            CheckpointEvery = 2, KeepCheckpoints = 1, EvalEvery = 0, Epochs = 2, MiniBatchSize = 6, MicroBatchSize = 4,
        };
        CausalLM Model()
        {
            var m = Bandit.Model(seed: 3);
            m.AddLora(new LoraOptions { R = 2, Alpha = 4, TargetModules = ["q_proj", "o_proj", "up_proj"] }, seed: 4);
            return m;
        }
        using var straightDir = new TempDir();
        using var straight = Model();
        new RlTrainer(straight, Bandit.Tok, o, rewards).Run(prompts, straightDir.Path);

        using var stoppedDir = new TempDir();
        using (var first = Model())
        {
            using var cts = new CancellationTokenSource();
            var t = new RlTrainer(first, Bandit.Tok, o, rewards) { Log = l => { if (l.StartsWith("iter 5/")) cts.Cancel(); } };
            Assert.Throws<OperationCanceledException>(() => t.Run(prompts, stoppedDir.Path, cancel: cts.Token));
        }
        // The reference is the policy with its adapters off, so checkpoints hold no reference model.
        var ckpt = Assert.Single(Directory.GetDirectories(Path.Combine(stoppedDir.Path, "checkpoints")));
        Assert.False(Directory.Exists(Path.Combine(ckpt, "reference")));
        Assert.True(File.Exists(Path.Combine(ckpt, "adapter", "adapter_model.safetensors")));
        using var resumed = Model();
        new RlTrainer(resumed, Bandit.Tok, o, rewards).Run(prompts, stoppedDir.Path, resume: true);
        var adapters = WeightValues.Of(straight.AdapterWeights());
        Assert.Contains(adapters.Values, w => w.Any(x => x != 0));   // B moved: the comparison is not between zeros
        Equal(adapters, WeightValues.Of(resumed.AdapterWeights()), 1e-6);
        Equal(WeightValues.Of(straight.Weights()), WeightValues.Of(resumed.Weights()), 1e-6);
    }

    [Fact]
    public void With_lora_the_rl_reference_is_the_base_model_with_adapters_off()
    {
        using var dir = new TempDir();
        static CausalLM Wide() => new(Sharpen.Tests.Models.CausalLMTests.Tiny() with
            { VocabSize = Bandit.Tok.VocabSize, MaxPositionEmbeddings = 32, HiddenSize = 32, IntermediateSize = 48 }, seed: 5);
        using var model = Wide();
        using var plain = Wide();
        model.AddLora(new LoraOptions { R = 2, Alpha = 4 }, seed: 6);
        var o = RlOptions.Grpo() with { Iterations = 3, PromptsPerIteration = 4, SamplesPerPrompt = 4, MaxNewTokens = 3, LearningRate = 5e-2, Beta = 0.1, EvalEvery = 0 };
        new RlTrainer(model, Bandit.Tok, o, Bandit.RewardC).Run([new RlPrompt("a", new Dictionary<string, string>())], dir.Path);
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.True(Math.Abs(rows[0]["kl"]!.GetValue<double>()) < 1e-6);   // iteration 1: policy = base = reference
        Assert.True(Math.Abs(rows[^1]["kl"]!.GetValue<double>()) > 1e-3, $"kl {rows[^1]["kl"]}");   // measured against the base, not the moving policy
        Assert.NotEqual(Logits(plain), Logits(model));
        using (model.AdaptersDisabled()) Assert.Equal(Logits(plain), Logits(model));   // adapters off: exactly the base
        Assert.NotEqual(Logits(plain), Logits(model));                                 // and back on afterwards
        Assert.Throws<InvalidOperationException>(() => plain.AdaptersDisabled());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void With_lora_the_dpo_reference_is_the_base_model(bool trainedAdapters)
    {
        // DPO's first loss is ln 2 exactly when policy and reference agree. With fresh adapters (B = 0) the base is the
        // policy; with adapters that already moved, the base is not, so the first loss must differ from ln 2.
        using var dir = new TempDir();
        using var model = new CausalLM(Sharpen.Tests.Models.CausalLMTests.Tiny() with { VocabSize = Bandit.Tok.VocabSize, MaxPositionEmbeddings = 32 }, seed: 1);
        model.AddLora(new LoraOptions { R = 2, Alpha = 4 }, seed: 2);
        if (trainedAdapters)
            using (no_grad())
            using (var gen = new Generator(3))
                foreach (var (_, p) in model.named_parameters().Where(p => p.name.EndsWith("lora_B.weight"))) p.normal_(0, 0.5, gen);
        var o = new PreferenceOptions { Loss = "dpo", Beta = 1.0, MaxSteps = 1, BatchSize = 2, LogEvery = 1, WarmupSteps = 0, CheckpointEvery = 0 };
        new PreferenceTrainer(model, Bandit.Tok, o).Run([new("a", "bc", "d"), new("ab", "c", "dd")], dir.Path);
        double first = new RunLog(dir.Path, append: true).ReadMetrics()[0]["loss"]!.GetValue<double>();
        if (trainedAdapters) Assert.True(Math.Abs(first - Math.Log(2)) > 1e-3, $"loss {first}");
        else Assert.Equal(Math.Log(2), first, 4);
    }

    [Fact]
    public void A_preference_recipe_trains_lora_adapters()
    {
        using var dir = new TempDir();
        CliHarness.WritePairs(dir.File("pairs.jsonl"));
        File.WriteAllText(dir.File("r.yaml"), $"""
            kind: preference
            output: {dir.File("run")}
            model:
              init: {"{"} hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 64 {"}"}
              tokenizer: "chars:abcd"
              lora: {"{"} r: 2 {"}"}
            data: {"{"} train: {dir.File("pairs.jsonl")}, skip_bad_lines: true {"}"}
            preference: {"{"} max_steps: 3, batch_size: 2, log_every: 1, warmup_steps: 0, learning_rate: 0.05 {"}"}
            """);
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.True(code == 0, err + output);
        var adapter = Safetensors.Load(Path.Combine(dir.File("run"), "final", "adapter", "adapter_model.safetensors"));
        Assert.Equal(14, adapter.Count);   // 7 projections × (A, B) in 1 layer
        Assert.Contains(adapter.Where(kv => kv.Key.EndsWith("lora_B.weight")), kv => kv.Value.abs().max().item<float>() > 0);   // B trained
    }

    [Theory]
    [InlineData("kind: reward_model\n", "'model.lora' works with kind sft, rl, preference, online_dpo, dno, spin, offline_pg; a reward_model recipe trains every weight")]
    [InlineData("kind: sft\n", "model.lora.r must be positive, got 0")]
    public void Lora_in_a_recipe_is_checked(string kind, string expected)
    {
        var text = kind + "model:\n  path: m\n  lora: { r: 0 }\ntask: { name: countdown }\ndata: { train: x.jsonl }\n";
        if (kind.Contains("reward_model")) text = text.Replace("r: 0", "r: 4");
        Assert.Contains(expected, Assert.Throws<RecipeException>(() => Recipe.Parse(text, "r.yaml")).Message);
    }
}
