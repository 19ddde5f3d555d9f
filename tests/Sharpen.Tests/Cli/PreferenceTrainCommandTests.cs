using System.CommandLine;
using System.Text.Json.Nodes;
using Sharpen.Cli.Commands;

namespace Sharpen.Tests.Cli;

/// <summary><c>sharpen train</c> with a <c>kind: preference</c> recipe, end to end on a tiny fresh model.</summary>
[Collection("console")]
public class PreferenceTrainCommandTests
{
    [Fact]
    public void Train_runs_a_preference_recipe()
    {
        using var dir = new TempDir();
        CliHarness.WritePairs(dir.File("pairs.jsonl"));
        File.WriteAllText(dir.File("r.yaml"), $"""
            kind: preference
            output: {dir.File("run")}
            model:
              init: {"{"} hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 64 {"}"}
              tokenizer: "chars:abcd"
            data: {"{"} train: {dir.File("pairs.jsonl")}, skip_bad_lines: true {"}"}
            preference: {"{"} max_steps: 3, batch_size: 2, log_every: 1, warmup_steps: 0 {"}"}
            """);

        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.True(code == 0, err + output);
        Assert.Contains("dpo: 3 steps on 5 pairs (1 lines skipped)", output);

        var run = dir.File("run");
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Count(l => l.Trim().Length > 0));
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal(5, summary["pairs"]!.GetValue<int>());
        Assert.Equal(1, summary["skipped_lines"]!.GetValue<int>());
        Assert.Equal(3, summary["steps"]!.GetValue<int>());
        Assert.True(File.Exists(Path.Combine(run, "final", "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(run, "loss.png")));   // the loss plot comes from the preference metrics
    }
}
