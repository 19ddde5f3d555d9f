using System.Text.Json.Nodes;
using Sharpen.Cli.Commands;

namespace Sharpen.Tests.Cli;

/// <summary><c>sharpen train</c> with the online preference kinds (online_dpo, dno, spin) and P3O, end to end on a tiny fresh model.</summary>
[Collection("console")]
public class OnlinePreferenceTrainCommandTests
{
    [Theory]
    [InlineData("online_dpo", "online_dpo: { iterations: 2, prompts_per_iteration: 4, samples_per_prompt: 2, max_new_tokens: 6, learning_rate: 0.001, checkpoint_every: 1 }")]
    [InlineData("dno", "dno: { iterations: 2, prompts_per_iteration: 4, samples_per_prompt: 2, max_new_tokens: 6, learning_rate: 0.001, mini_batch_size: 2 }")]
    [InlineData("spin", "spin: { iterations: 2, prompts_per_iteration: 4, max_new_tokens: 6, learning_rate: 0.001 }")]
    [InlineData("rl", "rl: { algorithm: p3o, iterations: 2, prompts_per_iteration: 4, max_new_tokens: 6, learning_rate: 0.001, eval_every: 0 }")]
    public void Train_runs_an_online_preference_recipe(string kind, string section)
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("r.yaml"), $"""
            kind: {kind}
            output: {dir.File("run")}
            model:
              init: {"{"} hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 64 {"}"}
            task: {"{"} name: countdown, min_numbers: 3, max_numbers: 3, max_number: 10 {"}"}
            data: {"{"} train_problems: 8, test_problems: 2 {"}"}
            eval: {"{"} problems: 2, max_new_tokens: 6 {"}"}
            {section}
            """);

        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.True(code == 0, err + output);
        var run = dir.File("run");
        var rows = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Where(l => l.Trim().Length > 0).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(2, rows.Count);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal(kind == "rl" ? "p3o" : kind, summary["algorithm"]!.GetValue<string>());
        Assert.NotNull(summary["accuracy_before"]);
        Assert.True(File.Exists(Path.Combine(run, "final", "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(run, "report.md")));
        if (kind != "rl")
        {
            Assert.Contains($"{kind} (", output);
            foreach (var key in new[] { "reward_mean", "pairs", "loss", "accuracy", "kl_ref", "seconds" }) Assert.True(rows[0].AsObject().ContainsKey(key), key);
        }
        if (kind == "online_dpo")
        {
            Assert.True(Directory.Exists(Path.Combine(run, "checkpoints", "checkpoint-1")));
            // --resume continues from the checkpoint; the run is already complete after it, so only iteration 2 is redone.
            var (code2, output2, err2) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"), "--resume");
            Assert.True(code2 == 0, err2 + output2);
            Assert.Contains("resumed from", output2);
            Assert.Equal(2, File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Count(l => l.Trim().Length > 0));
        }
    }
}
