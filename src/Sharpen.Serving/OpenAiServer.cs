using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Tokenizers;

namespace Sharpen.Serving;

/// <summary>How <see cref="OpenAiServer"/> listens and whom it lets in.</summary>
public sealed record ServerOptions
{
    /// <summary>IP address to listen on (<c>localhost</c> means 127.0.0.1). Default loopback only.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>TCP port; 0 picks a free one (see <see cref="OpenAiServer.BaseAddress"/>). Default 8000.</summary>
    public int Port { get; init; } = 8000;
    /// <summary>When set, every <c>/v1/…</c> request must carry <c>Authorization: Bearer KEY</c> (401 otherwise); <c>/health</c> stays open.</summary>
    public string? ApiKey { get; init; }
    /// <summary>Origins allowed by CORS (browser clients). Empty (the default) sends no CORS headers at all.</summary>
    public IReadOnlyList<string> CorsOrigins { get; init; } = [];
    /// <summary>Largest request body in bytes; a larger one gets 413. Default 8 MiB.</summary>
    public long MaxRequestBytes { get; init; } = 8 << 20;
    /// <summary>Renders chat messages as the prompt. Default (<see cref="CheckpointTemplate"/>): the served checkpoint's Jinja chat
    /// template when its tokenizer has one (chat_template.jinja or tokenizer_config.json), else <see cref="ChatTemplate.RenderPrompt"/>.</summary>
    public ChatPromptRenderer? ChatRenderer { get; init; }
    /// <summary>Whether the rendered chat prompt is encoded with the tokenizer's special tokens (BOS). A template that writes
    /// its own BOS wants false. Default true, matching how <c>sharpen generate</c> encodes a prompt.</summary>
    public bool ChatAddSpecialTokens { get; init; } = true;
    /// <summary>Serve <c>POST /v1/sharpen/reload</c> (reload weights from a folder; for remote RL). Default true.</summary>
    public bool EnableReload { get; init; } = true;
    /// <summary>Where the server logs (default: nowhere).</summary>
    public Action<ILoggingBuilder>? Logging { get; init; }

    /// <summary>
    /// The default renderer: the chat template of the checkpoint <paramref name="host"/> serves (looked up per request, so
    /// a reload's template applies), rendered as transformers' <c>apply_chat_template</c> renders it; the plain template
    /// (<see cref="PlainTemplate"/>) when the tokenizer has none.
    /// </summary>
    public static ChatPromptRenderer CheckpointTemplate(PolicyHost host)
    {
        ArgumentNullException.ThrowIfNull(host);
        return (messages, addGenerationPrompt) => host.Tokenizer is HfTokenizer { ChatTemplate: { } template }
            ? template.Render(messages.Select(m => (object?)ChatFormat.ToTemplateValue(m)).ToList(), addGenerationPrompt)
            : PlainTemplate(messages, addGenerationPrompt);
    }

    /// <summary>The plain template of <see cref="ChatTemplate"/>.</summary>
    public static string PlainTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        var text = ChatTemplate.RenderPrompt(messages);
        return addGenerationPrompt ? text : text[..^"<|assistant|>\n".Length];
    }
}

/// <summary>
/// The OpenAI protocol over a <see cref="PolicyHost"/>, as an ASP.NET Core minimal API: <c>GET /v1/models</c>,
/// <c>POST /v1/completions</c>, <c>POST /v1/chat/completions</c> (JSON or server-sent events), <c>POST /v1/sharpen/reload</c>,
/// <c>GET /health</c>. Every refused request gets OpenAI's error JSON; nothing a client sends stops the server.
/// </summary>
public sealed class OpenAiServer : IAsyncDisposable
{
    readonly PolicyHost _host;
    readonly ServerOptions _options;
    readonly ChatPromptRenderer _render;

    OpenAiServer(WebApplication app, PolicyHost host, ServerOptions options)
    {
        App = app;
        _host = host;
        _options = options;
        _render = options.ChatRenderer ?? ServerOptions.CheckpointTemplate(host);
    }

    /// <summary>The ASP.NET Core application.</summary>
    public WebApplication App { get; }
    /// <summary>Where it listens, e.g. <c>http://127.0.0.1:8000/</c> (the real port when <see cref="ServerOptions.Port"/> was 0).</summary>
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Builds the application and starts listening. The caller keeps ownership of <paramref name="host"/>.</summary>
    public static async Task<OpenAiServer> StartAsync(PolicyHost host, ServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new ServerOptions();
        var address = options.Host == "localhost" ? IPAddress.Loopback
            : IPAddress.TryParse(options.Host, out var ip) ? ip : throw new ArgumentException($"--host must be an IP address (or localhost), got '{options.Host}'");
        if (options.Port is < 0 or > 65535) throw new ArgumentException($"--port must be in 0..65535, got {options.Port}");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        options.Logging?.Invoke(builder.Logging);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(address, options.Port);
            k.Limits.MaxRequestBodySize = options.MaxRequestBytes;
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
        if (options.CorsOrigins.Count > 0)
            builder.Services.AddCors(c => c.AddDefaultPolicy(p => p.WithOrigins([.. options.CorsOrigins]).AllowAnyHeader().AllowAnyMethod()));
        var app = builder.Build();
        var server = new OpenAiServer(app, host, options);
        server.Map();
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.BaseAddress = new Uri(bound.EndsWith('/') ? bound : bound + "/");
        return server;
    }

    void Map()
    {
        if (_options.CorsOrigins.Count > 0) App.UseCors();
        if (_options.ApiKey is { } key) App.Use(async (ctx, next) =>
        {
            if (ctx.Request.Path.StartsWithSegments("/v1") && !HttpMethods.IsOptions(ctx.Request.Method) && !Authorized(ctx.Request, key))
            {
                await WriteJson(ctx, 401, OpenAiException.Body("Incorrect or missing API key; send 'Authorization: Bearer KEY'.", "invalid_request_error", null, "invalid_api_key")).ConfigureAwait(false);
                return;
            }
            await next(ctx).ConfigureAwait(false);
        });
        App.MapGet("/health", (HttpContext ctx) => WriteJson(ctx, 200, new JsonObject { ["status"] = "ok", ["model"] = _host.ModelId }));
        App.MapGet("/v1/models", (HttpContext ctx) => WriteJson(ctx, 200, new JsonObject { ["object"] = "list", ["data"] = new JsonArray(ModelJson()) }));
        App.MapGet("/v1/models/{id}", (HttpContext ctx, string id) => Guard(ctx, () => id == _host.ModelId
            ? WriteJson(ctx, 200, ModelJson())
            : throw new OpenAiException(404, $"The model `{id}` does not exist; this server serves `{_host.ModelId}`.", "model", "model_not_found")));
        App.MapPost("/v1/completions", (HttpContext ctx) => Guard(ctx, () => Completions(ctx, chat: false)));
        App.MapPost("/v1/chat/completions", (HttpContext ctx) => Guard(ctx, () => Completions(ctx, chat: true)));
        if (_options.EnableReload) App.MapPost("/v1/sharpen/reload", (HttpContext ctx) => Guard(ctx, () => Reload(ctx)));
    }

    static bool Authorized(HttpRequest request, string key)
    {
        var header = request.Headers.Authorization.ToString();
        var expected = Encoding.UTF8.GetBytes("Bearer " + key);
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header), expected);
    }

    JsonObject ModelJson() => new() { ["id"] = _host.ModelId, ["object"] = "model", ["created"] = 0, ["owned_by"] = "sharpen", ["max_model_len"] = _host.ContextLength };

    // Turns every failure into OpenAI's error JSON; a request can fail, the server cannot.
    async Task Guard(HttpContext ctx, Func<Task> handler)
    {
        try { await handler().ConfigureAwait(false); }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested) { }
        catch (Exception e) when (!ctx.Response.HasStarted)
        {
            var error = e switch
            {
                OpenAiException o => o,
                BadHttpRequestException { StatusCode: 413 } => new OpenAiException(413, $"The request body exceeds this server's limit of {_options.MaxRequestBytes} bytes.", code: "request_too_large"),
                BadHttpRequestException b => new OpenAiException(b.StatusCode, b.Message),
                QueueFullException q => new OpenAiException(429, q.Message, code: "queue_full", type: "rate_limit_error"),
                // The checkpoint's chat template rejected the conversation (e.g. roles that do not alternate).
                Sharpen.Tokenizers.Jinja.JinjaRaiseException r => new OpenAiException(400, $"The model's chat template rejected the messages: {r.RaisedMessage}", "messages", "invalid_conversation"),
                ArgumentException a => new OpenAiException(400, a.Message),
                _ => new OpenAiException(500, $"The server failed on this request: {e.GetType().Name}: {e.Message}", type: "server_error"),
            };
            if (error.Status == 429) ctx.Response.Headers.RetryAfter = "1";
            await WriteJson(ctx, error.Status, error.ToJson()).ConfigureAwait(false);
        }
        catch (Exception)
        {
            ctx.Abort();   // mid-stream: the client sees a cut connection
        }
    }

    static async Task<JsonObject> ReadBody(HttpContext ctx)
    {
        using var reader = new StreamReader(ctx.Request.Body, Encoding.UTF8);
        return OpenAiProtocol.ParseBody(await reader.ReadToEndAsync(ctx.RequestAborted).ConfigureAwait(false));
    }

    async Task Reload(HttpContext ctx)
    {
        var body = await ReadBody(ctx).ConfigureAwait(false);
        if (body["path"] is not JsonValue v || !v.TryGetValue<string>(out var path) || path.Length == 0)
            throw new OpenAiException(400, "Body must be {\"path\": \"checkpoint folder\"}.", "path", "missing_required_parameter");
        try { await _host.ReloadAsync(path).ConfigureAwait(false); }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new OpenAiException(422, $"Reload from {path} failed; still serving the previous weights: {e.Message}", "path", "reload_failed");
        }
        await WriteJson(ctx, 200, new JsonObject { ["status"] = "ok", ["model"] = _host.ModelId, ["path"] = path, ["reloads"] = _host.Stats.Reloads }).ConfigureAwait(false);
    }

    async Task Completions(HttpContext ctx, bool chat)
    {
        var body = await ReadBody(ctx).ConfigureAwait(false);
        var request = chat
            ? OpenAiProtocol.ParseChat(body, _host, _render, _options.ChatAddSpecialTokens)
            : OpenAiProtocol.ParseCompletion(body, _host);
        var response = new CompletionWriter(_host, request, chat);
        var tokens = request.Stream ? Channel.CreateUnbounded<StreamedToken>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true }) : null;
        // A client that goes away cancels its request: its sequences free their slots at the next step.
        if (!_host.TrySubmit(request.Job, out var pending, tokens?.Writer, ctx.RequestAborted)) throw new QueueFullException(_host.Options.MaxQueue);
        if (tokens is not null) await response.StreamAsync(ctx, tokens.Reader, pending).ConfigureAwait(false);
        else await WriteJson(ctx, 200, response.Json(await pending.WaitAsync(ctx.RequestAborted).ConfigureAwait(false))).ConfigureAwait(false);
    }

    static async Task WriteJson(HttpContext ctx, int status, JsonObject json)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(json.ToJsonString(), ctx.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Blocks until the application stops (Ctrl-C / SIGTERM, or <paramref name="cancellationToken"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => App.WaitForShutdownAsync(cancellationToken);

    /// <summary>Stops listening (in-flight requests finish first) and releases the application; the <see cref="PolicyHost"/> stays the caller's.</summary>
    public async ValueTask DisposeAsync()
    {
        await App.StopAsync().ConfigureAwait(false);
        await App.DisposeAsync().ConfigureAwait(false);
    }
}
