using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Generation;
using Sharpen.Data;

namespace Sharpen.Rewards;

/// <summary>A reward server failed or answered something other than the protocol of <see cref="HttpReward"/>.</summary>
public sealed class RewardServerException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>
/// A reward computed by a server the user runs, in any language: each batch is one HTTP POST of JSON, so a recipe can use
/// a reward function that is not .NET code (a judge model behind an API, a sandbox that runs generated code, a grader in Python).
/// <code>
/// POST url   {"items": [{"prompt": "...", "completion": "...", "fields": {"answer": "42", ...}, "completion_tokens": 17}, ...]}
/// 200        {"rewards": [1.0, 0.25, null, ...]}      one entry per item, in order; null = not applicable
/// </code>
/// <c>fields</c> are the dataset row's fields (ground truth and the rest) as strings. Connection failures, timeouts,
/// HTTP 408/429 and 5xx are retried (<see cref="Retries"/> times, waiting 0.5 s, 1 s, 2 s, ...); any other failure, and a
/// response that breaks the protocol, throws <see cref="RewardServerException"/> naming the URL and what was wrong.
/// </summary>
public sealed class HttpReward : IRewardFunction, IDisposable
{
    readonly HttpClient _http;
    readonly bool _ownsClient;

    /// <summary>A reward served at <paramref name="url"/>; <paramref name="client"/> (optional) is used as given and not disposed.
    /// <paramref name="maxBatch"/> &gt; 0 splits a batch into requests of at most that many items, of which
    /// <paramref name="concurrency"/> are in flight at once (0 = the whole batch in one request).</summary>
    public HttpReward(Uri url, string name = "remote", TimeSpan? timeout = null, int retries = 2, HttpClient? client = null,
        int maxBatch = 0, int concurrency = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxBatch);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(concurrency);
        MaxBatch = maxBatch;
        Concurrency = concurrency;
        ArgumentNullException.ThrowIfNull(url);
        if (!IsServerUrl(url)) throw new ArgumentException($"reward server URL '{url}' must be an absolute http:// or https:// URL", nameof(url));
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentOutOfRangeException.ThrowIfNegative(retries);
        var t = timeout ?? TimeSpan.FromSeconds(60);
        if (t <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(timeout), "timeout must be positive");
        Url = url;
        Name = name;
        Timeout = t;
        Retries = retries;
        _ownsClient = client is null;
        _http = client ?? new HttpClient { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
    }

    /// <inheritdoc />
    public string Name { get; }
    /// <summary>Where the batches are posted.</summary>
    public Uri Url { get; }
    /// <summary>How long one request may take before it counts as failed (and is retried).</summary>
    public TimeSpan Timeout { get; }
    /// <summary>How many times a failed request is repeated before the run stops.</summary>
    public int Retries { get; }
    /// <summary>Most items per request (0 = no limit).</summary>
    public int MaxBatch { get; }
    /// <summary>Requests in flight at once when a batch is split.</summary>
    public int Concurrency { get; }
    /// <summary>Requests sent so far, retries included.</summary>
    public int Requests => _requests;
    int _requests;

    /// <inheritdoc />
    public async ValueTask<double?[]> ScoreAsync(IReadOnlyList<RewardContext> batch, CancellationToken cancel = default)
    {
        if (batch.Count == 0) return [];
        if (MaxBatch == 0 || batch.Count <= MaxBatch) return await PostAsync(batch, cancel).ConfigureAwait(false);
        // Split in order; at most Concurrency requests at once; the scores are put back in the batch's order.
        var chunks = batch.Chunk(MaxBatch).ToList();
        var results = new double?[chunks.Count][];
        using var gate = new SemaphoreSlim(Concurrency);
        await Task.WhenAll(chunks.Select(async (chunk, k) =>
        {
            await gate.WaitAsync(cancel).ConfigureAwait(false);
            try { results[k] = await PostAsync(chunk, cancel).ConfigureAwait(false); }
            finally { gate.Release(); }
        })).ConfigureAwait(false);
        return results.SelectMany(r => r).ToArray();
    }

    async Task<double?[]> PostAsync(IReadOnlyList<RewardContext> batch, CancellationToken cancel)
    {
        var text = await JsonHttp.PostAsync(_http, Url, RequestBody(batch), Timeout, Retries, Error,
            () => Interlocked.Increment(ref _requests), cancel).ConfigureAwait(false);
        return ParseResponse(text, batch.Count);
    }

    /// <summary>
    /// <paramref name="text"/> as a reward server URL; anything but an absolute http:// or https:// URL throws
    /// <see cref="ArgumentException"/> saying "<paramref name="what"/> must be ..." (what names the recipe key or flag).
    /// </summary>
    public static Uri ParseUrl(string? text, string what) =>
        Uri.TryCreate(text, UriKind.Absolute, out var url) && IsServerUrl(url) ? url
            : throw new ArgumentException($"{what} must be an absolute http:// or https:// URL, got '{text}'");

    static bool IsServerUrl(Uri url) => url.IsAbsoluteUri && (url.Scheme == Uri.UriSchemeHttp || url.Scheme == Uri.UriSchemeHttps);

    /// <summary>The JSON posted for <paramref name="batch"/>.</summary>
    public static string RequestBody(IReadOnlyList<RewardContext> batch)
    {
        var items = new JsonArray();
        foreach (var c in batch)
        {
            var fields = new JsonObject();
            foreach (var (k, v) in c.Fields) fields[k] = v;
            items.Add(new JsonObject
            {
                ["prompt"] = c.Prompt, ["completion"] = c.Completion, ["fields"] = fields, ["completion_tokens"] = c.CompletionTokens,
            });
        }
        return new JsonObject { ["items"] = items }.ToJsonString();
    }

    double?[] ParseResponse(string text, int expected)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(text); }
        catch (JsonException e) { throw Error($"the response is not JSON ({e.Message}): {Excerpt(text)}"); }
        if (root is not JsonObject obj || obj["rewards"] is not JsonArray rewards)
            throw Error($"expected a JSON object with a 'rewards' array, got: {Excerpt(text)}");
        if (rewards.Count != expected)
            throw Error($"'rewards' has {rewards.Count} entries for {expected} completions; the server must answer one per item, in order");
        var scores = new double?[expected];
        for (int i = 0; i < expected; i++)
        {
            var r = rewards[i];
            if (r is null) continue;
            // A number beyond double's range (1e999) parses to ±Infinity here; RewardCombiner rejects or clips it, naming this server.
            if (r is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
                scores[i] = double.Parse(v.ToJsonString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture);
            else throw Error($"'rewards'[{i}] is {r.ToJsonString()}; expected a number or null");
        }
        return scores;
    }

    RewardServerException Error(string what) => new($"reward server '{Name}' at {Url}: {what}");

    static string Excerpt(string text) => JsonHttp.Excerpt(text);

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsClient) _http.Dispose();
    }
}
