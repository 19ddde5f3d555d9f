using Sharpen.Rewards;
using System.Text.Json.Nodes;
using Sharpen.Cli.Commands;
using Sharpen.Training;
using Sharpen.Training.ExpertIteration;
using Sharpen.Data;

namespace Sharpen.Tests.Cli;

/// <summary><c>sharpen train</c> on a tiny <c>expert_iteration</c> recipe with <c>method: rest_mcts</c>, end to end on real files.</summary>
[Collection("console")]
public class RestMctsCommandTests
{
    [Fact]
    public void Train_runs_a_rest_mcts_recipe()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("r.yaml"), $"""
        kind: expert_iteration
        output: {dir.File("run")}
        model:
          init: {"{"} hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 96 {"}"}
        task: {"{"} name: countdown, min_numbers: 3, max_numbers: 3 {"}"}
        data: {"{"} train_problems: 3, test_problems: 2 {"}"}
        expert_iteration:
          method: rest_mcts
          iterations: 2
          max_new_tokens: 10
          eval_problems: 2
          mcts: {"{"} budget_tokens: 24, expansions: 2, max_steps: 3, max_step_tokens: 4, value_steps: 3 {"}"}
        sft: {"{"} max_steps: 1, batch_size: 2, warmup_steps: 0 {"}"}
        eval: {"{"} problems: 2, samples: 1, max_new_tokens: 10 {"}"}
        """);
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.True(code == 0, err + output);
        var run = dir.File("run");
        var rows = new RunLog(run, append: true).ReadMetrics();
        Assert.Equal([1, 2], rows.Select(r => r["iteration"]!.GetValue<int>()));
        // The untrained policy answers nothing correctly, so no tree has a correct answer and no value targets are written
        // (the distance to a correct answer is unknown); without targets no PRM is trained and iteration 2 still searches
        // with rollouts. (MctsExpertSamplerTests and PrmValueModelTrainerTests cover the path where targets exist.)
        Assert.Equal([0.0, 0.0], rows.Select(r => r["search_accuracy"]!.GetValue<double>()));
        Assert.Equal([0, 0], rows.Select(r => r["value_targets"]!.GetValue<int>()));
        Assert.Equal(["rollouts", "rollouts"], rows.Select(r => r["value_model"]!.GetValue<string>()));
        Assert.False(Directory.Exists(Path.Combine(dir.File("run"), "iter-1", PrmValueModelTrainer.Folder)));
        Assert.Contains("iteration 1 wrote no value targets", output);
        foreach (var r in rows)
            foreach (var key in new[] { "accuracy", "problems_solved", "examples_kept", "value_targets", "value_labels", "search_accuracy", "generated_tokens", "seconds" })
                Assert.True(r[key] is not null, $"row {r["iteration"]} lacks {key}");
        for (int k = 1; k <= 2; k++)
        {
            var targets = ValueTargetRow.ReadAll(Path.Combine(run, $"iter-{k}", MctsExpertSampler.TargetsFile));
            Assert.Equal(targets.Count, rows[k - 1]["value_targets"]!.GetValue<int>());
            Assert.True(rows[k - 1]["generated_tokens"]!.GetValue<long>() <= 3 * 24, "at most the budget per problem");
        }
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal("rest_mcts", summary["method"]!.GetValue<string>());
        Assert.Equal(3, summary["train_problems"]!.GetValue<int>());
        foreach (var f in new[] { "iter-1/data.jsonl", "iter-2/iteration.json", "final/model.safetensors", "report.md" })
            Assert.True(File.Exists(Path.Combine(run, f)), f);
        Assert.Contains("MCTS with 24 tokens per problem", output);
    }
}
