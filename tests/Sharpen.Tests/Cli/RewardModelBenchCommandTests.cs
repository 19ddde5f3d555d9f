using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Cli.Commands;
using Sharpen.Models;
using Sharpen.Rewards;

namespace Sharpen.Tests.Cli;

/// <summary><c>sharpen eval --reward-model-bench</c> on tiny reward models with random heads, checked against scoring the same rows independently.</summary>
[Collection("console")]
public class RewardModelBenchCommandTests
{
    const string TinyConfig = """
    {"model_type":"qwen2","vocab_size":40,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,
     "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":128,"tie_word_embeddings":true}
    """;

    static readonly (string Prompt, string Correct, string[] Incorrect)[] Bench =
    [
        ("1 2 3 -> 6", "1+2+3=6", ["1+2+3=5", "1*2*3=7", "3-2-1=0"]),
        ("4 5 -> 9", "4+5=9", ["4*5=9", "5-4=9", "4+4=9"]),
        ("2 2 -> 4", "2*2=4", ["2+2=5", "2-2=4", "2/2=4"]),
    ];

    [Fact]
    public void Bench_scores_each_reward_model_and_correlates_them_with_the_policy_scores()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), TinyConfig);
        var task = Sharpen.Tasks.TaskRegistry.Create("countdown");
        var (code, _, err) = CliHarness.Invoke(InitCommand.Create(), "--config", dir.File("config.json"), "--tokenizer", "chars:" + task.Alphabet, "--out", dir.File("m"));
        Assert.True(code == 0, err);
        var loaded = HfCheckpoint.Load(dir.File("m"), requireTokenizer: true);
        using (loaded.Model)
            for (int k = 0; k < 3; k++)
            {
                using var head = new ScalarHead(loaded.Model.Config.HiddenSize, initStd: 0.5);
                HfCheckpoint.Save(dir.File($"rm{k}"), loaded.Model, loaded.Tokenizer, head);
            }
        File.WriteAllLines(dir.File("bench.jsonl"), Bench.Select(b => new JsonObject
            { ["prompt"] = b.Prompt, ["correct"] = b.Correct, ["incorrect"] = new JsonArray([.. b.Incorrect.Select(s => (JsonNode?)s)]) }.ToJsonString()));
        double[] policy = [0.2, 0.5, 0.4];
        File.WriteAllLines(dir.File("policy.jsonl"), Enumerable.Range(0, 3).Select(k => $"{{\"reward_model\":\"rm{k}\",\"policy_score\":{policy[k]}}}"));

        (code, _, err) = CliHarness.Invoke(EvalCommand.Create(), "--reward-model-bench", dir.File("bench.jsonl"), "--policy-scores", dir.File("policy.jsonl"), "--out", dir.File("e"));
        Assert.True(code == 0, err);
        var summary = JsonNode.Parse(File.ReadAllText(dir.File("e/summary.json")))!;
        var models = summary["reward_models"]!.AsArray();
        Assert.Equal(3, models.Count);
        // Chance with 4 candidates: accuracy 1/4, MRR (1 + 1/2 + 1/3 + 1/4)/4.
        Assert.Equal(0.25, summary["chance_accuracy"]!.GetValue<double>(), 12);
        Assert.Equal((1 + 0.5 + 1.0 / 3 + 0.25) / 4, summary["chance_mrr"]!.GetValue<double>(), 12);

        var mrrs = new double[3];
        for (int k = 0; k < 3; k++)
        {
            using var rm = new ModelReward(dir.File($"rm{k}"));
            int top = 0;
            double rr = 0;
            foreach (var (prompt, correct, incorrect) in Bench)
            {
                var s = rm.Score([(prompt, correct), .. incorrect.Select(x => (prompt, x))]);
                int rank = 1;
                for (int i = 1; i < s.Length; i++) if (s[i] >= s[0]) rank++;
                if (rank == 1) top++;
                rr += 1.0 / rank;
            }
            mrrs[k] = rr / 3;
            Assert.Equal(top / 3.0, models[k]!["accuracy"]!.GetValue<double>(), 9);
            Assert.Equal(mrrs[k], models[k]!["mrr"]!.GetValue<double>(), 9);
            Assert.Equal(policy[k], models[k]!["policy_score"]!.GetValue<double>(), 12);
        }
        double mx = mrrs.Average(), my = policy.Average();
        double sxy = mrrs.Zip(policy).Sum(t => (t.First - mx) * (t.Second - my));
        double sxx = mrrs.Sum(v => (v - mx) * (v - mx)), syy = policy.Sum(v => (v - my) * (v - my));
        if (sxx > 0) Assert.Equal(sxy / Math.Sqrt(sxx * syy), summary["pearson_mrr_policy"]!.GetValue<double>(), 9);
        else Assert.Null(summary["pearson_mrr_policy"]);
        // One row per reward model and problem.
        Assert.Equal(9, File.ReadAllLines(dir.File("e/metrics.jsonl")).Length);
    }

    [Fact]
    public void Bench_without_a_reward_model_or_with_a_policy_model_is_one_error_line()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("bench.jsonl"), "{\"prompt\":\"p\",\"correct\":\"a\",\"incorrect\":[\"b\"]}\n");
        var (code, _, err) = CliHarness.Invoke(EvalCommand.Create(), "--reward-model-bench", dir.File("bench.jsonl"), "--out", dir.File("e"));
        Assert.Equal(1, code);
        Assert.Contains("needs a reward model", err);
        (code, _, err) = CliHarness.Invoke(EvalCommand.Create(), "--reward-model-bench", dir.File("bench.jsonl"), "--model", dir.Path, "--out", dir.File("e"));
        Assert.Equal(1, code);
        Assert.Contains("none of --model", err);
    }
}
