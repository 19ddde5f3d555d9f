using System.Text.Json.Nodes;
using Sharpen.Cli.Commands;
using Sharpen.Tests.Rewards;
using Sharpen.Training;
using Sharpen.Recipes;
using Sharpen.Tasks;
using Sharpen.Data;

namespace Sharpen.Tests.Cli;

/// <summary><c>sharpen train</c> on a tiny <c>rl</c> recipe whose second reward is a real HTTP server.</summary>
[Collection("console")]
public class RlRewardServerCommandTests
{
    static string Recipe(string dir, string url) => $"""
        kind: rl
        output: {dir}
        model:
          init: {"{"} hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 96 {"}"}
        task: {"{"} name: countdown, min_numbers: 3, max_numbers: 3 {"}"}
        data: {"{"} train_problems: 8, test_problems: 2 {"}"}
        rewards:
          - {"{"} name: countdown {"}"}
          - {"{"} url: "{url}", name: judge, weight: 0.5, retries: 0 {"}"}
        rl: {"{"} algorithm: grpo, iterations: 2, prompts_per_iteration: 2, samples_per_prompt: 3, max_new_tokens: 6, eval_every: 0, seed: 3 {"}"}
        eval: {"{"} problems: 2, samples: 1, max_new_tokens: 6 {"}"}
        """;

    [Fact]
    public void An_rl_recipe_scores_with_a_reward_server_and_logs_its_mean()
    {
        // The judge: the fraction of digits in the completion. Each request's mean is kept to compare with metrics.jsonl.
        var means = new List<double>();
        using var server = new RewardServer((body, _) =>
        {
            var r = body["items"]!.AsArray().Select(it =>
            {
                var c = it!["completion"]!.GetValue<string>();
                return c.Length == 0 ? 0.0 : (double)c.Count(char.IsDigit) / c.Length;
            }).ToArray();
            lock (means) means.Add(r.Average());
            return (200, new JsonObject { ["rewards"] = new JsonArray(r.Select(x => (JsonNode?)x).ToArray()) }.ToJsonString());
        });
        using var dir = new TempDir();
        File.WriteAllText(dir.File("r.yaml"), Recipe(dir.File("run"), server.Url));
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.True(code == 0, err + output);

        var requests = server.Requests;
        Assert.Equal(2, requests.Count);                                            // one request per iteration
        Assert.All(requests, r => Assert.Equal(2 * 3, r["items"]!.AsArray().Count));  // every sample of the iteration
        Assert.All(requests.SelectMany(r => r["items"]!.AsArray()), it => Assert.NotNull(it!["fields"]!["target"]));  // the row's fields
        var rows = new RunLog(dir.File("run"), append: true).ReadMetrics();
        Assert.Equal(2, rows.Count);
        for (int i = 0; i < 2; i++)
            Assert.Equal(means[i], rows[i]["reward/judge"]!.GetValue<double>(), 6);
        Assert.NotNull(rows[0]["reward/countdown"]);
    }

    [Fact]
    public void Without_a_task_prompts_come_from_jsonl_and_the_held_out_measure_is_the_reward()
    {
        // The judge: the fraction of 'a' in the completion, plus the row's "bonus" field.
        static double Judge(JsonNode item)
        {
            var c = item["completion"]!.GetValue<string>();
            return (c.Length == 0 ? 0.0 : (double)c.Count(ch => ch == 'a') / c.Length) + double.Parse(item["fields"]!["bonus"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        }
        using var server = new RewardServer((body, _) =>
        {
            var r = body["items"]!.AsArray().Select(it => Judge(it!)).ToArray();
            return (200, new JsonObject { ["rewards"] = new JsonArray(r.Select(x => (JsonNode?)x).ToArray()) }.ToJsonString());
        });
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("train.jsonl"), ["""{"prompt": "ab", "bonus": "0"}""", """{"prompt": "ba", "bonus": "0.5"}""", """{"prompt": "abc", "bonus": "0"}"""]);
        File.WriteAllLines(dir.File("test.jsonl"), ["""{"prompt": "cab", "bonus": "1"}""", """{"prompt": "d", "bonus": "0"}""", """{"prompt": "dd", "bonus": "0"}"""]);
        File.WriteAllText(dir.File("r.yaml"), $"""
            kind: rl
            output: {dir.File("run")}
            model:
              init: {"{"} hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 64 {"}"}
              tokenizer: "chars:abcd"
            data: {"{"} train: {dir.File("train.jsonl")}, test: {dir.File("test.jsonl")} {"}"}
            rewards:
              - {"{"} url: "{server.Url}", name: judge {"}"}
            rl: {"{"} algorithm: rloo, iterations: 2, prompts_per_iteration: 2, samples_per_prompt: 2, max_new_tokens: 5, seed: 2 {"}"}
            eval: {"{"} problems: 3, max_new_tokens: 5 {"}"}
            """);
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.True(code == 0, err + output);

        // Requests: held-out before (3 greedy completions), 2 iterations (2 prompts × 2 samples), held-out after (3).
        var requests = server.Requests;
        Assert.Equal([3, 4, 4, 3], requests.Select(r => r["items"]!.AsArray().Count));
        Assert.Equal(["cab", "d", "dd"], requests[0]["items"]!.AsArray().Select(it => it!["prompt"]!.GetValue<string>()));
        double Mean(JsonObject request) => request["items"]!.AsArray().Average(it => Judge(it!));
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("run"), "summary.json")))!;
        Assert.Equal(Mean(requests[0]), summary["held_out_reward_before"]!.GetValue<double>(), 9);
        Assert.Equal(Mean(requests[3]), summary["held_out_reward_after"]!.GetValue<double>(), 9);
        Assert.Equal(3, summary["n"]!.GetValue<int>());
        Assert.Null(summary["accuracy"]);   // no verifier, no accuracy
        Assert.Contains("held-out greedy reward", output);
        Assert.True(File.Exists(Path.Combine(dir.File("run"), "final", "model.safetensors")));
    }

    [Theory]
    [InlineData("rewards:\n  - { url: \"http://127.0.0.1:9/s\" }\n", "an rl recipe needs a 'task'")]                   // no data.train
    [InlineData("data: { train: p.jsonl }\n", "an rl recipe needs a 'task'")]                                            // no rewards
    [InlineData("data: { train: p.jsonl }\nrewards:\n  - { name: countdown }\n", "every entry is a 'model'")]              // a verifier without a task
    public void An_rl_recipe_without_a_task_needs_prompts_and_non_verifier_rewards(string rest, string expected)
    {
        var text = "kind: rl\nmodel: { path: m }\n" + rest;
        Assert.Contains(expected, Assert.Throws<RecipeException>(() => global::Sharpen.Recipes.Recipe.Parse(text, "r.yaml")).Message);
    }

    [Fact]
    public void Eval_scores_greedy_completions_with_a_reward_server_with_or_without_a_task()
    {
        // The server: the completion's length in characters; each request's items are kept.
        using var server = new RewardServer((body, _) =>
            (200, new JsonObject { ["rewards"] = new JsonArray(body["items"]!.AsArray().Select(it => (JsonNode?)(double)it!["completion"]!.GetValue<string>().Length).ToArray()) }.ToJsonString()));
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), """
            {"model_type":"llama","vocab_size":40,"hidden_size":16,"intermediate_size":32,"num_hidden_layers":1,
             "num_attention_heads":2,"num_key_value_heads":2,"max_position_embeddings":64,"tie_word_embeddings":true}
            """);
        var task = Sharpen.Tasks.TaskRegistry.Create("countdown");
        Assert.Equal(0, CliHarness.Invoke(InitCommand.Create(), "--config", dir.File("config.json"), "--tokenizer", "chars:" + task.Alphabet, "--out", dir.File("m")).Code);

        // Without a task: prompts from a file, the server's mean is the reward.
        File.WriteAllLines(dir.File("p.jsonl"), ["""{"prompt": "1 2 3 -> 6:", "ref": "x"}""", """{"prompt": "4 5 -> 9:"}""", """{"prompt": "7 8 -> 1:"}"""]);
        var (code, output, err) = CliHarness.Invoke(EvalCommand.Create(), "--model", dir.File("m"), "--data", dir.File("p.jsonl"), "--n", "2",
            "--max-new-tokens", "5", "--reward-url", server.Url, "--out", dir.File("e"));
        Assert.True(code == 0, err + output);
        var request = Assert.Single(server.Requests)["items"]!.AsArray();
        Assert.Equal(2, request.Count);                                          // --n 2 of the 3 prompts
        Assert.Equal("x", request[0]!["fields"]!["ref"]!.GetValue<string>());     // the row's fields reach the server
        var rows = new RunLog(dir.File("e"), append: true).ReadMetrics();
        Assert.Equal(request.Select(it => (double)it!["completion"]!.GetValue<string>().Length), rows.Select(r => r["reward_server"]!.GetValue<double>()));
        var summary = JsonNode.Parse(File.ReadAllText(dir.File("e/summary.json")))!;
        double mean = rows.Average(r => r["reward_server"]!.GetValue<double>());
        Assert.Equal(mean, summary["reward_server_mean"]!.GetValue<double>(), 9);
        Assert.Equal(mean, summary["reward_mean"]!.GetValue<double>(), 9);
        Assert.Null(summary["accuracy"]);

        // With a task: accuracy as before, plus the server's mean over the greedy completions.
        var (code2, output2, err2) = CliHarness.Invoke(EvalCommand.Create(), "--model", dir.File("m"), "--task", "countdown", "--n", "3",
            "--max-new-tokens", "5", "--reward-url", server.Url, "--out", dir.File("e2"));
        Assert.True(code2 == 0, err2 + output2);
        var summary2 = JsonNode.Parse(File.ReadAllText(dir.File("e2/summary.json")))!;
        Assert.NotNull(summary2["accuracy"]);
        var rows2 = new RunLog(dir.File("e2"), append: true).ReadMetrics();
        Assert.Equal(rows2.Average(r => (double)r["completion"]!.GetValue<string>().Length), summary2["reward_server_mean"]!.GetValue<double>(), 9);

        var (code3, _, err3) = CliHarness.Invoke(EvalCommand.Create(), "--model", dir.File("m"), "--data", dir.File("p.jsonl"), "--out", dir.File("e3"));
        Assert.Equal(1, code3);
        Assert.Contains("eval without --task needs --data (prompts) and --reward-url and/or --reward-model", err3);
        var (code4, _, err4) = CliHarness.Invoke(EvalCommand.Create(), "--model", dir.File("m"), "--data", dir.File("p.jsonl"), "--reward-url", "localhost:1", "--out", dir.File("e4"));
        Assert.Equal(1, code4);
        Assert.Contains("--reward-url must be an absolute http:// or https:// URL, got 'localhost:1'", err4);
    }

    [Fact]
    public void A_reward_server_that_is_down_stops_the_run_with_one_error_line()
    {
        using var dir = new TempDir();
        var url = $"http://127.0.0.1:{RewardServer.FreePort()}/score";
        File.WriteAllText(dir.File("r.yaml"), Recipe(dir.File("run"), url));
        var (code, _, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.Equal(1, code);
        Assert.StartsWith("error: reward server 'judge' at " + url, err.Trim());
        Assert.Contains("(after 1 attempt)", err);
    }
}
