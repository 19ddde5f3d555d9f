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

    /// <summary>
    /// SRAIF's critique step (Bao et al. 2024, "Aligning Large Language Models from Self-Reference AI Feedback with one
    /// General Principle", arXiv:2406.11190): before any verdict the judge criticises answers A and B, each against the
    /// <paramref name="reference"/> (its own answer to the instruction, or a gold one). The reply is free text; it becomes
    /// the critique part of <see cref="CritiquedPairwisePrompt"/>.
    /// </summary>
    public static string CritiquePrompt(string instruction, string first, string second, string? reference = null)
    {
        var b = new StringBuilder();
        b.Append("You are criticising two answers to an instruction.\n\nInstruction:\n").Append(instruction).Append("\n\n");
        if (reference is not null) b.Append("Your own answer (use it as the reference):\n").Append(reference).Append("\n\n");
        b.Append("Answer A:\n").Append(first).Append("\n\nAnswer B:\n").Append(second).Append("\n\n");
        b.Append(reference is null
            ? "Write a short critique of each answer: what it gets right, what is wrong or missing. Do not pick a winner yet."
            : "Compare each answer with the reference and write a short critique of each: what it gets right, what is wrong or missing. Do not pick a winner yet.");
        return b.ToString();
    }

    /// <summary>SRAIF's last step: which answer fits <paramref name="principle"/> better, judged from the
    /// <paramref name="critique"/> the judge wrote (<see cref="CritiquePrompt"/>); the reply ends with a verdict line as in
    /// <see cref="PairwisePrompt"/>.</summary>
    public static string CritiquedPairwisePrompt(string instruction, string first, string second, string critique, string principle = DefaultPrinciple)
    {
        var b = new StringBuilder();
        b.Append("You are judging two answers to an instruction.\n\nInstruction:\n").Append(instruction).Append("\n\n");
        b.Append("Answer A:\n").Append(first).Append("\n\nAnswer B:\n").Append(second).Append("\n\n");
        b.Append("Critique of both answers:\n").Append(critique).Append("\n\n");
        b.Append(principle).Append(" Decide from the critique, then end with one line \"Verdict: A\", \"Verdict: B\" or \"Verdict: tie\".");
        return b.ToString();
    }

    /// <summary>
    /// GenPRM's generative step verification (Zhao et al. 2025, arXiv:2504.00891): the judge sees the problem, the earlier
    /// steps and step <paramref name="index"/> (0-based), reasons about that one step (it may recompute it) and ends with
    /// <c>Judgement: correct</c> or <c>Judgement: wrong</c> (<see cref="ParseStepJudgement"/>). Its reasoning is the
    /// step's rationale.
    /// </summary>
    public static string StepVerifyPrompt(string instruction, IReadOnlyList<string> steps, int index, string? reference = null)
    {
        ArgumentNullException.ThrowIfNull(steps);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, steps.Count);
        var b = new StringBuilder();
        b.Append("You are verifying one step of a step-by-step solution.\n\nProblem:\n").Append(instruction).Append("\n\n");
        if (reference is not null) b.Append("Reference answer:\n").Append(reference).Append("\n\n");
        if (index > 0)
        {
            b.Append("Earlier steps:\n");
            for (int i = 0; i < index; i++) b.Append(CultureInfo.InvariantCulture, $"Step {i + 1}: ").Append(steps[i]).Append('\n');
            b.Append('\n');
        }
        b.Append(CultureInfo.InvariantCulture, $"Step to verify (step {index + 1}):\n").Append(steps[index]).Append("\n\n");
        b.Append("Check this step (recompute what it computes), then end with one line \"Judgement: correct\" or \"Judgement: wrong\".");
        return b.ToString();
    }

    /// <summary>The first-error prompt (one of AURORA's ensemble of prompts, and ProcessBench's question): the index of the
    /// earliest wrong step, <c>Error step: k</c> (1-based) or <c>Error step: none</c> (<see cref="ParseFirstError"/>).</summary>
    public static string FirstErrorPrompt(string instruction, IReadOnlyList<string> steps, string? reference = null)
    {
        ArgumentNullException.ThrowIfNull(steps);
        var b = new StringBuilder();
        b.Append("You are looking for the first mistake in a step-by-step solution.\n\nProblem:\n").Append(instruction).Append("\n\n");
        if (reference is not null) b.Append("Reference answer:\n").Append(reference).Append("\n\n");
        for (int i = 0; i < steps.Count; i++) b.Append(CultureInfo.InvariantCulture, $"Step {i + 1}: ").Append(steps[i]).Append('\n');
        b.Append(CultureInfo.InvariantCulture, $"\nFind the earliest wrong step. End with one line \"Error step: k\" with k from 1 to {steps.Count}, or \"Error step: none\" when every step is correct.");
        return b.ToString();
    }

    /// <summary>AURORA's reverse verification: does the solution's final answer agree with the <paramref name="reference"/>
    /// answer? The reply ends with <c>Matches reference: yes</c> or <c>no</c> (<see cref="ParseMatchesReference"/>).</summary>
    public static string ReverseVerifyPrompt(string instruction, IReadOnlyList<string> steps, string reference)
    {
        ArgumentNullException.ThrowIfNull(steps);
        ArgumentNullException.ThrowIfNull(reference);
        var b = new StringBuilder();
        b.Append("You are checking a solution's final answer against a reference answer.\n\nProblem:\n").Append(instruction).Append("\n\n");
        b.Append("Reference answer:\n").Append(reference).Append("\n\nSolution:\n");
        for (int i = 0; i < steps.Count; i++) b.Append(CultureInfo.InvariantCulture, $"Step {i + 1}: ").Append(steps[i]).Append('\n');
        b.Append("\nDoes the solution's final answer agree with the reference answer? End with one line \"Matches reference: yes\" or \"Matches reference: no\".");
        return b.ToString();
    }

    static readonly Regex JudgementLine = new(@"judgement\s*[:=]\s*\**\s*(correct|wrong|incorrect)\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
    static readonly Regex ErrorStepLine = new(@"error\s+step\s*[:=]\s*\**\s*(none|\d+)\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
    static readonly Regex MatchesLine = new(@"matches\s+reference\s*[:=]\s*\**\s*(yes|no)\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);

    /// <summary>The last <c>Judgement: correct|wrong</c> of a reply (true = correct); null when there is none.</summary>
    public static bool? ParseStepJudgement(string? reply)
    {
        if (string.IsNullOrEmpty(reply)) return null;
        var ms = JudgementLine.Matches(reply);
        if (ms.Count == 0) return null;
        return ms[^1].Groups[1].Value.Equals("correct", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// The last <c>Error step: k|none</c> of a reply as one bool per step: steps before k correct, step k and every later
    /// one wrong (a solution stays wrong after its first error, as PRM labels are read); all correct for <c>none</c>. Null
    /// when there is no such line or k lies outside 1..<paramref name="steps"/>.
    /// </summary>
    public static bool[]? ParseFirstError(string? reply, int steps)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(steps);
        if (string.IsNullOrEmpty(reply)) return null;
        var ms = ErrorStepLine.Matches(reply);
        if (ms.Count == 0) return null;
        var v = ms[^1].Groups[1].Value;
        if (v.Equals("none", StringComparison.OrdinalIgnoreCase)) return Enumerable.Repeat(true, steps).ToArray();
        if (!int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int k) || k < 1 || k > steps) return null;
        return [.. Enumerable.Range(0, steps).Select(i => i < k - 1)];
    }

    /// <summary>The last <c>Matches reference: yes|no</c> of a reply; null when there is none.</summary>
    public static bool? ParseMatchesReference(string? reply)
    {
        if (string.IsNullOrEmpty(reply)) return null;
        var ms = MatchesLine.Matches(reply);
        if (ms.Count == 0) return null;
        return ms[^1].Groups[1].Value.Equals("yes", StringComparison.OrdinalIgnoreCase);
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
