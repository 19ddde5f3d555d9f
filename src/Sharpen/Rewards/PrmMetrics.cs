namespace Sharpen.Rewards;

/// <summary>First-wrong-step identification on labelled solutions (ProcessBench's measure).</summary>
/// <param name="ErroneousAccuracy">Among solutions with a wrong step: the fraction whose predicted first wrong step is exactly the labelled one (NaN when there are none).</param>
/// <param name="CorrectAccuracy">Among solutions without a wrong step: the fraction predicted to have none (NaN when there are none).</param>
/// <param name="F1">Harmonic mean of the two accuracies (0 when both are 0; NaN when either is NaN).</param>
/// <param name="Erroneous">Solutions with a labelled wrong step.</param>
/// <param name="Correct">Solutions without one.</param>
public sealed record FirstErrorResult(double ErroneousAccuracy, double CorrectAccuracy, double F1, int Erroneous, int Correct);

/// <summary>
/// Metrics of process reward models as pure functions of labels and scores. Step-level error identification follows
/// ProcessBench (Zheng et al. 2024, "ProcessBench: Identifying Process Errors in Mathematical Reasoning", arXiv:2412.06559): a model's predicted earliest error is the first step it scores below a threshold (or none); accuracy is measured
/// separately on erroneous and on correct solutions, and the F1 score is their harmonic mean.
/// </summary>
public static class PrmMetrics
{
    /// <summary>The index of the first value below <paramref name="threshold"/>, or null when there is none.</summary>
    public static int? FirstBelow(IReadOnlyList<double> values, double threshold)
    {
        for (int i = 0; i < values.Count; i++) if (values[i] < threshold) return i;
        return null;
    }

    /// <summary>
    /// First-wrong-step identification: per solution the true first wrong step is the first label &lt; 0.5 (or none), the
    /// predicted one the first score &lt; <paramref name="threshold"/> (or none); see <see cref="FirstErrorResult"/>.
    /// </summary>
    public static FirstErrorResult FirstError(IReadOnlyList<IReadOnlyList<double>> labels, IReadOnlyList<IReadOnlyList<double>> scores, double threshold = 0.5)
    {
        if (labels.Count != scores.Count) throw new ArgumentException($"{labels.Count} label lists but {scores.Count} score lists");
        int erroneous = 0, correct = 0, erroneousHit = 0, correctHit = 0;
        for (int i = 0; i < labels.Count; i++)
        {
            if (labels[i].Count != scores[i].Count) throw new ArgumentException($"solution {i}: {labels[i].Count} labels but {scores[i].Count} scores");
            var truth = FirstBelow(labels[i], 0.5);
            var predicted = FirstBelow(scores[i], threshold);
            if (truth is null) { correct++; if (predicted is null) correctHit++; }
            else { erroneous++; if (predicted == truth) erroneousHit++; }
        }
        double accE = erroneous == 0 ? double.NaN : (double)erroneousHit / erroneous;
        double accC = correct == 0 ? double.NaN : (double)correctHit / correct;
        double f1 = double.IsNaN(accE) || double.IsNaN(accC) ? double.NaN : accE + accC == 0 ? 0 : 2 * accE * accC / (accE + accC);
        return new FirstErrorResult(accE, accC, f1, erroneous, correct);
    }

    /// <summary>Fraction of steps whose score and label fall on the same side of 0.5 (score ≥ <paramref name="threshold"/> ⇔ label ≥ 0.5); NaN for no steps.</summary>
    public static double StepAccuracy(IReadOnlyList<IReadOnlyList<double>> labels, IReadOnlyList<IReadOnlyList<double>> scores, double threshold = 0.5)
    {
        if (labels.Count != scores.Count) throw new ArgumentException($"{labels.Count} label lists but {scores.Count} score lists");
        int n = 0, hit = 0;
        for (int i = 0; i < labels.Count; i++)
        {
            if (labels[i].Count != scores[i].Count) throw new ArgumentException($"solution {i}: {labels[i].Count} labels but {scores[i].Count} scores");
            for (int j = 0; j < labels[i].Count; j++) { n++; if ((scores[i][j] >= threshold) == (labels[i][j] >= 0.5)) hit++; }
        }
        return n == 0 ? double.NaN : (double)hit / n;
    }

    /// <summary>
    /// Best-of-N accuracy of a verifier: per group of candidates (one problem), the candidate with the highest score is
    /// picked (ties: the first); the result is the fraction of groups whose pick is correct. Empty groups count as wrong;
    /// NaN for no groups.
    /// </summary>
    public static double BestOfN(IReadOnlyList<IReadOnlyList<bool>> correct, IReadOnlyList<IReadOnlyList<double>> scores)
    {
        if (correct.Count != scores.Count) throw new ArgumentException($"{correct.Count} groups of verdicts but {scores.Count} of scores");
        if (correct.Count == 0) return double.NaN;
        int hits = 0;
        for (int g = 0; g < correct.Count; g++)
        {
            if (correct[g].Count != scores[g].Count) throw new ArgumentException($"group {g}: {correct[g].Count} verdicts but {scores[g].Count} scores");
            if (correct[g].Count == 0) continue;
            int best = 0;
            for (int i = 1; i < scores[g].Count; i++) if (scores[g][i] > scores[g][best]) best = i;
            if (correct[g][best]) hits++;
        }
        return (double)hits / correct.Count;
    }
}
