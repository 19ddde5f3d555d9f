using System.Text.Json.Serialization;

namespace Sharpen.Tasks;

/// <summary>Options for <see cref="RetrievalTask"/>.</summary>
public sealed record RetrievalOptions
{
    /// <summary>Topics (2 to 50). Default 6.</summary>
    public int Topics { get; init; } = 6;
    /// <summary>Words per topic (4 to 50); the vocabulary is Topics × WordsPerTopic. Default 6.</summary>
    public int WordsPerTopic { get; init; } = 6;
    /// <summary>Words in a query (1 to WordsPerTopic). Default 2.</summary>
    public int QueryWords { get; init; } = 2;
    /// <summary>Words in a document (1 to WordsPerTopic). Default 3.</summary>
    public int DocumentWords { get; init; } = 3;
    /// <summary>Candidates per query (3 to 64); at least two are on the query's topic. Default 8.</summary>
    public int Candidates { get; init; } = 8;

    /// <summary>The vocabulary size, Topics × WordsPerTopic.</summary>
    [JsonIgnore] public int Vocabulary => Topics * WordsPerTopic;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for values out of range.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(Topics, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Topics, 50);
        ArgumentOutOfRangeException.ThrowIfLessThan(WordsPerTopic, 4);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(WordsPerTopic, 50);
        ArgumentOutOfRangeException.ThrowIfLessThan(QueryWords, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(QueryWords, WordsPerTopic);
        ArgumentOutOfRangeException.ThrowIfLessThan(DocumentWords, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(DocumentWords, WordsPerTopic);
        ArgumentOutOfRangeException.ThrowIfLessThan(Candidates, 3);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Candidates, 64);
    }
}
