using Microsoft.Extensions.AI;
using Sharpen.Environments;
using AiMessage = Microsoft.Extensions.AI.ChatMessage;
using SharpenMessage = Sharpen.Data.ChatMessage;

namespace Sharpen.Serving;

/// <summary>
/// Any Microsoft.Extensions.AI <see cref="IChatClient"/> as the frozen model of a <c>dsp</c> or <c>daslam</c>
/// environment: a batch's conversations are sent all at once (concurrent <see cref="IChatClient.GetResponseAsync"/>
/// calls, counted as one batched call); a <see cref="PolicyChatClient"/> decodes them together in its host's batch loop.
/// Tokens are the responses' <see cref="UsageDetails.TotalTokenCount"/> (0 when a client does not report usage).
/// </summary>
public sealed class ChatClientFrozenModel : FrozenModel
{
    readonly IChatClient _client;
    readonly ChatOptions? _options;
    readonly bool _own;
    readonly string _label;

    /// <summary>A frozen model over <paramref name="client"/>, asked with <paramref name="options"/> (e.g. Temperature 0,
    /// MaxOutputTokens, StopSequences); <paramref name="ownClient"/> disposes the client with the model.</summary>
    public ChatClientFrozenModel(IChatClient client, ChatOptions? options = null, bool ownClient = false, string label = "chat client")
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        (_options, _own, _label) = (options, ownClient, label);
    }

    /// <inheritdoc />
    public override string Describe() => _label;

    /// <inheritdoc />
    protected override async Task<IReadOnlyList<FrozenReply>> AnswerBatchAsync(IReadOnlyList<IReadOnlyList<SharpenMessage>> conversations,
        CancellationToken cancellationToken) =>
        await Task.WhenAll(conversations.Select(async c =>
        {
            var messages = c.Select(m => new AiMessage(new ChatRole(m.Role), m.Content)).ToList();
            var response = await _client.GetResponseAsync(messages, _options?.Clone(), cancellationToken).ConfigureAwait(false);
            return new FrozenReply(response.Text, (int)(response.Usage?.TotalTokenCount ?? 0));
        })).ConfigureAwait(false);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing && _own) _client.Dispose();
    }
}
