using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Data;

namespace Sharpen.Environments;

/// <summary>
/// An environment served over HTTP by a program in any language, with the same conventions as the reward servers:
/// <code>
/// POST {url}/reset  {"seed": 7, ...options}                         → {"session_id": "abc", "observation": ...}
/// POST {url}/step   {"session_id": "abc", "action": "50", "turn": 1} → {"observation": ..., "reward": 0.0, "done": false, "info": {...}}
/// </code>
/// An observation is a string (one <c>user</c> message) or a list of <c>{"role", "content"}</c> messages; <c>info</c>
/// is optional, its values are kept as strings (non-strings as their JSON text). <c>turn</c> counts the steps of the
/// session from 1: a retried request carries the same turn, so a server that already answered that turn should answer
/// the same again instead of playing the action twice. Connection failures, timeouts and HTTP 408/429/5xx are retried
/// (<see cref="Retries"/> times, waiting 0.5 s, 1 s, 2 s, ...); any other status and an answer that breaks the protocol
/// throw <see cref="HttpEnvironmentException"/> naming the server, the URL and what was wrong. One instance is one
/// session at a time; instances made by one <see cref="HttpEnvironmentFactory"/> share its HTTP client.
/// </summary>
public sealed class HttpEnvironment : IEnvironment
{
    /// <summary>Largest |reward| a step answer may carry (the bound reward functions have by default): a reward beyond
    /// float32's range (±3.4e38) would turn the update into NaN, so an answer beyond this is an error naming the server.</summary>
    public const double MaxAbsReward = 1e6;

    readonly HttpClient _http;
    readonly IReadOnlyDictionary<string, JsonNode?> _resetOptions;
    string? _session;
    int _turn;

    /// <summary>An environment at <paramref name="url"/> (the base: <c>/reset</c> and <c>/step</c> are appended);
    /// <paramref name="http"/> is used as given and not disposed. <paramref name="resetOptions"/> are sent with every reset.</summary>
    public HttpEnvironment(Uri url, HttpClient http, string name = "remote", string alphabet = "", TimeSpan? timeout = null,
        int retries = 2, IReadOnlyDictionary<string, JsonNode?>? resetOptions = null)
    {
        ArgumentNullException.ThrowIfNull(url);
        ArgumentNullException.ThrowIfNull(http);
        if (!url.IsAbsoluteUri || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
            throw new ArgumentException($"environment server URL '{url}' must be an absolute http:// or https:// URL", nameof(url));
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(alphabet);
        ArgumentOutOfRangeException.ThrowIfNegative(retries);
        var t = timeout ?? TimeSpan.FromSeconds(60);
        if (t <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(timeout), "timeout must be positive");
        if (resetOptions is not null && (resetOptions.ContainsKey("seed")))
            throw new ArgumentException("reset options must not set 'seed' (the rollout gives it)", nameof(resetOptions));
        var text = url.ToString();
        Url = new Uri(text.EndsWith('/') ? text : text + "/");
        _http = http;
        Name = name;
        Alphabet = new string(alphabet.Concat(TranscriptRenderer.PlainCharacters).Distinct().Order().ToArray());
        Timeout = t;
        Retries = retries;
        _resetOptions = resetOptions ?? new Dictionary<string, JsonNode?>();
    }

    /// <inheritdoc />
    public string Name { get; }
    /// <inheritdoc />
    public string Alphabet { get; }
    /// <summary>The server's base URL (ends with '/').</summary>
    public Uri Url { get; }
    /// <summary>How long one request may take before it counts as failed (and is retried).</summary>
    public TimeSpan Timeout { get; }
    /// <summary>How many times a failed request is repeated before the run stops.</summary>
    public int Retries { get; }
    /// <summary>The current session's id, or null.</summary>
    public string? SessionId => _session;
    /// <summary>Requests sent so far, retries included.</summary>
    public int Requests => _requests;
    int _requests;

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<ChatMessage>> ResetAsync(int seed, CancellationToken cancellationToken = default)
    {
        var body = new JsonObject { ["seed"] = seed };
        foreach (var (k, v) in _resetOptions) body[k] = v?.DeepClone();
        var (answer, url) = await PostAsync("reset", body.ToJsonString(), cancellationToken).ConfigureAwait(false);
        if (answer["session_id"] is not JsonValue sv || sv.GetValueKind() != JsonValueKind.String || sv.GetValue<string>().Length == 0)
            throw Error(url, $"the reset answer's 'session_id' is {answer["session_id"]?.ToJsonString() ?? "missing"}; expected a non-empty string");
        var observation = Observation(answer, url, required: true);
        _session = sv.GetValue<string>();
        _turn = 0;
        return observation;
    }

    /// <inheritdoc />
    public async ValueTask<EnvironmentStep> StepAsync(string action, CancellationToken cancellationToken = default)
    {
        if (_session is null) throw new InvalidOperationException($"environment server '{Name}': StepAsync called with no session (call ResetAsync first; a session ends when a step returns done)");
        var body = new JsonObject { ["session_id"] = _session, ["action"] = action ?? "", ["turn"] = _turn + 1 };
        var (answer, url) = await PostAsync("step", body.ToJsonString(), cancellationToken).ConfigureAwait(false);
        if (answer["reward"] is not JsonValue rv || rv.GetValueKind() != JsonValueKind.Number || !(Math.Abs(rv.GetValue<double>()) <= MaxAbsReward))
            throw Error(url, $"the step answer's 'reward' is {answer["reward"]?.ToJsonString() ?? "missing"}; expected a finite number within ±1e6");
        if (answer["done"] is not JsonValue dv || dv.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False))
            throw Error(url, $"the step answer's 'done' is {answer["done"]?.ToJsonString() ?? "missing"}; expected true or false");
        bool done = dv.GetValue<bool>();
        var observation = Observation(answer, url, required: !done);
        var info = new Dictionary<string, string>();
        if (answer["info"] is JsonNode infoNode)
        {
            if (infoNode is not JsonObject io) throw Error(url, $"the step answer's 'info' is {Excerpt(infoNode.ToJsonString())}; expected an object");
            foreach (var (k, v) in io)
                info[k] = v is JsonValue s && s.GetValueKind() == JsonValueKind.String ? s.GetValue<string>() : v?.ToJsonString() ?? "null";
        }
        _turn++;
        if (done) _session = null;
        return new EnvironmentStep(observation, rv.GetValue<double>(), done, info);
    }

    IReadOnlyList<ChatMessage> Observation(JsonObject answer, Uri url, bool required)
    {
        switch (answer["observation"])
        {
            case null when !required:
                return [];
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                return [new ChatMessage("user", v.GetValue<string>())];
            case JsonArray a:
                var messages = new List<ChatMessage>(a.Count);
                for (int i = 0; i < a.Count; i++)
                {
                    if (a[i] is JsonObject m && m["role"] is JsonValue r && r.GetValueKind() == JsonValueKind.String
                        && m["content"] is JsonValue c && c.GetValueKind() == JsonValueKind.String && r.GetValue<string>() != "assistant")
                        messages.Add(new ChatMessage(r.GetValue<string>(), c.GetValue<string>()));
                    else
                        throw Error(url, $"'observation'[{i}] is {Excerpt(a[i]?.ToJsonString() ?? "null")}; expected {{\"role\": \"user\" (or \"tool\", \"system\"), \"content\": \"...\"}}");
                }
                return messages;
            default:
                throw Error(url, $"'observation' is {Excerpt(answer["observation"]?.ToJsonString() ?? "missing")}; expected a string or a list of {{\"role\", \"content\"}} messages");
        }
    }

    async Task<(JsonObject Answer, Uri Url)> PostAsync(string path, string body, CancellationToken cancel)
    {
        var url = new Uri(Url, path);
        var text = await JsonHttp.PostAsync(_http, url, body, Timeout, Retries, what => Error(url, what),
            () => Interlocked.Increment(ref _requests), cancel).ConfigureAwait(false);
        JsonNode? root;
        try { root = JsonNode.Parse(text); }
        catch (JsonException e) { throw Error(url, $"the answer is not JSON ({e.Message}): {Excerpt(text)}"); }
        return root is JsonObject o ? (o, url) : throw Error(url, $"expected a JSON object, got: {Excerpt(text)}");
    }

    HttpEnvironmentException Error(Uri url, string what) => new($"environment server '{Name}' at {url}: {what}");

    static string Excerpt(string text) => JsonHttp.Excerpt(text);
}
