using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Cli.Commands;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tasks;

namespace Sharpen.Tests.Cli;

/// <summary><c>sharpen eval --strategy ...</c> and <c>--reward-model</c> on a tiny fresh model.</summary>
[Collection("console")]
public class EvalSearchCommandTests
{
    const string TinyConfig = """
    {"model_type":"qwen2","vocab_size":40,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,
     "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":128,"tie_word_embeddings":true}
    """;

    static string InitModel(TempDir dir)
    {
        File.WriteAllText(dir.File("config.json"), TinyConfig);
        var task = Sharpen.Tasks.TaskRegistry.Create("countdown");
        var (code, _, err) = CliHarness.Invoke(InitCommand.Create(), "--config", dir.File("config.json"), "--tokenizer", "chars:" + task.Alphabet, "--out", dir.File("m"));
        Assert.True(code == 0, err);
        return dir.File("m");
    }

    [Theory]
    [InlineData("bon")]
    [InlineData("beam")]
    public void Eval_with_a_strategy_writes_cost_and_accuracy(string strategy)
    {
        using var dir = new TempDir();
        var m = InitModel(dir);
        var (code, _, err) = CliHarness.Invoke(EvalCommand.Create(), "--model", m, "--task", "countdown", "--n", "3", "--strategy", strategy,
            "--budget-tokens", "24", "--max-new-tokens", "6", "--max-step-tokens", "3", "--beam-width", "2", "--expansions", "2", "--out", dir.File("e"));
        Assert.True(code == 0, err);
        var summary = JsonNode.Parse(File.ReadAllText(dir.File("e/summary.json")))!;
        Assert.Equal(strategy, summary["strategy"]!.GetValue<string>());
        Assert.Equal(24, summary["budget_tokens"]!.GetValue<int>());
        Assert.Equal(3, summary["n"]!.GetValue<int>());
        Assert.Equal("verifier", summary["scorer"]!.GetValue<string>());
        var rows = File.ReadAllLines(dir.File("e/metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(3, rows.Count);
        foreach (var r in rows)
        {
            Assert.InRange(r["tokens"]!.GetValue<long>(), 1, 24);
            Assert.True(r["forward_passes"]!.GetValue<long>() > 0);
            foreach (var k in new[] { "completion", "correct", "seconds", "scorer_calls" }) Assert.NotNull(r[k]);
        }
        // Summary means are the means of the rows.
        Assert.Equal(rows.Average(r => r["tokens"]!.GetValue<double>()), summary["mean_generated_tokens"]!.GetValue<double>(), 9);
        Assert.Equal(rows.Sum(r => r["tokens"]!.GetValue<long>()), summary["total_generated_tokens"]!.GetValue<long>());
        Assert.Equal(rows.Average(r => r["forward_passes"]!.GetValue<double>()), summary["mean_forward_passes"]!.GetValue<double>(), 9);
        Assert.Equal(rows.Count(r => r["correct"]!.GetValue<bool>()) / 3.0, summary["accuracy"]!.GetValue<double>(), 9);
    }

    [Theory]
    [InlineData("greedy")]
    [InlineData("vote")]
    public void Eval_reports_the_mean_reward_model_score_of_the_evaluated_completions(string strategy)
    {
        using var dir = new TempDir();
        var m = InitModel(dir);
        // A reward model: the same backbone with a random scalar head.
        var rmDir = dir.File("rm");
        var loaded = HfCheckpoint.Load(m, requireTokenizer: true);
        using (loaded.Model)
        using (var head = new ScalarHead(loaded.Model.Config.HiddenSize, initStd: 0.5))
            HfCheckpoint.Save(rmDir, loaded.Model, loaded.Tokenizer, head);

        var (code, _, err) = CliHarness.Invoke(EvalCommand.Create(), "--model", m, "--task", "countdown", "--n", "3", "--strategy", strategy,
            "--budget-tokens", "20", "--max-new-tokens", "5", "--reward-model", rmDir, "--out", dir.File("e"));
        Assert.True(code == 0, err);
        var summary = JsonNode.Parse(File.ReadAllText(dir.File("e/summary.json")))!;
        var rows = File.ReadAllLines(dir.File("e/metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(3, rows.Count);

        // Score the written (prompt, completion) pairs independently and compare.
        using var rm = new ModelReward(rmDir);
        var expected = rm.Score(rows.Select(r => (r["prompt"]!.GetValue<string>(), r["completion"]!.GetValue<string>())).ToList());
        for (int i = 0; i < rows.Count; i++) Assert.Equal(expected[i], rows[i]["reward_model"]!.GetValue<double>(), 1e-5);
        Assert.Equal(expected.Average(), summary["reward_model_mean"]!.GetValue<double>(), 1e-5);
        Assert.Equal(strategy, summary["strategy"]!.GetValue<string>());
    }

    [Fact]
    public void Unknown_strategy_scorer_or_reward_model_folder_is_one_error_line()
    {
        using var dir = new TempDir();
        var m = InitModel(dir);
        var (code, _, err) = CliHarness.Invoke(EvalCommand.Create(), "--model", m, "--task", "countdown", "--n", "2", "--strategy", "bfs", "--out", dir.File("e"));
        Assert.Equal(1, code);
        Assert.Contains("'bfs'", err);
        Assert.Contains("mcts", err);
        (code, _, err) = CliHarness.Invoke(EvalCommand.Create(), "--model", m, "--task", "countdown", "--n", "2", "--strategy", "bon", "--scorer", "oracle", "--out", dir.File("e"));
        Assert.Equal(1, code);
        Assert.Contains("reward-model:DIR", err);
        (code, _, err) = CliHarness.Invoke(EvalCommand.Create(), "--model", m, "--task", "countdown", "--n", "2", "--reward-model", m, "--out", dir.File("e"));
        Assert.Equal(1, code);
        Assert.Contains(ScalarHead.FileName, err);
    }
}
