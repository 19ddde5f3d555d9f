using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Sharpen.Environments;
using Sharpen.Tests.Rewards;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Environments;

/// <summary><see cref="HttpEnvironment"/> against a real HTTP server on the loopback interface.</summary>
public class HttpEnvironmentTests
{
    /// <summary>A server-side game: reach the target seed+3 by saying numbers; "too low"/"too high" otherwise.</summary>
    sealed class CountGame
    {
        readonly ConcurrentDictionary<string, int> _targets = new();
        int _sessions;

        public (int, string) Answer(string path, JsonObject body, int n)
        {
            if (path == "/reset")
            {
                var id = $"s{Interlocked.Increment(ref _sessions)}";
                int target = body["seed"]!.GetValue<int>() + 3;
                _targets[id] = target;
                return (200, new JsonObject { ["session_id"] = id, ["observation"] = $"reach {target}" }.ToJsonString());
            }
            var session = body["session_id"]!.GetValue<string>();
            if (!_targets.TryGetValue(session, out var t)) return (404, "{\"error\": \"unknown session\"}");
            bool ok = int.TryParse(body["action"]!.GetValue<string>(), out var guess);
            bool done = ok && guess == t;
            var obs = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = done ? "yes" : !ok ? "number please" : guess < t ? "too low" : "too high" });
            return (200, new JsonObject
            {
                ["observation"] = obs, ["reward"] = done ? 1.0 : -0.1, ["done"] = done,
                ["info"] = new JsonObject { ["turn"] = body["turn"]!.GetValue<int>(), ["note"] = "ok" },
            }.ToJsonString());
        }
    }

    [Fact]
    public async Task Resets_and_steps_a_session_over_http()
    {
        var game = new CountGame();
        using var server = new EnvServer(game.Answer);
        using var http = new HttpClient();
        var env = new HttpEnvironment(new Uri(server.Url), http, "count", alphabet: "0123456789",
            resetOptions: new Dictionary<string, JsonNode?> { ["level"] = 2 });
        var first = await env.ResetAsync(4);
        Assert.Equal(("user", "reach 7"), (first[0].Role, first[0].Content));
        Assert.Equal("s1", env.SessionId);
        var s1 = await env.StepAsync("5");
        Assert.Equal(("too low", -0.1, false), (s1.Observation[0].Content, s1.Reward, s1.Done));
        Assert.Equal(("1", "ok"), (s1.Info["turn"], s1.Info["note"]));   // a number in info is kept as its JSON text
        var s2 = await env.StepAsync("7");
        Assert.Equal(("yes", 1.0, true, "2"), (s2.Observation[0].Content, s2.Reward, s2.Done, s2.Info["turn"]));
        Assert.Null(env.SessionId);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await env.StepAsync("7"));

        var sent = server.Requests;
        Assert.Equal(["/reset", "/step", "/step"], sent.Select(r => r.Path));
        Assert.Equal((4, 2), (sent[0].Body["seed"]!.GetValue<int>(), sent[0].Body["level"]!.GetValue<int>()));
        Assert.Equal(("s1", "5", 1), (sent[1].Body["session_id"]!.GetValue<string>(), sent[1].Body["action"]!.GetValue<string>(), sent[1].Body["turn"]!.GetValue<int>()));
        Assert.Equal(new string("\n 0123456789>".Order().ToArray()), env.Alphabet);
    }

    [Fact]
    public async Task A_rollout_plays_several_http_sessions_concurrently()
    {
        var game = new CountGame();
        int inFlight = 0, most = 0;
        using var server = new EnvServer((p, b, n) =>
        {
            int now = Interlocked.Increment(ref inFlight);
            InterlockedMax(ref most, now);
            Thread.Sleep(100);
            Interlocked.Decrement(ref inFlight);
            return game.Answer(p, b, n);
        });
        using var factory = new HttpEnvironmentFactory(new Uri(server.Url), "count", "0123456789reachtolwhigynsbp");
        var tok = CharTokenizer.Create(factory.Create().Alphabet);
        // A scripted policy counting up from the target minus 1: two turns per game.
        var engine = new ScriptedEngine(tok, prompt =>
        {
            var lines = prompt.Split('\n');
            int target = int.Parse(lines[0]["reach ".Length..]);
            return lines.Length > 2 ? target.ToString() : (target - 1).ToString();
        });
        var envs = Enumerable.Range(0, 4).Select(_ => (IEnvironment)factory.Create()).ToArray();
        var trajectories = await new MultiTurnRollout(engine).RunAsync(envs, [0, 1, 2, 3]);
        Assert.All(trajectories, t => Assert.Equal((TrajectoryEnd.Done, 2, 0.9), (t.End, t.Turns.Count, Math.Round(t.Return, 10))));
        Assert.Equal(["reach 3", "2", "too low", "3", "yes"], trajectories[0].Messages.Select(m => m.Content));
        Assert.Equal(12, server.Requests.Count);
        Assert.True(most >= 2, $"at most {most} requests were in flight; the environments should be stepped concurrently");
    }

    static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen) { }
    }

    [Fact]
    public async Task Transient_failures_are_retried_and_a_client_error_is_not()
    {
        var game = new CountGame();
        // Request 1 fails with 503, request 3 with 429: both retried after a wait.
        using var flaky = new EnvServer((p, b, n) => n is 1 or 3 ? (n == 1 ? 503 : 429, "busy") : game.Answer(p, b, n));
        using var http = new HttpClient();
        var env = new HttpEnvironment(new Uri(flaky.Url), http, retries: 1);
        Assert.Equal("reach 3", (await env.ResetAsync(0))[0].Content);
        Assert.Equal("yes", (await env.StepAsync("3")).Observation[0].Content);
        Assert.Equal(4, env.Requests);
        var steps = flaky.Requests.Where(r => r.Path == "/step").ToList();
        Assert.Equal([1, 1], steps.Select(s => s.Body["turn"]!.GetValue<int>()));   // the retry carries the same turn

        using var strict = new EnvServer((_, _, _) => (400, "seed must be small"));
        var e = await Assert.ThrowsAsync<HttpEnvironmentException>(async () => await new HttpEnvironment(new Uri(strict.Url), http, "judge", retries: 3).ResetAsync(1));
        Assert.Contains($"environment server 'judge' at {strict.Url}reset: HTTP 400", e.Message);
        Assert.Contains("seed must be small", e.Message);
        Assert.Single(strict.Requests);

        using var down = new EnvServer((_, _, _) => (500, "boom"));
        var d = new HttpEnvironment(new Uri(down.Url), http, retries: 1);
        var e2 = await Assert.ThrowsAsync<HttpEnvironmentException>(async () => await d.ResetAsync(1));
        Assert.Contains("HTTP 500", e2.Message);
        Assert.Contains("after 2 attempts", e2.Message);
        Assert.Equal(2, d.Requests);
    }

    [Fact]
    public async Task A_slow_or_absent_server_fails_with_the_reason()
    {
        using var http = new HttpClient();
        using var slow = new EnvServer((_, _, _) => { Thread.Sleep(1500); return (200, "{}"); });
        var e1 = await Assert.ThrowsAsync<HttpEnvironmentException>(async () =>
            await new HttpEnvironment(new Uri(slow.Url), http, timeout: TimeSpan.FromMilliseconds(200), retries: 0).ResetAsync(0));
        Assert.Contains("no answer within 0.2 s (after 1 attempt)", e1.Message);

        var nobody = $"http://127.0.0.1:{RewardServer.FreePort()}/env/";
        var e2 = await Assert.ThrowsAsync<HttpEnvironmentException>(async () => await new HttpEnvironment(new Uri(nobody), http, retries: 1).ResetAsync(0));
        Assert.Contains(nobody + "reset", e2.Message);
        Assert.Contains("after 2 attempts", e2.Message);
        Assert.IsAssignableFrom<IOException>(e2);
    }

    [Theory]
    [InlineData("/reset", "{\"observation\": \"hi\"}", "the reset answer's 'session_id' is missing; expected a non-empty string")]
    [InlineData("/reset", "{\"session_id\": \"a\", \"observation\": 5}", "'observation' is 5; expected a string or a list of {\"role\", \"content\"} messages")]
    [InlineData("/reset", "{\"session_id\": \"a\", \"observation\": [{\"role\": \"assistant\", \"content\": \"x\"}]}", "'observation'[0] is {\"role\":\"assistant\",\"content\":\"x\"}")]
    [InlineData("/reset", "[1, 2]", "expected a JSON object, got: [1, 2]")]
    [InlineData("/reset", "<html>", "the answer is not JSON")]
    [InlineData("/step", "{\"observation\": \"x\", \"done\": false}", "the step answer's 'reward' is missing; expected a finite number")]
    [InlineData("/step", "{\"observation\": \"x\", \"reward\": 1e39, \"done\": false}", "the step answer's 'reward' is 1e39; expected a finite number within ±1e6")]
    [InlineData("/step", "{\"observation\": \"x\", \"reward\": -2000000, \"done\": false}", "the step answer's 'reward' is -2000000; expected a finite number within ±1e6")]
    [InlineData("/step", "{\"observation\": \"x\", \"reward\": 1, \"done\": \"no\"}", "the step answer's 'done' is \"no\"; expected true or false")]
    [InlineData("/step", "{\"reward\": 1, \"done\": false}", "'observation' is missing")]
    [InlineData("/step", "{\"observation\": \"x\", \"reward\": 1, \"done\": false, \"info\": [1]}", "the step answer's 'info' is [1]; expected an object")]
    public async Task An_answer_that_breaks_the_protocol_stops_with_what_is_wrong(string where, string answer, string expected)
    {
        using var server = new EnvServer((p, _, _) => p == where ? (200, answer) : (200, "{\"session_id\": \"a\", \"observation\": \"hi\"}"));
        using var http = new HttpClient();
        var env = new HttpEnvironment(new Uri(server.Url), http, "gym");
        var e = await Assert.ThrowsAsync<HttpEnvironmentException>(async () =>
        {
            await env.ResetAsync(0);
            await env.StepAsync("a");
        });
        Assert.Contains($"environment server 'gym' at {server.Url}{where[1..]}: ", e.Message);
        Assert.Contains(expected, e.Message);
        Assert.Equal(where == "/reset" ? 1 : 2, env.Requests);   // a broken answer is not retried
    }

    [Fact]
    public void Bad_arguments_are_rejected()
    {
        using var http = new HttpClient();
        Assert.Throws<ArgumentException>(() => new HttpEnvironment(new Uri("ftp://h/env"), http));
        Assert.Throws<ArgumentOutOfRangeException>(() => new HttpEnvironment(new Uri("http://h/env"), http, timeout: TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => new HttpEnvironment(new Uri("http://h/env"), http, retries: -1));
        Assert.Throws<ArgumentException>(() => new HttpEnvironment(new Uri("http://h/env"), http, resetOptions: new Dictionary<string, JsonNode?> { ["seed"] = 1 }));
        Assert.Equal("http://h/env/", new HttpEnvironment(new Uri("http://h/env"), http).Url.ToString());
    }
}
