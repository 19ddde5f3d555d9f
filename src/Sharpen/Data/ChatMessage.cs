namespace Sharpen.Data;

/// <summary>One message of a conversation, as in TRL's conversational datasets.</summary>
/// <param name="Role">Usually <c>system</c>, <c>user</c> or <c>assistant</c>.</param>
/// <param name="Content">The message text.</param>
public sealed record ChatMessage(string Role, string Content);
