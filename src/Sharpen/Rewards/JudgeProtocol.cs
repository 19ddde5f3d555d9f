using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Sharpen.Rewards;

/// <summary>What a pairwise judge said about one ordering of two answers: the first shown won, the second won, a tie,
/// or nothing parseable (<see cref="Unparsed"/>, the clear failure value: it counts as no preference and is counted).</summary>
public enum PairVerdict
{
    /// <summary>The reply held no verdict line the parser accepts.</summary>
    Unparsed,
    /// <summary>The answer shown first (A) is better.</summary>
    First,
    /// <summary>The answer shown second (B) is better.</summary>
    Second,
    /// <summary>The judge called it a tie.</summary>
    Tie,
}

/// <summary>
/// The text protocol of an LLM judge, as pure functions: the prompts it is asked (pairwise, pointwise, step labels, and
/// SRAIF's self-reference answer) and the parsers of its replies. A judge's model is anything that turns a prompt into a
/// reply (an OpenAI-compatible server, an in-process checkpoint; see <c>Sharpen.Serving.ChatJudge</c>).
/// <para>Replies are read from their <b>last</b> verdict line (<c>Verdict: A</c>, <c>Score: 7</c>, <c>Steps: + + -</c>),
/// so a judge may reason first. A reply without one parses to the failure value (<see cref="PairVerdict.Unparsed"/>,
/// null), never to a guess.</para>
/// <para>Position bias: <see cref="CombineSwapped"/> turns the verdicts of both orders (A,B) and (B,A) into
/// P(first ≻ second): 1 when both orders agree on the first, 0 when both agree on the second, ½ when they disagree
/// (a position-biased judge) or tie; SRAIF (row 1 of shared PAPERS.md) uses self-consistency over answer
/// orders for the same reason.</para>
/// </summary>
public static class JudgeProtocol
{
    /// <summary>SRAIF's general principle: the judge picks the answer that is best by it.</summary>
    public const string DefaultPrinciple = "Which answer is correct and most helpful?";

    /// <summary>
    /// SRAIF's first step: the judge answers the instruction itself; its answer is then the reference of the pairwise
    /// and pointwise prompts ("self-reference").
    /// </summary>
    public static string SelfAnswerPrompt(string instruction) =>
        $"Answer the following instruction as well as you can.\n\nInstruction:\n{instruction}";

    /// <summary>The pairwise prompt: which of answers A and B is better by <paramref name="principle"/>; with a
    /// <paramref name="reference"/> (the judge's own answer, or a gold answer), the judge is told to compare both with it.</summary>
    public static string PairwisePrompt(string instruction, string first, string second, string? reference = null, string principle = DefaultPrinciple)
    {
        var b = new StringBuilder();
        b.Append("You are judging two answers to an instruction.\n\nInstruction:\n").Append(instruction).Append("\n\n");
        if (reference is not null) b.Append("Reference answer (compare both answers with it):\n").Append(reference).Append("\n\n");
        b.Append("Answer A:\n").Append(first).Append("\n\nAnswer B:\n").Append(second).Append("\n\n");
        b.Append(principle).Append(" Think briefly, then end with one line \"Verdict: A\", \"Verdict: B\" or \"Verdict: tie\".");
        return b.ToString();
    }

    /// <summary>The pointwise prompt: a score from <paramref name="min"/> to <paramref name="max"/> for one answer.</summary>
    public static string PointwisePrompt(string instruction, string answer, int min = 1, int max = 10, string? reference = null, string principle = DefaultPrinciple)
    {
        var b = new StringBuilder();
        b.Append("You are scoring an answer to an instruction.\n\nInstruction:\n").Append(instruction).Append("\n\n");
        if (reference is not null) b.Append("Reference answer (compare the answer with it):\n").Append(reference).Append("\n\n");
        b.Append("Answer:\n").Append(answer).Append("\n\n");
        b.Append(principle).Append(CultureInfo.InvariantCulture, $" Think briefly, then end with one line \"Score: N\" with N from {min} to {max}.");
        return b.ToString();
    }

    /// <summary>The step-label prompt (LLM-as-a-judge process labels, PRM-Lessons and GenPRM's setting): each numbered
    /// step is judged correct (+) or not (−); the reply ends with <c>Steps:</c> and one sign per step.</summary>
    public static string StepLabelPrompt(string instruction, IReadOnlyList<string> steps, string? reference = null)
    {
        ArgumentNullException.ThrowIfNull(steps);
        var b = new StringBuilder();
        b.Append("You are checking a step-by-step solution.\n\nProblem:\n").Append(instruction).Append("\n\n");
        if (reference is not null) b.Append("Reference answer:\n").Append(reference).Append("\n\n");
        for (int i = 0; i < steps.Count; i++) b.Append(CultureInfo.InvariantCulture, $"Step {i + 1}: ").Append(steps[i]).Append('\n');
        b.Append(CultureInfo.InvariantCulture, $"\nFor each of the {steps.Count} steps say whether it is correct. End with one line \"Steps:\" followed by {steps.Count} signs, + for a correct step and - for a wrong one, in order.");
        return b.ToString();
    }

    static readonly Regex VerdictLine = new(@"verdict\s*[:=]\s*\**\s*(?:answer\s+)?\[?\s*(A|B|tie)\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
    static readonly Regex ScoreLine = new(@"score\s*[:=]\s*\**\s*(-?\d+(?:\.\d+)?)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
    static readonly Regex StepsLine = new(@"steps\s*[:=]\s*([+\-−\s,]+)$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Multiline);

    /// <summary>The last <c>Verdict: A|B|tie</c> of a reply; <see cref="PairVerdict.Unparsed"/> when there is none.</summary>
    public static PairVerdict ParsePairwise(string? reply)
    {
        if (string.IsNullOrEmpty(reply)) return PairVerdict.Unparsed;
        var ms = VerdictLine.Matches(reply);
        if (ms.Count == 0) return PairVerdict.Unparsed;
        return ms[^1].Groups[1].Value.ToUpperInvariant() switch
        {
            "A" => PairVerdict.First,
            "B" => PairVerdict.Second,
            _ => PairVerdict.Tie,
        };
    }

    /// <summary>The last <c>Score: N</c> of a reply mapped to [0, 1] as (N − min)/(max − min); null when there is none or
    /// N lies outside [min, max] (a judge that ignores the scale is a failure, not a clipped score).</summary>
    public static double? ParsePointwise(string? reply, int min = 1, int max = 10)
    {
        if (max <= min) throw new ArgumentOutOfRangeException(nameof(max), max, $"max must be > min ({min})");
        if (string.IsNullOrEmpty(reply)) return null;
        var ms = ScoreLine.Matches(reply);
        if (ms.Count == 0) return null;
        double n = double.Parse(ms[^1].Groups[1].Value, CultureInfo.InvariantCulture);
        if (n < min || n > max) return null;
        return (n - min) / (max - min);
    }

    /// <summary>The last <c>Steps: + - ...</c> line of a reply as one bool per step (true = correct); null when there is
    /// none or it holds a different number of signs than <paramref name="steps"/>.</summary>
    public static bool[]? ParseStepLabels(string? reply, int steps)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(steps);
        if (string.IsNullOrEmpty(reply)) return null;
        var ms = StepsLine.Matches(reply);
        if (ms.Count == 0) return null;
        var signs = ms[^1].Groups[1].Value.Where(c => c is '+' or '-' or '−').Select(c => c == '+').ToArray();
        return signs.Length == steps ? signs : null;
    }

    /// <summary>
    /// P(first ≻ second) from the verdicts of both orders: <paramref name="shownFirst"/> is the verdict with the first
    /// answer shown as A, <paramref name="shownSecond"/> with the answers swapped (the first shown as B). Each order's vote
    /// for the first answer is 1 (it won), 0 (it lost) or ½ (tie); the result is their mean, so a judge that always picks
    /// position A gives ½. Null when either order is <see cref="PairVerdict.Unparsed"/>.
    /// </summary>
    public static double? CombineSwapped(PairVerdict shownFirst, PairVerdict shownSecond)
    {
        if (shownFirst == PairVerdict.Unparsed || shownSecond == PairVerdict.Unparsed) return null;
        double a = shownFirst switch { PairVerdict.First => 1, PairVerdict.Second => 0, _ => 0.5 };
        double b = shownSecond switch { PairVerdict.Second => 1, PairVerdict.First => 0, _ => 0.5 };
        return (a + b) / 2;
    }

    /// <summary>P(first ≻ second) of one order alone: 1, 0 or ½ (tie); null when unparsed.</summary>
    public static double? Single(PairVerdict verdict) => verdict switch
    {
        PairVerdict.First => 1,
        PairVerdict.Second => 0,
        PairVerdict.Tie => 0.5,
        _ => null,
    };
}
