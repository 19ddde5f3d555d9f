using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.AI;
using Sharpen.Generation;
using AiMessage = Microsoft.Extensions.AI.ChatMessage;
using SharpenMessage = Sharpen.Data.ChatMessage;
using Sharpen.Data;

namespace Sharpen.Serving;

/// <summary>
/// The policy as a Microsoft.Extensions.AI <see cref="IChatClient"/>, in process (no HTTP): requests go through the same
/// <see cref="PolicyHost"/> batch loop as the server's, so many callers share one batched decode. <see cref="ChatOptions"/> map
/// to sampling: Temperature, TopP, TopK, MaxOutputTokens (default: the rest of the context), StopSequences, Seed.
/// Streaming yields the text as the tokens are sampled (an update per token that adds visible text), then the usage.
/// </summary>
public sealed class PolicyChatClient : IChatClient
{
    readonly PolicyHost _host;
    readonly ChatPromptRenderer _render;
    readonly bool _addSpecialTokens;

    /// <summary>A client over <paramref name="host"/> (which stays the caller's); <paramref name="render"/> defaults to the checkpoint's
    /// chat template, else the plain template (<see cref="ServerOptions.CheckpointTemplate"/>).</summary>
    public PolicyChatClient(PolicyHost host, ChatPromptRenderer? render = null, bool addSpecialTokens = true)
    {
        _host = host ?? throw new ArgumentNullException(nameof(host));
        _render = render ?? ServerOptions.CheckpointTemplate(host);
        _addSpecialTokens = addSpecialTokens;
    }

    /// <inheritdoc/>
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<AiMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var (job, stops) = Job(messages, options);
        var result = await _host.GenerateAsync(job, cancellationToken).ConfigureAwait(false);
        var r = result.Rollouts[0];
        return new ChatResponse(new AiMessage(ChatRole.Assistant, OpenAiProtocol.VisibleText(r, stops)))
        {
            ModelId = _host.ModelId,
            ResponseId = "chatcmpl-" + Guid.NewGuid().ToString("N"),
            CreatedAt = DateTimeOffset.UtcNow,
            FinishReason = Finish(r.Stop),
            Usage = Usage(job, r),
        };
    }

    /// <inheritdoc/>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AiMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var (job, stops) = Job(messages, options);
        var tokens = Channel.CreateUnbounded<StreamedToken>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        if (!_host.TrySubmit(job, out var done, tokens.Writer, cancellationToken)) throw new QueueFullException(_host.Options.MaxQueue);
        var id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var live = new LiveText(_host.Tokenizer, stops);
        await foreach (var t in tokens.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            var piece = live.Add(t.Id, t.Stop);
            if (piece.Length > 0)
                yield return new ChatResponseUpdate(ChatRole.Assistant, piece) { ResponseId = id, MessageId = id, ModelId = _host.ModelId };
        }
        var r = (await done.WaitAsync(cancellationToken).ConfigureAwait(false)).Rollouts[0];
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(Usage(job, r))])
        {
            ResponseId = id, MessageId = id, ModelId = _host.ModelId, FinishReason = Finish(r.Stop),
        };
    }

    (GenerationJob Job, IReadOnlyList<string> Stops) Job(IEnumerable<AiMessage> messages, ChatOptions? options)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var list = messages.Select(m => new SharpenMessage(m.Role.Value, m.Text)).ToList();
        if (list.Count == 0) throw new ArgumentException("messages must contain at least one message", nameof(messages));
        if (options?.ModelId is { } model && model != _host.ModelId) throw new ArgumentException($"model '{model}' is not served here; this client serves '{_host.ModelId}'");
        var ids = _host.Tokenizer.Encode(_render(list, true), _addSpecialTokens);
        int room = _host.ContextLength - ids.Count;
        if (room < 1) throw new ArgumentException($"the conversation takes {ids.Count} tokens, the model's whole context ({_host.ContextLength})");
        int maxTokens = options?.MaxOutputTokens ?? room;
        if (maxTokens > room) throw new ArgumentException($"MaxOutputTokens {maxTokens} does not fit: the conversation takes {ids.Count} of the model's {_host.ContextLength} tokens");
        var stops = options?.StopSequences?.ToList() ?? [];
        var sampling = new SamplingOptions
        {
            Temperature = options?.Temperature ?? 1.0,
            TopP = options?.TopP ?? 1.0,
            TopK = options?.TopK ?? 0,
            MaxNewTokens = maxTokens,
            StopStrings = stops,
            Seed = options?.Seed ?? Random.Shared.NextInt64(),
        }.Validate();
        return (new GenerationJob([ids], sampling, SeedGiven: options?.Seed is not null), stops);
    }

    static ChatFinishReason Finish(StopReason stop) => stop == StopReason.MaxTokens ? ChatFinishReason.Length : ChatFinishReason.Stop;

    static UsageDetails Usage(GenerationJob job, Rollout r) => new()
    {
        InputTokenCount = job.Prompts[0].Count, OutputTokenCount = r.CompletionIds.Length, TotalTokenCount = job.Prompts[0].Count + r.CompletionIds.Length,
    };

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return new ChatClientMetadata("sharpen", defaultModelId: _host.ModelId);
        if (serviceType.IsInstanceOfType(this)) return this;
        if (serviceType == typeof(PolicyHost)) return _host;
        return null;
    }

    /// <summary>Nothing to release: the <see cref="PolicyHost"/> belongs to the caller.</summary>
    public void Dispose() { }
}
