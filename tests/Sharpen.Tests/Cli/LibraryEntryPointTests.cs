using System.Text.Json.Nodes;
using Sharpen.Cli.Commands;
using Sharpen.Recipes;

namespace Sharpen.Tests.Cli;

/// <summary>The library entry points behind <c>sharpen quickstart</c> and <c>sharpen eval</c>, called directly (no CLI parsing).</summary>
public class LibraryEntryPointTests
{
    [Fact]
    public void Quickstart_Run_writes_the_summary_it_returns()
    {
        using var dir = new TempDir();
        var lines = new List<string>();
        var r = Quickstart.Run(new QuickstartSettings
        {
            TrainProblems = 100, TestProblems = 6, SftSteps = 3, BatchSize = 8, HiddenSize = 32, Layers = 1,
            RlIterations = 2, RlPrompts = 4, RlSamples = 2,
        }, dir.Path, lines.Add);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.True(JsonNode.DeepEquals(r.Summary, summary));
        var stages = summary["stages"]!.AsArray();
        Assert.Equal(["sft", "grpo"], stages.Select(s => s!["name"]!.GetValue<string>()));
        Assert.Equal(r.Stages.Select(s => (s.Name, s.Accuracy, s.N, s.Seconds)),
            stages.Select(s => (s!["name"]!.GetValue<string>(), s["accuracy"]!.GetValue<double>(), s["n"]!.GetValue<int>(), s["seconds"]!.GetValue<double>())));
        // The stage rows are the evaluations behind them, on the 6 held-out problems.
        Assert.Equal((r.SftEval.Accuracy, 6), (stages[0]!["accuracy"]!.GetValue<double>(), stages[0]!["n"]!.GetValue<int>()));
        Assert.Equal((r.RlAfter.Accuracy, 6), (stages[1]!["accuracy"]!.GetValue<double>(), stages[1]!["n"]!.GetValue<int>()));
        Assert.Equal(Math.Round(100 * (r.RlAfter.Accuracy - r.SftEval.Accuracy), 1), summary["rl_gain_points"]!.GetValue<double>());
        Assert.Equal(r.Parameters, summary["parameters"]!.GetValue<long>());
        Assert.Equal(r.FinalCheckpoint, summary["final_checkpoint"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(r.FinalCheckpoint, "config.json")));
        // 100 + 6 distinct problems are made; the 6 are held out, the 100 worked solutions are the training set.
        Assert.Equal(100, summary["train_examples"]!.GetValue<int>());
        Assert.Equal(r.SftMetrics.Count, File.ReadAllLines(Path.Combine(dir.Path, "metrics.jsonl")).Length);
        Assert.False(File.Exists(Path.Combine(dir.Path, "report.md")));   // drawing reports is the CLI's part
        Assert.Contains(lines, l => l.StartsWith("sft: held-out greedy accuracy", StringComparison.Ordinal));
    }

    [Fact]
    public void EvalRun_writes_the_summary_it_returns()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), """
            {"model_type":"qwen2","vocab_size":40,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,
             "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":128,"tie_word_embeddings":true}
            """);
        var task = Sharpen.Tasks.TaskRegistry.Create("countdown");
        Assert.Equal(0, CliHarness.Invoke(InitCommand.Create(), "--config", dir.File("config.json"), "--tokenizer", "chars:" + task.Alphabet, "--out", dir.File("m")).Code);
        var r = EvalRun.Run(new EvalSettings { Model = dir.File("m"), Task = "countdown", N = 5, Samples = 2, MaxNewTokens = 6, Out = dir.File("e") });
        var summary = JsonNode.Parse(File.ReadAllText(dir.File("e/summary.json")))!;
        Assert.True(JsonNode.DeepEquals(r.Summary, summary));
        Assert.NotNull(r.Result);
        Assert.Equal((5, 2, "greedy", "countdown"), (summary["n"]!.GetValue<int>(), summary["samples"]!.GetValue<int>(),
            summary["strategy"]!.GetValue<string>(), summary["task"]!.GetValue<string>()));
        // Greedy accuracy = the share of per-problem rows whose verdict is correct.
        var rows = File.ReadAllLines(dir.File("e/metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(5, rows.Count);
        double correct = rows.Count(x => x["correct"]!.GetValue<bool>()) / 5.0;
        Assert.Equal(correct, r.Result!.Accuracy, 12);
        Assert.Equal(r.Result.Accuracy, summary["accuracy"]!.GetValue<double>(), 12);
        Assert.Equal(rows.Average(x => x["tokens"]!.GetValue<int>()), summary["mean_completion_tokens"]!.GetValue<double>(), 9);
    }
}
