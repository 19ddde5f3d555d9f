using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Models;
using Sharpen.Tokenizers;

namespace Sharpen.Generation;

/// <summary>Where an <see cref="OpenAiEngine"/> finds its server and how it hands it new weights.</summary>
public sealed record OpenAiEngineOptions
{
    /// <summary>The server's OpenAI base URL, ending in <c>/v1</c> (e.g. <c>http://127.0.0.1:8000/v1</c>).</summary>
    public required Uri BaseUrl { get; init; }
    /// <summary>The model name the server serves (<c>GET /v1/models</c>).</summary>
    public required string Model { get; init; }
    /// <summary>Sent as <c>Authorization: Bearer KEY</c> when set.</summary>
    public string? ApiKey { get; init; }
    /// <summary>Where <see cref="OpenAiEngine.SyncWeights"/> writes the policy (a Hugging Face folder the server can read). Null: syncing is an error.</summary>
    public string? CheckpointDir { get; init; }
    /// <summary>Reload endpoint, relative to <see cref="BaseUrl"/> or absolute. Default: <c>sharpen serve</c>'s <c>/v1/sharpen/reload</c>.
    /// Others: SGLang <c>http://host:port/update_weights_from_disk</c>, vLLM <c>load_lora_adapter</c>. Null: write the checkpoint only.</summary>
    public string? ReloadEndpoint { get; init; } = "sharpen/reload";
    /// <summary>JSON body of the reload call; <c>{path}</c> becomes the checkpoint folder (JSON-escaped). SGLang wants
    /// <c>{"model_path": "{path}"}</c>, vLLM <c>{"lora_name": "policy", "lora_path": "{path}"}</c>.</summary>
    public string ReloadBody { get; init; } = """{"path": "{path}"}""";
    /// <summary>Send prompts as token ids (vLLM, SGLang and <c>sharpen serve</c> accept them), not text. Default true.</summary>
    public bool PromptsAsTokenIds { get; init; } = true;
    /// <summary>Most prompts in one HTTP request; larger calls are split. Default 32.</summary>
    public int PromptsPerRequest { get; init; } = 32;
    /// <summary>Most requests in flight at once. Default 4.</summary>
    public int Concurrency { get; init; } = 4;
    /// <summary>Time allowed for one request. Default 10 minutes.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad option.</summary>
    public OpenAiEngineOptions Validate()
    {
        if (!BaseUrl.IsAbsoluteUri || BaseUrl.Scheme is not ("http" or "https")) throw new ArgumentException($"openai engine base_url must be an http(s) URL, got '{BaseUrl}'");
        if (string.IsNullOrWhiteSpace(Model)) throw new ArgumentException("openai engine model must be set");
        if (PromptsPerRequest < 1) throw new ArgumentException($"openai engine prompts_per_request must be ≥ 1, got {PromptsPerRequest}");
        if (Concurrency < 1) throw new ArgumentException($"openai engine concurrency must be ≥ 1, got {Concurrency}");
        if (!ReloadBody.Contains("{path}", StringComparison.Ordinal)) throw new ArgumentException($"openai engine reload_body must contain {{path}}, got '{ReloadBody}'");
        return this;
    }
}

/// <summary>
/// A rollout engine that is any OpenAI-compatible server (vLLM, SGLang, llama.cpp's server, <c>sharpen serve</c>):
/// <c>POST /v1/completions</c> with token-id prompts, <c>n</c> samples each and <c>logprobs</c>, read back as
/// <see cref="Rollout"/> records. Token ids come back through vLLM's <c>return_tokens_as_token_ids</c>
/// (<c>"token_id:N"</c>). Weights reach the server by writing the policy to <see cref="OpenAiEngineOptions.CheckpointDir"/>
/// and calling the reload endpoint.
/// </summary>
/// <remarks>
/// The log-probs are whatever the server reports: <c>sharpen serve</c> reports the unmodified policy's (temperature 1),
/// as the torch engine does; other servers may report the tempered distribution's. The trainer recomputes its own.
/// </remarks>
public sealed class OpenAiEngine : IRolloutEngine, IDisposable
{
    readonly OpenAiEngineOptions _options;
    readonly HttpClient _http;

    /// <summary>An engine for the server at <see cref="OpenAiEngineOptions.BaseUrl"/>; <paramref name="tokenizer"/> must be the served model's.</summary>
    public OpenAiEngine(OpenAiEngineOptions options, ITokenizer tokenizer, IEnumerable<int>? eosIds = null, HttpMessageHandler? handler = null)
    {
        _options = options.Validate();
        Tokenizer = tokenizer;
        EosIds = (eosIds ?? []).Concat(tokenizer.EosTokenId is { } e ? [e] : []).ToHashSet();
        var baseUrl = options.BaseUrl.AbsoluteUri.EndsWith('/') ? options.BaseUrl : new Uri(options.BaseUrl.AbsoluteUri + "/");
        _http = handler is null ? new HttpClient() : new HttpClient(handler);
        _http.BaseAddress = baseUrl;
        _http.Timeout = options.Timeout;
        if (options.ApiKey is { } key) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
    }

    /// <inheritdoc/>
    public ITokenizer Tokenizer { get; }
    /// <inheritdoc/>
    public IReadOnlySet<int> EosIds { get; }

    /// <inheritdoc/>
    public IReadOnlyList<Rollout> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingOptions options)
    {
        options.Validate();
        if (prompts.Any(p => p.Count == 0)) throw new ArgumentException("a prompt encodes to no tokens");
        if (!options.UseKvCache) throw new ArgumentException("the openai engine has no no-cache mode (use_kv_cache: false is a torch engine check)");
        var chunks = new List<(int Start, int Count)>();
        for (int s = 0; s < prompts.Count; s += _options.PromptsPerRequest) chunks.Add((s, Math.Min(_options.PromptsPerRequest, prompts.Count - s)));
        using var gate = new SemaphoreSlim(_options.Concurrency);
        var tasks = chunks.Select(async (c, i) =>
        {
            await gate.WaitAsync().ConfigureAwait(false);
            try { return await RequestAsync(prompts, c.Start, c.Count, options with { Seed = options.Seed + i }).ConfigureAwait(false); }
            finally { gate.Release(); }
        }).ToList();
        return Task.WhenAll(tasks).GetAwaiter().GetResult().SelectMany(x => x).ToList();
    }

    async Task<List<Rollout>> RequestAsync(IReadOnlyList<IReadOnlyList<int>> prompts, int start, int count, SamplingOptions o)
    {
        var body = new JsonObject
        {
            ["model"] = _options.Model,
            ["prompt"] = _options.PromptsAsTokenIds
                ? new JsonArray(Enumerable.Range(start, count).Select(i => (JsonNode)new JsonArray(prompts[i].Select(t => (JsonNode)t).ToArray())).ToArray())
                : new JsonArray(Enumerable.Range(start, count).Select(i => (JsonNode)Tokenizer.Decode(prompts[i], skipSpecialTokens: false)).ToArray()),
            ["max_tokens"] = o.MaxNewTokens,
            ["temperature"] = o.Temperature,
            ["top_p"] = o.TopP,
            ["n"] = o.SamplesPerPrompt,
            ["seed"] = o.Seed,
            ["logprobs"] = 0,
            ["return_tokens_as_token_ids"] = true,
        };
        if (o.TopK > 0) body["top_k"] = o.TopK;
        if (!o.StopAtEos) body["ignore_eos"] = true;
        if (o.StopStrings.Count > 0) body["stop"] = new JsonArray(o.StopStrings.Select(s => (JsonNode)s).ToArray());
        var url = new Uri(_http.BaseAddress!, "completions");
        var json = await PostAsync(url, body.ToJsonString()).ConfigureAwait(false);
        if (json["choices"] is not JsonArray choices || choices.Count != count * o.SamplesPerPrompt)
            throw new InvalidDataException($"{url}: expected {count * o.SamplesPerPrompt} choices (prompts × n), got {json["choices"]?.ToJsonString() ?? "none"}");
        var result = new Rollout[choices.Count];
        foreach (var node in choices)
        {
            if (node is not JsonObject choice || choice["index"]?.GetValue<int>() is not { } index || index < 0 || index >= result.Length)
                throw new InvalidDataException($"{url}: a choice without a valid index: {node?.ToJsonString()}");
            result[index] = ReadChoice(url, choice, prompts[start + index / o.SamplesPerPrompt], start + index / o.SamplesPerPrompt, index % o.SamplesPerPrompt);
        }
        return [.. result];
    }

    Rollout ReadChoice(Uri url, JsonObject choice, IReadOnlyList<int> prompt, int promptIndex, int sampleIndex)
    {
        if (choice["logprobs"] is not JsonObject lp || lp["tokens"] is not JsonArray tokens || lp["token_logprobs"] is not JsonArray logprobs || tokens.Count != logprobs.Count)
            throw new InvalidDataException($"{url}: choice {choice["index"]} has no logprobs.tokens / token_logprobs of equal length (does the server support logprobs?)");
        var ids = new int[tokens.Count];
        var lps = new float[tokens.Count];
        for (int t = 0; t < tokens.Count; t++)
        {
            var s = tokens[t]?.GetValue<string>() ?? "";
            if (!s.StartsWith("token_id:", StringComparison.Ordinal) || !int.TryParse(s.AsSpan("token_id:".Length), NumberStyles.Integer, CultureInfo.InvariantCulture, out ids[t]))
                throw new InvalidDataException($"{url}: token '{s}' is not 'token_id:N'; the server must support return_tokens_as_token_ids (vLLM, sharpen serve)");
            lps[t] = logprobs[t] is JsonValue v && v.TryGetValue<double>(out var d) ? (float)d : float.NaN;
        }
        var finish = choice["finish_reason"]?.GetValue<string>();
        var stop = finish switch
        {
            "length" => StopReason.MaxTokens,
            "stop" when ids.Length > 0 && EosIds.Contains(ids[^1]) => StopReason.Eos,
            "stop" => StopReason.StopString,
            _ => throw new InvalidDataException($"{url}: choice {choice["index"]} has finish_reason '{finish}'; expected 'stop' or 'length'"),
        };
        return new Rollout(promptIndex, sampleIndex, [.. prompt], ids, Tokenizer.Decode(ids, skipSpecialTokens: true), lps, stop);
    }

    async Task<JsonObject> PostAsync(Uri url, string body)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await _http.PostAsync(url, content).ConfigureAwait(false);
        var text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            string message = text;
            try { message = JsonNode.Parse(text)?["error"]?["message"]?.GetValue<string>() ?? text; } catch (JsonException) { }
            throw new HttpRequestException($"{url}: HTTP {(int)response.StatusCode}: {message}", null, response.StatusCode);
        }
        try { return JsonNode.Parse(text) as JsonObject ?? throw new InvalidDataException($"{url}: the response is not a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"{url}: the response is not JSON: {e.Message}"); }
    }

    /// <summary>Writes <paramref name="policy"/> (merged, with the tokenizer) to <see cref="OpenAiEngineOptions.CheckpointDir"/> and calls the reload endpoint.</summary>
    public void SyncWeights(CausalLM policy)
    {
        var dir = _options.CheckpointDir ?? throw new InvalidOperationException("the openai engine needs checkpoint_dir (a folder the server reads) to sync weights");
        HfCheckpoint.SaveAtomically(dir, policy, Tokenizer);
        if (_options.ReloadEndpoint is not { } endpoint) return;
        var path = Path.GetFullPath(dir);
        var escaped = JsonSerializer.Serialize(path)[1..^1];
        var url = new Uri(_http.BaseAddress!, endpoint);
        PostAsync(url, _options.ReloadBody.Replace("{path}", escaped, StringComparison.Ordinal)).GetAwaiter().GetResult();
    }

    /// <summary>Releases the HTTP client.</summary>
    public void Dispose() => _http.Dispose();
}
