using System.Text.Json.Nodes;
using Sharpen.Rewards;
using Sharpen.Tasks;
using Sharpen.Training;
using Sharpen.Recipes;

namespace Sharpen.Tests.Rewards;

/// <summary><see cref="HttpReward"/> against a real HTTP server on the loopback interface.</summary>
public class HttpRewardTests
{
    static RewardContext Ctx(string completion, params (string, string)[] fields) =>
        new("2 3 ->", completion, fields.ToDictionary(f => f.Item1, f => f.Item2), completion.Length);

    static string Rewards(params double?[] r) => new JsonObject { ["rewards"] = new JsonArray(r.Select(x => (JsonNode?)x).ToArray()) }.ToJsonString();

    [Fact]
    public async Task Posts_the_batch_and_reads_one_reward_per_item_in_order()
    {
        // The server's rule: the number of 'x' in the completion plus the row's "bonus" field; null for an empty completion.
        using var server = new RewardServer((body, _) =>
        {
            var r = body["items"]!.AsArray().Select(it =>
            {
                var c = it!["completion"]!.GetValue<string>();
                return c.Length == 0 ? (double?)null : c.Count(ch => ch == 'x') + double.Parse(it["fields"]!["bonus"]!.GetValue<string>());
            }).ToArray();
            return (200, Rewards(r));
        });
        using var reward = new HttpReward(new Uri(server.Url), "judge");
        var scores = await reward.ScoreAsync([Ctx("xx y", ("bonus", "0.5")), Ctx("", ("bonus", "1")), Ctx("x", ("bonus", "-2"))]);
        Assert.Equal([2.5, null, -1.0], scores);
        Assert.Equal("judge", reward.Name);
        var sent = Assert.Single(server.Requests)["items"]!.AsArray();
        Assert.Equal(3, sent.Count);
        Assert.Equal("2 3 ->", sent[0]!["prompt"]!.GetValue<string>());
        Assert.Equal("xx y", sent[0]!["completion"]!.GetValue<string>());
        Assert.Equal(4, sent[0]!["completion_tokens"]!.GetValue<int>());
        Assert.Equal("-2", sent[2]!["fields"]!["bonus"]!.GetValue<string>());
        Assert.Empty(await reward.ScoreAsync([]));     // nothing to score: no request
        Assert.Single(server.Requests);
    }

    [Fact]
    public async Task A_server_error_is_retried_and_a_client_error_is_not()
    {
        using var flaky = new RewardServer((_, n) => n == 1 ? (503, "warming up") : (200, Rewards(1.0)));
        using var r1 = new HttpReward(new Uri(flaky.Url), retries: 2);
        Assert.Equal([1.0], await r1.ScoreAsync([Ctx("a")]));
        Assert.Equal(2, r1.Requests);

        using var strict = new RewardServer((_, _) => (400, "field 'answer' missing"));
        using var r2 = new HttpReward(new Uri(strict.Url), "judge", retries: 3);
        var e = await Assert.ThrowsAsync<RewardServerException>(async () => await r2.ScoreAsync([Ctx("a")]));
        Assert.Equal(1, r2.Requests);
        Assert.Contains("HTTP 400", e.Message);
        Assert.Contains("field 'answer' missing", e.Message);
        Assert.Contains(strict.Url, e.Message);
        Assert.Contains("'judge'", e.Message);

        using var down = new RewardServer((_, _) => (500, "boom"));
        using var r3 = new HttpReward(new Uri(down.Url), retries: 1);
        var e3 = await Assert.ThrowsAsync<RewardServerException>(async () => await r3.ScoreAsync([Ctx("a")]));
        Assert.Equal(2, r3.Requests);
        Assert.Contains("HTTP 500", e3.Message);
        Assert.Contains("after 2 attempts", e3.Message);
    }

    [Theory]
    [InlineData("{\"rewards\": [1.0]}", "'rewards' has 1 entries for 2 completions")]
    [InlineData("{\"rewards\": [1.0, \"high\"]}", "'rewards'[1] is \"high\"; expected a number or null")]
    [InlineData("{\"scores\": [1.0, 0.0]}", "expected a JSON object with a 'rewards' array")]
    [InlineData("[1.0, 0.0]", "expected a JSON object with a 'rewards' array")]
    [InlineData("<html>oops</html>", "the response is not JSON")]
    public async Task A_response_that_breaks_the_protocol_says_what_is_wrong(string answer, string expected)
    {
        using var server = new RewardServer((_, _) => (200, answer));
        using var reward = new HttpReward(new Uri(server.Url));
        var e = await Assert.ThrowsAsync<RewardServerException>(async () => await reward.ScoreAsync([Ctx("a"), Ctx("b")]));
        Assert.Contains(expected, e.Message);
        Assert.Equal(1, reward.Requests);   // a broken answer is not retried
    }

    [Fact]
    public async Task A_slow_or_absent_server_fails_with_the_reason()
    {
        using var slow = new RewardServer((_, _) => { Thread.Sleep(1500); return (200, Rewards(1.0)); });
        using var r1 = new HttpReward(new Uri(slow.Url), timeout: TimeSpan.FromMilliseconds(200), retries: 0);
        var e1 = await Assert.ThrowsAsync<RewardServerException>(async () => await r1.ScoreAsync([Ctx("a")]));
        Assert.Contains("no answer within 0.2 s (after 1 attempt)", e1.Message);

        var nobody = $"http://127.0.0.1:{RewardServer.FreePort()}/score";
        using var r2 = new HttpReward(new Uri(nobody), retries: 1);
        var e2 = await Assert.ThrowsAsync<RewardServerException>(async () => await r2.ScoreAsync([Ctx("a")]));
        Assert.Contains(nobody, e2.Message);
        Assert.Contains("after 2 attempts", e2.Message);
        Assert.IsAssignableFrom<IOException>(e2);   // the CLI prints it as one error line

        // The caller's cancellation is not a failure to retry: it propagates as such.
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await r1.ScoreAsync([Ctx("a")], cancelled.Token));
    }

    [Fact]
    public async Task A_split_batch_keeps_its_order_and_its_concurrency_limit()
    {
        // The server scores a completion "7" as 7; requests overlap only as far as the client lets them.
        int inFlight = 0, most = 0;
        var sync = new object();
        using var server = new RewardServer((body, _) =>
        {
            int now = Interlocked.Increment(ref inFlight);
            lock (sync) most = Math.Max(most, now);
            Thread.Sleep(150);
            Interlocked.Decrement(ref inFlight);
            return (200, Rewards(body["items"]!.AsArray().Select(it => (double?)double.Parse(it!["completion"]!.GetValue<string>())).ToArray()));
        });
        var batch = Enumerable.Range(1, 5).Select(i => Ctx(i.ToString())).ToList();
        using var two = new HttpReward(new Uri(server.Url), maxBatch: 2, concurrency: 2);
        Assert.Equal([1.0, 2, 3, 4, 5], await two.ScoreAsync(batch));
        Assert.Equal(3, two.Requests);
        Assert.Equal([1, 2, 2], server.Requests.Select(r => r["items"]!.AsArray().Count).Order());
        Assert.InRange(most, 1, 2);

        most = 0;
        using var one = new HttpReward(new Uri(server.Url), maxBatch: 2, concurrency: 1);
        Assert.Equal([1.0, 2, 3, 4, 5], await one.ScoreAsync(batch));
        Assert.Equal(1, most);
        using var whole = new HttpReward(new Uri(server.Url));
        Assert.Equal([1.0, 2, 3, 4, 5], await whole.ScoreAsync(batch));
        Assert.Equal(1, whole.Requests);
    }

    [Fact]
    public void Bad_arguments_are_rejected()
    {
        Assert.Throws<ArgumentException>(() => new HttpReward(new Uri("ftp://host/score")));
        Assert.Throws<ArgumentOutOfRangeException>(() => new HttpReward(new Uri("http://host/score"), timeout: TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => new HttpReward(new Uri("http://host/score"), retries: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new HttpReward(new Uri("http://host/score"), maxBatch: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new HttpReward(new Uri("http://host/score"), concurrency: 0));
    }

    [Fact]
    public void Recipe_rewards_take_a_url_with_a_name_timeout_and_retries()
    {
        var task = TaskRegistry.Create("countdown");
        const string head = "kind: rl\nmodel: { path: m }\ntask: { name: countdown }\nrewards:\n";
        var recipe = Recipe.Parse(head + "  - { name: countdown }\n  - { url: \"http://127.0.0.1:9/score\", name: judge, weight: 0.5, timeout_seconds: 5, retries: 0, max_batch: 64, concurrency: 4 }\n");
        var rewards = RlPipeline.BuildRewards(recipe.Rewards, task);
        try
        {
            Assert.Equal(["countdown", "judge"], rewards.Select(r => r.Function.Name));
            var http = Assert.IsType<HttpReward>(rewards[1].Function);
            Assert.Equal((0.5, "http://127.0.0.1:9/score", 5.0, 0), (rewards[1].Weight, http.Url.ToString(), http.Timeout.TotalSeconds, http.Retries));
            Assert.Equal((64, 4), (http.MaxBatch, http.Concurrency));
        }
        finally { foreach (var r in rewards) (r.Function as IDisposable)?.Dispose(); }

        var dflt = RlPipeline.BuildRewards(Recipe.Parse(head + "  - { url: \"https://example.org/r\" }\n").Rewards, task);
        var d = Assert.IsType<HttpReward>(Assert.Single(dflt).Function);
        Assert.Equal(("remote", 60.0, 2), (d.Name, d.Timeout.TotalSeconds, d.Retries));
        d.Dispose();

        string Error(string rewardsYaml) =>
            Assert.Throws<RecipeException>(() => RlPipeline.BuildRewards(Recipe.Parse(head + rewardsYaml).Rewards, task)).Message;
        Assert.Contains("'rewards[0].url' must be an absolute http:// or https:// URL, got 'localhost:8000'", Error("  - { url: \"localhost:8000\" }\n"));
        Assert.Contains("'rewards[0]' gives both 'model' and 'url'", Error("  - { url: \"http://a/b\", model: rm }\n"));
        Assert.Contains("'rewards[0].timeout_seconds' must be a positive number", Error("  - { url: \"http://a/b\", timeout_seconds: 0 }\n"));
        Assert.Contains("'rewards[0].retries' must be 0 or more", Error("  - { url: \"http://a/b\", retries: -1 }\n"));
        Assert.Contains("'rewards[0].max_batch' must be 0 (no limit) or more", Error("  - { url: \"http://a/b\", max_batch: -2 }\n"));
        Assert.Contains("'rewards[0].concurrency' must be 1 or more", Error("  - { url: \"http://a/b\", concurrency: 0 }\n"));
        Assert.Contains("'rewards[1]' is named 'remote' like an earlier reward", Error("  - { url: \"http://a/b\" }\n  - { url: \"http://a/c\" }\n"));
        Assert.Contains("'rewards[1]' is named 'countdown'", Error("  - { name: countdown }\n  - { name: countdown }\n"));
        Assert.Contains("'rewards[0].weight' must be a finite number, got NaN",   // YAML cannot write it; a RewardSection made in code can
            Assert.Throws<RecipeException>(() => RlPipeline.BuildRewards([new RewardSection { Name = "countdown", Weight = double.NaN }], task)).Message);
        Assert.Contains("a reward server ('url: http://...')", Error("  - { name: judge }\n"));
    }

    [Fact]
    public async Task Two_functions_with_one_name_are_an_error_in_the_combiner()
    {
        var a = new DelegateReward("len", c => c.Completion.Length);
        var e = await Assert.ThrowsAsync<ArgumentException>(async () => await RewardCombiner.ScoreAsync([new(a), new(a, 2.0)], [Ctx("ab")]));
        Assert.Contains("2 reward functions are named 'len'", e.Message);
    }
}
