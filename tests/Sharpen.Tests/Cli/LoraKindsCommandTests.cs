using Sharpen.Checkpoints;
using Sharpen.Cli.Commands;
using Sharpen.Training;
using static TorchSharp.torch;
using Sharpen.Recipes;

namespace Sharpen.Tests.Cli;

/// <summary><c>model.lora</c> in the online preference kinds and offline_pg: only the adapters train, the base stays put.</summary>
[Collection("console")]
public class LoraKindsCommandTests
{
    const string Model = """
        model:
          init: { hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 64 }
          lora: { r: 2, alpha: 4 }
        """;

    /// <summary>The run's final adapters (which must have moved) and a check that its non-adapted weights are the initial ones.</summary>
    static Dictionary<string, float[]> CheckFinal(string recipePath, string run)
    {
        var recipe = Recipe.Load(recipePath);
        var (start, _) = SftPipeline.LoadPolicy(recipe with { Model = recipe.Model with { Lora = null } }, recipe.Task?.Build("r.yaml"));
        var loaded = HfCheckpoint.Load(Path.Combine(run, "final"));
        using (start)
        using (loaded.Model)
        {
            var a = WeightValues.Of(start.Weights());
            var b = WeightValues.Of(loaded.Model.Weights());
            foreach (var name in new[] { "model.embed_tokens.weight", "model.norm.weight", "model.layers.0.input_layernorm.weight" })
                Assert.Equal(a[name], b[name]);
            Assert.NotEqual(a["model.layers.0.self_attn.q_proj.weight"], b["model.layers.0.self_attn.q_proj.weight"]);
        }
        var adapter = Safetensors.Load(Path.Combine(run, "final", "adapter", "adapter_model.safetensors"));
        Assert.Equal(14, adapter.Count);
        Assert.Contains(adapter.Where(kv => kv.Key.EndsWith("lora_B.weight")), kv => kv.Value.abs().max().item<float>() > 0);
        return adapter.ToDictionary(kv => kv.Key, kv => kv.Value.contiguous().data<float>().ToArray());
    }

    [Theory]
    [InlineData("online_dpo", "online_dpo: { iterations: 2, prompts_per_iteration: 4, samples_per_prompt: 2, max_new_tokens: 6, learning_rate: 0.05, checkpoint_every: 1, reference_update: previous_iterate, include_data_completion: true }")]
    [InlineData("dno", "dno: { iterations: 2, prompts_per_iteration: 4, samples_per_prompt: 2, max_new_tokens: 6, learning_rate: 0.05, mini_batch_size: 2 }")]
    [InlineData("spin", "spin: { iterations: 2, prompts_per_iteration: 4, max_new_tokens: 6, learning_rate: 0.05 }")]
    public void Online_preference_kinds_train_lora_adapters(string kind, string section)
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("r.yaml"), $"""
            kind: {kind}
            output: {dir.File("run")}
            {Model}
            task: {"{"} name: countdown, min_numbers: 3, max_numbers: 3, max_number: 10 {"}"}
            data: {"{"} train_problems: 8, test_problems: 2 {"}"}
            eval: {"{"} problems: 2, max_new_tokens: 6 {"}"}
            {section}
            """);
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.True(code == 0, err + output);
        var first = CheckFinal(dir.File("r.yaml"), dir.File("run"));
        if (kind != "online_dpo") return;
        // Resume from iteration 1 (its adapters, optimizer state and reference) redoes iteration 2 and ends where the run ended.
        var (code2, output2, err2) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"), "--resume");
        Assert.True(code2 == 0, err2 + output2);
        Assert.Contains("resumed from", output2);
        var again = CheckFinal(dir.File("r.yaml"), dir.File("run"));
        foreach (var (name, w) in first)
            for (int i = 0; i < w.Length; i++) Assert.True(Math.Abs(w[i] - again[name][i]) < 1e-6, $"{name}[{i}]: {w[i]} vs {again[name][i]}");
    }

    [Fact]
    public void Offline_pg_trains_lora_adapters()
    {
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("data.jsonl"),
        [
            """{"prompt": "ab", "completion": "cd", "reward": 1.0}""",
            """{"prompt": "ab", "completion": "dc", "reward": 0.0}""",
            """{"prompt": "ba", "completion": "a", "reward": 0.2}""",
            """{"prompt": "ba", "completion": "bb", "reward": 0.9}""",
        ]);
        File.WriteAllText(dir.File("r.yaml"), $"""
            kind: offline_pg
            output: {dir.File("run")}
            {Model}
              tokenizer: "chars:abcd"
            data: {"{"} train: {dir.File("data.jsonl")} {"}"}
            offline_pg: {"{"} loss: copg, max_steps: 3, batch_size: 2, learning_rate: 0.05, warmup_steps: 0 {"}"}
            """);
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.True(code == 0, err + output);
        CheckFinal(dir.File("r.yaml"), dir.File("run"));
    }
}
