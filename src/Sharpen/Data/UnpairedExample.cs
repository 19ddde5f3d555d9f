namespace Sharpen.Data;

/// <summary>
/// One unpaired preference example (TRL's "unpaired preference" format, what KTO trains on): after
/// <paramref name="Prompt"/>, <paramref name="Completion"/> is desirable when <paramref name="Desirable"/> is true and
/// undesirable otherwise.
/// </summary>
public sealed record UnpairedExample(string Prompt, string Completion, bool Desirable)
{
    /// <summary>The row's other keys: strings as they are, other JSON values as raw JSON text.</summary>
    public IReadOnlyDictionary<string, string> Fields { get; init; } = new Dictionary<string, string>();
}
