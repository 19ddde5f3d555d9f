using System.Text.Json.Nodes;
using Sharpen.Cli.Commands;
using Sharpen.Training;
using Sharpen.Data;

namespace Sharpen.Tests.Cli;

/// <summary><c>sharpen train</c> on a tiny <c>expert_iteration</c> recipe, end to end on real files.</summary>
[Collection("console")]
public class ExpertIterationCommandTests
{
    [Fact]
    public void Train_runs_an_expert_iteration_recipe_and_resumes_it()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("r.yaml"), $"""
        kind: expert_iteration
        output: {dir.File("run")}
        model:
          init: {"{"} hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 96 {"}"}
        task: {"{"} name: countdown, min_numbers: 3, max_numbers: 3 {"}"}
        data: {"{"} train_problems: 8, test_problems: 4 {"}"}
        expert_iteration: {"{"} method: rest_em, iterations: 2, samples_per_problem: 2, max_new_tokens: 8, eval_problems: 4 {"}"}
        sft: {"{"} max_steps: 2, batch_size: 4, warmup_steps: 0 {"}"}
        eval: {"{"} problems: 4, samples: 2, max_new_tokens: 8 {"}"}
        """);
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.True(code == 0, err + output);
        var run = dir.File("run");
        Assert.Equal([1, 2], new RunLog(run, append: true).ReadMetrics().Select(r => r["iteration"]!.GetValue<int>()));
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal("rest_em", summary["method"]!.GetValue<string>());
        Assert.Equal(2, summary["iterations"]!.GetValue<int>());
        Assert.Equal(8, summary["train_problems"]!.GetValue<int>());
        foreach (var key in new[] { "base_accuracy", "final_accuracy", "accuracy", "pass_at_k", "n" }) Assert.NotNull(summary[key]);
        foreach (var f in new[] { "iter-1/data.jsonl", "iter-1/iteration.json", "iter-2/final/model.safetensors", "final/model.safetensors", "report.md" })
            Assert.True(File.Exists(Path.Combine(run, f)), f);
        Assert.Contains("| iteration | held-out accuracy |", File.ReadAllText(Path.Combine(run, "report.md")));

        // A finished run resumed runs nothing again and keeps one row per iteration.
        var (code2, output2, err2) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"), "--resume");
        Assert.True(code2 == 0, err2 + output2);
        Assert.Contains("resumed after iteration 2", output2);
        Assert.Equal([1, 2], new RunLog(run, append: true).ReadMetrics().Select(r => r["iteration"]!.GetValue<int>()));
    }
}
