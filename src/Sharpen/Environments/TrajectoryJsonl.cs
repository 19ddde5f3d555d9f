using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Data;

namespace Sharpen.Environments;

/// <summary>
/// Trajectories as JSONL, one per line, so they can be saved, inspected and trained on offline:
/// <code>
/// {"env": "guess-number", "seed": 3, "end": "done", "return": 1,
///  "messages": [{"role": "user", "content": "guess 1-100"},
///               {"role": "assistant", "content": "50", "reward": 0, "info": {"feedback": "lower"},
///                "context_ids": [...], "token_ids": [...], "logprobs": [...]},
///               {"role": "user", "content": "lower"}, ...]}
/// </code>
/// Every assistant message carries its turn's <c>reward</c> (a number) and may carry <c>info</c> (strings), and either
/// all of <c>context_ids</c>/<c>token_ids</c> (with <c>logprobs</c>, one per token id, optional) or none of them.
/// <c>env</c>, <c>seed</c>, <c>end</c> (<c>done</c>, <c>turn_limit</c>, <c>token_budget</c>; default <c>done</c>) and
/// <c>return</c> (checked against the sum of the rewards) are optional. A bad line throws
/// <see cref="DatasetFormatException"/> naming <c>file:line</c>.
/// </summary>
public static class TrajectoryJsonl
{
    /// <summary>One trajectory as one JSON line (no newline).</summary>
    public static string ToJson(Trajectory trajectory, bool includeTokens = true)
    {
        var turnAt = trajectory.Turns.ToDictionary(t => t.MessageIndex);
        var messages = new JsonArray();
        for (int i = 0; i < trajectory.Messages.Count; i++)
        {
            var m = trajectory.Messages[i];
            var o = new JsonObject { ["role"] = m.Role, ["content"] = m.Content };
            if (turnAt.TryGetValue(i, out var t))
            {
                o["reward"] = t.Reward;
                if (t.Info.Count > 0) o["info"] = Strings(t.Info);
                if (includeTokens && t.TokenIds is not null && t.ContextIds is not null)
                {
                    o["context_ids"] = new JsonArray(t.ContextIds.Select(x => (JsonNode?)x).ToArray());
                    o["token_ids"] = new JsonArray(t.TokenIds.Select(x => (JsonNode?)x).ToArray());
                    if (t.LogProbs is not null) o["logprobs"] = new JsonArray(t.LogProbs.Select(x => (JsonNode?)x).ToArray());
                }
            }
            messages.Add(o);
        }
        var root = new JsonObject();
        if (trajectory.Environment is not null) root["env"] = trajectory.Environment;
        if (trajectory.Seed is { } seed) root["seed"] = seed;
        root["end"] = EndName(trajectory.End);
        root["return"] = trajectory.Return;
        root["messages"] = messages;
        return root.ToJsonString();
    }

    /// <summary>Writes <paramref name="trajectories"/> to <paramref name="path"/>, one per line.</summary>
    public static void Write(string path, IEnumerable<Trajectory> trajectories, bool includeTokens = true)
    {
        using var w = new StreamWriter(path, append: false, new UTF8Encoding(false));
        foreach (var t in trajectories) w.Write(ToJson(t, includeTokens) + "\n");
    }

    /// <summary>Reads every trajectory of <paramref name="path"/>; blank lines are skipped.</summary>
    public static IReadOnlyList<Trajectory> Read(string path)
    {
        var result = new List<Trajectory>();
        int line = 0;
        foreach (var text in File.ReadLines(path))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            result.Add(Parse(text, path, line));
        }
        return result;
    }

    /// <summary>Parses one line; <paramref name="file"/> and <paramref name="line"/> label errors.</summary>
    public static Trajectory Parse(string text, string file = "(trajectory)", int line = 1)
    {
        DatasetFormatException Bad(string problem, string expected) => new(file, line, problem, expected);
        JsonNode? root;
        try { root = JsonNode.Parse(text); }
        catch (JsonException e) { throw Bad($"not JSON ({e.Message})", "one JSON object per line"); }
        if (root is not JsonObject obj) throw Bad("the line is not a JSON object", "{\"messages\": [...], ...}");
        if (obj["messages"] is not JsonArray array || array.Count == 0)
            throw Bad("'messages' is missing or empty", "a non-empty array of {\"role\", \"content\"} objects");

        var messages = new List<ChatMessage>();
        var turns = new List<TrajectoryTurn>();
        for (int i = 0; i < array.Count; i++)
        {
            var key = $"messages[{i}]";
            if (array[i] is not JsonObject m) throw Bad($"'{key}' is not an object", "{\"role\": ..., \"content\": ...}");
            var role = String(m, "role", key, Bad);
            var content = String(m, "content", key, Bad);
            messages.Add(new ChatMessage(role, content));
            if (role != "assistant")
            {
                foreach (var k in new[] { "reward", "token_ids", "context_ids", "logprobs" })
                    if (m.ContainsKey(k)) throw Bad($"'{key}.{k}' is given on a '{role}' message", "rewards and token ids on assistant messages only");
                continue;
            }
            if (m["reward"] is not JsonValue rv || rv.GetValueKind() != JsonValueKind.Number || !double.IsFinite(rv.GetValue<double>()))
                throw Bad($"'{key}.reward' is {m["reward"]?.ToJsonString() ?? "missing"}", "the turn's reward as a finite number");
            var info = new Dictionary<string, string>();
            if (m["info"] is JsonNode infoNode)
            {
                if (infoNode is not JsonObject io) throw Bad($"'{key}.info' is not an object", "an object of strings");
                foreach (var (k, v) in io)
                    info[k] = v is JsonValue sv && sv.GetValueKind() == JsonValueKind.String ? sv.GetValue<string>()
                        : throw Bad($"'{key}.info.{k}' is {v?.ToJsonString() ?? "null"}", "a string");
            }
            var ctx = Ints(m, "context_ids", key, Bad);
            var ids = Ints(m, "token_ids", key, Bad);
            if ((ctx is null) != (ids is null)) throw Bad($"'{key}' has only one of 'context_ids' and 'token_ids'", "both or neither");
            float[]? lps = null;
            if (m["logprobs"] is JsonNode ln)
            {
                if (ids is null) throw Bad($"'{key}.logprobs' without 'token_ids'", "log-probs only with token ids");
                if (ln is not JsonArray la || la.Any(x => x is not JsonValue xv || xv.GetValueKind() != JsonValueKind.Number))
                    throw Bad($"'{key}.logprobs' is not an array of numbers", "one number per token id");
                lps = la.Select(x => x!.GetValue<float>()).ToArray();
                if (lps.Length != ids.Length) throw Bad($"'{key}.logprobs' has {lps.Length} entries for {ids.Length} token ids", "one per token id");
                if (lps.Any(x => !(x <= 0))) throw Bad($"'{key}.logprobs' has a value above 0 or NaN", "log-probabilities (≤ 0)");
            }
            turns.Add(new TrajectoryTurn(i, rv.GetValue<double>(), info) { ContextIds = ctx, TokenIds = ids, LogProbs = lps });
        }
        if (turns.Count > 0 && turns.Select(t => t.TokenIds is null).Distinct().Count() > 1)
            throw Bad("some assistant messages have token ids and some do not", "token ids on every assistant message or on none");

        var end = TrajectoryEnd.Done;
        if (obj["end"] is JsonNode en)
        {
            var name = en is JsonValue ev && ev.GetValueKind() == JsonValueKind.String ? ev.GetValue<string>() : null;
            end = name switch
            {
                "done" => TrajectoryEnd.Done, "turn_limit" => TrajectoryEnd.TurnLimit, "token_budget" => TrajectoryEnd.TokenBudget,
                _ => throw Bad($"'end' is {en.ToJsonString()}", "\"done\", \"turn_limit\" or \"token_budget\""),
            };
        }
        int? seed = null;
        if (obj["seed"] is JsonNode sn)
            seed = sn is JsonValue sv && sv.TryGetValue<int>(out var s) ? s : throw Bad($"'seed' is {sn.ToJsonString()}", "an integer");
        string? env = null;
        if (obj["env"] is JsonNode envNode)
            env = envNode is JsonValue ev2 && ev2.GetValueKind() == JsonValueKind.String ? ev2.GetValue<string>() : throw Bad($"'env' is {envNode.ToJsonString()}", "a string");
        var trajectory = new Trajectory { Environment = env, Seed = seed, Messages = messages, Turns = turns, End = end };
        if (obj["return"] is JsonNode retNode)
        {
            if (retNode is not JsonValue retV || retV.GetValueKind() != JsonValueKind.Number) throw Bad($"'return' is {retNode.ToJsonString()}", "a number");
            var given = retV.GetValue<double>();
            if (Math.Abs(given - trajectory.Return) > 1e-6 * Math.Max(1, Math.Abs(given)))
                throw Bad($"'return' is {given.ToString(CultureInfo.InvariantCulture)} but the assistant messages' rewards sum to {trajectory.Return.ToString(CultureInfo.InvariantCulture)}", "the sum of the per-turn rewards");
        }
        return trajectory;
    }

    static string EndName(TrajectoryEnd end) => end switch
    {
        TrajectoryEnd.Done => "done", TrajectoryEnd.TurnLimit => "turn_limit", TrajectoryEnd.TokenBudget => "token_budget",
        _ => throw new System.Diagnostics.UnreachableException(),
    };

    static JsonObject Strings(IReadOnlyDictionary<string, string> d)
    {
        var o = new JsonObject();
        foreach (var (k, v) in d) o[k] = v;
        return o;
    }

    static string String(JsonObject m, string name, string key, Func<string, string, DatasetFormatException> bad) =>
        m[name] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>()
            : throw bad($"'{key}.{name}' is {m[name]?.ToJsonString() ?? "missing"}", "a string");

    static int[]? Ints(JsonObject m, string name, string key, Func<string, string, DatasetFormatException> bad)
    {
        if (m[name] is not JsonNode n) return null;
        if (n is not JsonArray a) throw bad($"'{key}.{name}' is not an array", "an array of token ids (integers ≥ 0)");
        var ids = new int[a.Count];
        for (int i = 0; i < a.Count; i++)
            ids[i] = a[i] is JsonValue v && v.TryGetValue<int>(out var x) && x >= 0 ? x
                : throw bad($"'{key}.{name}[{i}]' is {a[i]?.ToJsonString() ?? "null"}", "a token id (an integer ≥ 0)");
        return ids;
    }
}
