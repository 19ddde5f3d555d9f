using Sharpen.Tasks;

namespace Sharpen.Tests.Tasks;

/// <summary>A four-problem task for tiny-model tests: prompts "l:a" … "l:d"; a completion is right when it starts with the
/// prompt's letter.</summary>
internal sealed class LetterTask : IVerifiableTask
{
    public string Name => "letters";
    public string Alphabet => "abcd";
    public IReadOnlyList<Problem> Generate(int count, int seed) =>
        "abcd".Take(count).Select(c => new Problem("l:" + c, c.ToString(), c.ToString(), new Dictionary<string, string>())).ToList();
    public string Solve(Problem problem) => problem.Answer;
    public Verdict Verify(Problem problem, string completion) => completion.StartsWith(problem.Answer, StringComparison.Ordinal)
        ? new Verdict(1, true, "correct", 1, completion[..1]) : new Verdict(0, false, "wrong_value", 1, null);
    public string? ExtractFinalAnswer(string completion) => completion.Length > 0 ? completion[..1] : null;
}
