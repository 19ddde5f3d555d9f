using Sharpen.Data;

namespace Sharpen.Rewards;

/// <summary>How <see cref="ConsensusFilter"/> compares Monte-Carlo and judge step labels.</summary>
public enum ConsensusMode
{
    /// <summary>PRM-Lessons' rule: keep a whole solution only when both sources put its first wrong step at the same
    /// place (or both find none).</summary>
    FirstError,
    /// <summary>Keep the solution's prefix of steps on which both sources agree, up to the first disagreement.</summary>
    AgreeingPrefix,
}

/// <summary>
/// PRM-Lessons' consensus filtering ("The Lessons of Developing Process Reward Models in Mathematical Reasoning",
/// arXiv:2501.07301): step labels from Monte-Carlo estimation (the share of roll-outs from a step that reach the right
/// answer, as <c>StepLabeler</c> writes them) are kept only where an LLM judge's labels of the same steps agree.
/// A MC label counts as "correct" when it is above <c>mcThreshold</c> (the paper's hard label: any roll-out succeeded,
/// threshold 0). Pure functions of the labels; the judge's labels come from <see cref="JudgeProtocol.StepLabelPrompt"/>.
/// </summary>
public static class ConsensusFilter
{
    /// <summary>Index of the first wrong step (−1 when every step is correct).</summary>
    public static int FirstError(IReadOnlyList<bool> correct)
    {
        for (int i = 0; i < correct.Count; i++) if (!correct[i]) return i;
        return -1;
    }

    /// <summary>MC labels (values in [0, 1]) as correct/wrong: correct when strictly above <paramref name="mcThreshold"/>.</summary>
    public static bool[] HardLabels(IReadOnlyList<double> mcLabels, double mcThreshold = 0.0) =>
        [.. mcLabels.Select(v => v > mcThreshold)];

    /// <summary>
    /// How many leading steps of one solution to keep: all of them or none under <see cref="ConsensusMode.FirstError"/>,
    /// the agreeing prefix under <see cref="ConsensusMode.AgreeingPrefix"/>. Both lists have one label per step.
    /// </summary>
    public static int KeptSteps(IReadOnlyList<double> mcLabels, IReadOnlyList<bool> judgeLabels, ConsensusMode mode = ConsensusMode.FirstError, double mcThreshold = 0.0)
    {
        ArgumentNullException.ThrowIfNull(mcLabels);
        ArgumentNullException.ThrowIfNull(judgeLabels);
        if (mcLabels.Count != judgeLabels.Count)
            throw new ArgumentException($"the judge labelled {judgeLabels.Count} steps but the solution has {mcLabels.Count} MC labels; each step needs one of each");
        var mc = HardLabels(mcLabels, mcThreshold);
        if (mode == ConsensusMode.FirstError) return FirstError(mc) == FirstError(judgeLabels) ? mc.Length : 0;
        int k = 0;
        while (k < mc.Length && mc[k] == judgeLabels[k]) k++;
        return k;
    }

    /// <summary>
    /// The rows kept by consensus: each row's MC labels against the judge's labels of the same row (null = the judge's
    /// reply did not parse: the row is dropped and counted). With <see cref="ConsensusMode.AgreeingPrefix"/> a row keeps
    /// its agreeing steps (rows with none are dropped). Kept labels are the MC labels, unchanged.
    /// </summary>
    public static (List<StepLabelledExample> Kept, int Disagreed, int Unjudged) Filter(IReadOnlyList<StepLabelledExample> rows,
        IReadOnlyList<bool[]?> judgeLabels, ConsensusMode mode = ConsensusMode.FirstError, double mcThreshold = 0.0)
    {
        if (rows.Count != judgeLabels.Count) throw new ArgumentException($"{rows.Count} rows but {judgeLabels.Count} judge label lists");
        var kept = new List<StepLabelledExample>();
        int disagreed = 0, unjudged = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            if (judgeLabels[i] is not { } judge) { unjudged++; continue; }
            int k = KeptSteps(rows[i].Labels, judge, mode, mcThreshold);
            if (k == 0) { disagreed++; continue; }
            kept.Add(k == rows[i].Steps.Count ? rows[i] : rows[i] with { Steps = [.. rows[i].Steps.Take(k)], Labels = [.. rows[i].Labels.Take(k)] });
        }
        return (kept, disagreed, unjudged);
    }
}
