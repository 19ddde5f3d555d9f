namespace Sharpen.Data;

/// <summary>A supervised example: the model learns to write <paramref name="Completion"/> after <paramref name="Prompt"/>.</summary>
/// <param name="Prompt">Conditioning text (not trained on).</param>
/// <param name="Completion">Target text.</param>
/// <param name="Fields">The row's other keys: strings as they are, other JSON values as raw JSON text.
/// Rewards read the ground truth from here (e.g. <c>answer</c>, <c>numbers</c>, <c>target</c>).</param>
public sealed record SftExample(string Prompt, string Completion, IReadOnlyDictionary<string, string> Fields);
