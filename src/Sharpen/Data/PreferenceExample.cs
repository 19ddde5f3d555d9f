namespace Sharpen.Data;

/// <summary>A preference pair: after <paramref name="Prompt"/>, <paramref name="Chosen"/> is preferred to <paramref name="Rejected"/>.</summary>
public sealed record PreferenceExample(string Prompt, string Chosen, string Rejected)
{
    /// <summary>The row's other keys: strings as they are, other JSON values as raw JSON text.</summary>
    public IReadOnlyDictionary<string, string> Fields { get; init; } = new Dictionary<string, string>();
}
