namespace Sharpen.Tasks;

/// <summary>
/// A source of problems with checkable answers: it generates problems deterministically from a
/// seed, writes a correct worked solution (the SFT target) and verifies model completions.
/// </summary>
public interface IVerifiableTask
{
    /// <summary>Registry name, e.g. <c>countdown</c>.</summary>
    string Name { get; }

    /// <summary>Every character that prompts and solutions can contain, sorted by code point
    /// (for a character tokenizer).</summary>
    string Alphabet { get; }

    /// <summary>Returns <paramref name="count"/> problems; the same seed gives the same problems on
    /// every run and machine, and the first k problems of a larger count are the same k problems.</summary>
    IReadOnlyList<Problem> Generate(int count, int seed);

    /// <summary>A worked solution: the completion text a correct policy would write.</summary>
    string Solve(Problem problem);

    /// <summary>Checks a completion. Never throws, whatever the completion holds.</summary>
    Verdict Verify(Problem problem, string completion);

    /// <summary>The comparable final answer of a completion (for majority voting), or null.</summary>
    string? ExtractFinalAnswer(string completion);
}
