using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;

namespace Sharpen.Environments;

/// <summary>One answer of a <see cref="FrozenModel"/>: its text and the tokens the request cost (prompt plus answer; 0 when the backend does not say).</summary>
public sealed record FrozenReply(string Text, int Tokens);

/// <summary>
/// A model that is not trained but sits inside an environment and answers what the policy set up (DSP's black-box LLM
/// that reads the policy's hint, DaSLaM's solver that answers the policy's sub-questions). Every
/// <see cref="AnswerAsync"/> is one batched call for a list of conversations; the model counts its calls, requests
/// (conversations) and tokens, for the metrics <c>frozen/calls</c>, <c>frozen/requests</c>, <c>frozen/tokens</c>.
/// Backends: <see cref="EngineFrozenModel"/> (a Sharpen checkpoint in process, or any <see cref="IRolloutEngine"/>: one
/// engine call per batch), <see cref="OpenAiChatFrozenModel"/> (an OpenAI-compatible server: the batch's requests all in
/// flight at once), and, in Sharpen.Serving, any Microsoft.Extensions.AI <c>IChatClient</c>.
/// </summary>
public abstract class FrozenModel : IDisposable
{
    long _calls, _requests, _tokens;
    long _takenCalls, _takenRequests, _takenTokens;
    readonly object _gate = new();

    /// <summary>Batched calls so far.</summary>
    public long Calls => Interlocked.Read(ref _calls);
    /// <summary>Conversations answered so far.</summary>
    public long Requests => Interlocked.Read(ref _requests);
    /// <summary>Tokens the requests cost so far (prompt and answer, as the backend reports them).</summary>
    public long Tokens => Interlocked.Read(ref _tokens);

    /// <summary>The environments stepping through this model in one lock-step batch share this stepper (one
    /// <see cref="AnswerAsync"/> per round for all of them).</summary>
    public IEnvironmentBatchStepper Stepper => _stepper ??= new FrozenBatchStepper(this);
    IEnvironmentBatchStepper? _stepper;

    /// <summary>Answers every conversation (each ends with a <c>user</c> message) in one batched call; replies in order.</summary>
    public async Task<IReadOnlyList<FrozenReply>> AnswerAsync(IReadOnlyList<IReadOnlyList<ChatMessage>> conversations, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(conversations);
        if (conversations.Count == 0) return [];
        var replies = await AnswerBatchAsync(conversations, cancellationToken).ConfigureAwait(false);
        if (replies.Count != conversations.Count)
            throw new InvalidOperationException($"frozen model '{Describe()}': {replies.Count} answers for {conversations.Count} conversations");
        Interlocked.Increment(ref _calls);
        Interlocked.Add(ref _requests, conversations.Count);
        Interlocked.Add(ref _tokens, replies.Sum(r => (long)r.Tokens));
        return replies;
    }

    /// <summary>The counts since the previous call (the first call: since the start), as metric rows
    /// <c>frozen/calls</c>, <c>frozen/requests</c>, <c>frozen/tokens</c>.</summary>
    public IReadOnlyDictionary<string, double> TakeMetrics()
    {
        lock (_gate)
        {
            long c = Calls, r = Requests, t = Tokens;
            var m = new Dictionary<string, double> { ["frozen/calls"] = c - _takenCalls, ["frozen/requests"] = r - _takenRequests, ["frozen/tokens"] = t - _takenTokens };
            (_takenCalls, _takenRequests, _takenTokens) = (c, r, t);
            return m;
        }
    }

    /// <summary>The backend's batched call: one reply per conversation, in order.</summary>
    protected abstract Task<IReadOnlyList<FrozenReply>> AnswerBatchAsync(IReadOnlyList<IReadOnlyList<ChatMessage>> conversations, CancellationToken cancellationToken);

    /// <summary>A short description for messages and summary.json (checkpoint folder, model and URL).</summary>
    public abstract string Describe();

    /// <summary>Releases what the model owns.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases what the model owns.</summary>
    protected virtual void Dispose(bool disposing) { }
}

/// <summary>
/// A frozen model over an <see cref="IRolloutEngine"/> (a Sharpen checkpoint in process: <see cref="Open"/>): the batch's
/// conversations are rendered (by default <see cref="TranscriptRenderer.Plain"/>) and generated in one
/// <see cref="IRolloutEngine.Generate(IReadOnlyList{IReadOnlyList{int}}, SamplingOptions)"/> call; the reply is the text
/// up to the first stop string. Tokens = prompt tokens + generated tokens.
/// </summary>
public sealed class EngineFrozenModel : FrozenModel
{
    readonly IRolloutEngine _engine;
    readonly ChatRenderer _render;
    readonly SamplingOptions _sampling;
    readonly IDisposable? _owned;
    readonly string _label;
    long _round;

    /// <summary>A frozen model over <paramref name="engine"/>; <paramref name="owned"/> (e.g. the loaded model) is disposed with it.</summary>
    public EngineFrozenModel(IRolloutEngine engine, SamplingOptions sampling, ChatRenderer? render = null, IDisposable? owned = null, string label = "engine")
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(sampling);
        (_engine, _sampling, _render, _owned, _label) = (engine, sampling.Validate(), render ?? TranscriptRenderer.Plain, owned, label);
    }

    /// <summary>Loads the Sharpen (Hugging Face layout) checkpoint in <paramref name="directory"/> with its tokenizer.</summary>
    public static EngineFrozenModel Open(string directory, SamplingOptions sampling, ChatRenderer? render = null)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"frozen model checkpoint '{directory}' does not exist");
        var loaded = HfCheckpoint.Load(directory, requireTokenizer: true);
        loaded.Model.eval();
        return new EngineFrozenModel(new RolloutEngine(loaded.Model, loaded.Tokenizer!), sampling, render, loaded.Model, directory);
    }

    /// <inheritdoc />
    public override string Describe() => _label;

    /// <inheritdoc />
    protected override Task<IReadOnlyList<FrozenReply>> AnswerBatchAsync(IReadOnlyList<IReadOnlyList<ChatMessage>> conversations, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var prompts = conversations.Select(c => (IReadOnlyList<int>)_engine.Tokenizer.Encode(_render(c), addSpecialTokens: true).ToArray()).ToList();
        long round = Interlocked.Increment(ref _round);
        var rollouts = _engine.Generate(prompts, _sampling with { SamplesPerPrompt = 1, Seed = _sampling.Seed + round });
        IReadOnlyList<FrozenReply> replies = rollouts.Select((r, i) => new FrozenReply(Cut(r.CompletionText, _sampling.StopStrings), prompts[i].Count + r.CompletionIds.Length)).ToArray();
        return Task.FromResult(replies);
    }

    static string Cut(string text, IReadOnlyList<string> stops)
    {
        int end = text.Length;
        foreach (var s in stops)
        {
            int i = text.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && i < end) end = i;
        }
        return text[..end];
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _owned?.Dispose();
    }
}

/// <summary>
/// A frozen model behind an OpenAI-compatible server (<c>sharpen serve</c>, vLLM, llama.cpp's server):
/// <c>POST {base}/chat/completions</c> per conversation, a batch's requests all in flight at once (the server batches them;
/// <c>sharpen serve</c> decodes them in one continuous batch). Tokens are the response's <c>usage.total_tokens</c>.
/// A failed request stops with the status and the start of the body.
/// </summary>
public sealed class OpenAiChatFrozenModel : FrozenModel
{
    readonly HttpClient _http;
    readonly Uri _base;
    readonly string _model;
    readonly int _maxTokens;
    readonly double _temperature;
    readonly IReadOnlyList<string> _stops;

    /// <summary>A client of <paramref name="baseUrl"/> (ending in <c>/v1</c>) serving <paramref name="model"/>.</summary>
    public OpenAiChatFrozenModel(Uri baseUrl, string model, int maxTokens, double temperature, IReadOnlyList<string>? stops = null,
        TimeSpan? timeout = null, string? apiKey = null, HttpMessageHandler? handler = null)
    {
        ArgumentNullException.ThrowIfNull(baseUrl);
        if (!baseUrl.IsAbsoluteUri || baseUrl.Scheme is not ("http" or "https")) throw new ArgumentException($"frozen model url must be an http(s) URL, got '{baseUrl}'");
        ArgumentException.ThrowIfNullOrWhiteSpace(model);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        _base = new Uri(baseUrl.AbsoluteUri.TrimEnd('/') + "/");
        (_model, _maxTokens, _temperature, _stops) = (model, maxTokens, temperature, stops ?? []);
        _http = handler is null ? new HttpClient() : new HttpClient(handler);
        _http.Timeout = timeout ?? TimeSpan.FromMinutes(2);
        if (apiKey is not null) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    /// <inheritdoc />
    public override string Describe() => $"{_model} at {_base}";

    /// <inheritdoc />
    protected override async Task<IReadOnlyList<FrozenReply>> AnswerBatchAsync(IReadOnlyList<IReadOnlyList<ChatMessage>> conversations, CancellationToken cancellationToken) =>
        await Task.WhenAll(conversations.Select(c => OneAsync(c, cancellationToken))).ConfigureAwait(false);

    async Task<FrozenReply> OneAsync(IReadOnlyList<ChatMessage> conversation, CancellationToken cancellationToken)
    {
        var body = new JsonObject
        {
            ["model"] = _model, ["max_tokens"] = _maxTokens, ["temperature"] = _temperature,
            ["messages"] = new JsonArray(conversation.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content }).ToArray()),
        };
        if (_stops.Count > 0) body["stop"] = new JsonArray(_stops.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray());
        var url = new Uri(_base, "chat/completions");
        using var content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        using var response = await _http.PostAsync(url, content, cancellationToken).ConfigureAwait(false);
        var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"frozen model at {url}: HTTP {(int)response.StatusCode}: {text[..Math.Min(200, text.Length)]}");
        try
        {
            var root = JsonNode.Parse(text)!;
            var answer = root["choices"]![0]!["message"]!["content"]?.GetValue<string>() ?? "";
            int tokens = root["usage"]?["total_tokens"]?.GetValue<int>() ?? 0;
            return new FrozenReply(answer, tokens);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or NullReferenceException or InvalidOperationException or ArgumentOutOfRangeException)
        {
            throw new InvalidOperationException($"frozen model at {url}: the response is not an OpenAI chat completion (choices[0].message.content): {text[..Math.Min(200, text.Length)]}");
        }
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _http.Dispose();
    }
}

/// <summary>
/// Where a recipe's frozen model lives: <c>frozen: {checkpoint: DIR}</c> (loaded in process) or
/// <c>frozen: {url: http://127.0.0.1:8000/v1, model: NAME}</c> (an OpenAI-compatible server), plus how it answers.
/// </summary>
public sealed record FrozenModelSpec
{
    /// <summary>A Sharpen checkpoint folder (with its tokenizer), loaded in this process.</summary>
    public string? Checkpoint { get; init; }
    /// <summary>An OpenAI-compatible server's base URL, ending in <c>/v1</c>.</summary>
    public string? Url { get; init; }
    /// <summary>Server only: the model name to ask for.</summary>
    public string? Model { get; init; }
    /// <summary>Server only: sent as <c>Authorization: Bearer KEY</c>.</summary>
    public string? ApiKey { get; init; }
    /// <summary>Most tokens of one answer. Default 48.</summary>
    public int MaxNewTokens { get; init; } = 48;
    /// <summary>Sampling temperature of the frozen model. Default 0 (greedy: the frozen model is a fixed function of its input).</summary>
    public double Temperature { get; init; }
    /// <summary>Where an answer ends. Default a newline.</summary>
    public IReadOnlyList<string> Stop { get; init; } = ["\n"];
    /// <summary>Checkpoint only: how a conversation becomes the model's prompt: <c>plain</c> (<see cref="TranscriptRenderer.Plain"/>),
    /// <c>tagged</c> (<see cref="TranscriptRenderer.Tagged"/>) or <c>raw</c> (the last user message's text alone, for a
    /// model trained on bare task prompts). Default <c>raw</c>.</summary>
    public string Template { get; init; } = "raw";
    /// <summary>Server only: seconds one request may take. Default 120.</summary>
    public double TimeoutSeconds { get; init; } = 120;
    /// <summary>Seed of the frozen model's sampling (used when <see cref="Temperature"/> &gt; 0).</summary>
    public long Seed { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the key that is wrong.</summary>
    public FrozenModelSpec Validate()
    {
        if ((Checkpoint is null) == (Url is null)) throw new ArgumentException("frozen needs exactly one of 'checkpoint' (a Sharpen checkpoint folder) or 'url' (an OpenAI-compatible server's /v1 URL)");
        if (Url is not null)
        {
            if (!(Uri.TryCreate(Url, UriKind.Absolute, out var u) && u.Scheme is "http" or "https")) throw new ArgumentException($"frozen.url must be an http(s) URL, got '{Url}'");
            if (string.IsNullOrWhiteSpace(Model)) throw new ArgumentException("frozen.model must name the served model when frozen.url is given");
        }
        if (MaxNewTokens < 1) throw new ArgumentException($"frozen.max_new_tokens must be 1 or more, got {MaxNewTokens}");
        if (!(Temperature >= 0) || !double.IsFinite(Temperature)) throw new ArgumentException($"frozen.temperature must be 0 or more, got {Temperature.ToString(CultureInfo.InvariantCulture)}");
        if (Template is not ("raw" or "plain" or "tagged")) throw new ArgumentException($"frozen.template must be raw, plain or tagged, got '{Template}'");
        if (!(TimeoutSeconds > 0)) throw new ArgumentException($"frozen.timeout_seconds must be positive, got {TimeoutSeconds.ToString(CultureInfo.InvariantCulture)}");
        return this;
    }

    /// <summary>The prompt renderer <see cref="Template"/> names.</summary>
    public ChatRenderer Renderer => Template switch
    {
        "plain" => TranscriptRenderer.Plain,
        "tagged" => TranscriptRenderer.Tagged,
        _ => Raw,
    };

    /// <summary>The last <c>user</c> message's text: a frozen task model sees exactly the prompt format it was trained on.</summary>
    public static string Raw(IReadOnlyList<ChatMessage> messages) => messages.LastOrDefault(m => m.Role == "user")?.Content ?? "";

    /// <summary>Loads the checkpoint or connects to the server.</summary>
    public FrozenModel Open()
    {
        Validate();
        if (Checkpoint is not null)
            return EngineFrozenModel.Open(Checkpoint, new SamplingOptions { Temperature = Temperature, MaxNewTokens = MaxNewTokens, StopStrings = Stop, Seed = Seed }, Renderer);
        return new OpenAiChatFrozenModel(new Uri(Url!), Model!, MaxNewTokens, Temperature, Stop, TimeSpan.FromSeconds(TimeoutSeconds), ApiKey);
    }
}
