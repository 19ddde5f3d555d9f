using System.Text.Json;

namespace Sharpen.Data;

/// <summary>One message of a conversation, as in TRL's conversational datasets.</summary>
/// <param name="Role">Usually <c>system</c>, <c>user</c>, <c>assistant</c> or <c>tool</c>.</param>
/// <param name="Content">The message text (the text parts joined, when the row gave a list of content parts).</param>
public sealed record ChatMessage(string Role, string Content)
{
    /// <summary>The message object as the dataset row wrote it (content parts, <c>tool_calls</c>, <c>reasoning_content</c>,
    /// <c>name</c>, ...): a chat template receives it as it is, as transformers passes it. Null for a message made from role
    /// and content alone.</summary>
    public JsonElement? Source { get; init; }

    /// <summary>Whether the message carries something the plain <c>&lt;|role|&gt;</c> format cannot show
    /// (<c>tool_calls</c> or <c>reasoning_content</c>); the key's name, or null.</summary>
    public string? TemplateOnlyKey =>
        Source is { ValueKind: JsonValueKind.Object } s
            ? new[] { "tool_calls", "reasoning_content" }.FirstOrDefault(k => s.TryGetProperty(k, out var v) && v.ValueKind != JsonValueKind.Null)
            : null;
}
