namespace Sharpen.Data;

/// <summary>A supervised example: the model learns to write <paramref name="Completion"/> after <paramref name="Prompt"/>.</summary>
/// <param name="Prompt">Conditioning text (not trained on, unless the trainer trains on the whole text).</param>
/// <param name="Completion">Target text.</param>
/// <param name="Fields">The row's other keys: strings as they are, other JSON values as raw JSON text.
/// Rewards read the ground truth from here (e.g. <c>answer</c>, <c>numbers</c>, <c>target</c>).</param>
public sealed record SftExample(string Prompt, string Completion, IReadOnlyDictionary<string, string> Fields)
{
    /// <summary>Which of TRL's shapes the row had; it decides what <c>assistant_only_loss</c> and <c>completion_only_loss</c> train.</summary>
    public SftShape Shape { get; init; } = SftShape.PromptCompletion;

    /// <summary>For <see cref="SftShape.Conversation"/> rows: the character spans of <c>Prompt + Completion</c> the assistant
    /// wrote, one per assistant message (the last one is the completion). Null otherwise, or when the chat template rewrites
    /// earlier turns so they cannot be located (<see cref="AssistantSpansError"/> says why).</summary>
    public IReadOnlyList<(int Start, int End)>? AssistantSpans { get; init; }

    /// <summary>Why <see cref="AssistantSpans"/> is null for a conversation (<c>file:line: ...</c>), or null.</summary>
    public string? AssistantSpansError { get; init; }
}

/// <summary>The shape of an SFT row, in TRL's terms.</summary>
public enum SftShape
{
    /// <summary><c>{"prompt", "completion"}</c>, as text or as messages.</summary>
    PromptCompletion,
    /// <summary><c>{"messages": [...]}</c>: conversational language modeling; the prompt is the conversation before the last assistant message.</summary>
    Conversation,
    /// <summary><c>{"text"}</c>: standard language modeling; the prompt is empty and the text is the completion.</summary>
    Text,
}
