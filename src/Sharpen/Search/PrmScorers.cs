using Sharpen.Rewards;

namespace Sharpen.Search;

/// <summary>
/// An implicit PRM's step rewards as values of prefixes: step t scores σ(q_t) with q_t = Σ_{i≤t} r_i, the implicit
/// Q-value of the prefix (Yuan et al. 2024: q_t = β·log π_θ/π_ref of the first t steps; with the cross-entropy loss,
/// σ(q_T) is trained to be the probability the whole solution is correct). So the scores are probabilities like a
/// Monte-Carlo PRM's: <see cref="StepAggregation.Last"/> is the value of the prefix, and a score below 0.5 marks a step
/// after which the model expects failure (the first-wrong-step rule of <see cref="PrmMetrics.FirstError"/>).
/// </summary>
public sealed class ImplicitPrmValues(IStepScorer implicitPrm) : IStepScorer
{
    /// <inheritdoc />
    public string Name => implicitPrm.Name;

    /// <inheritdoc />
    public double[][] ScoreSteps(IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)> items)
    {
        // σ(q_t), q_t = Σ_{i≤t} r_i
        var rewards = implicitPrm.ScoreSteps(items);
        var result = new double[rewards.Length][];
        for (int i = 0; i < rewards.Length; i++)
        {
            result[i] = new double[rewards[i].Length];
            double q = 0;
            for (int t = 0; t < rewards[i].Length; t++)
            {
                q += rewards[i][t];
                result[i][t] = 1.0 / (1.0 + Math.Exp(-q));
            }
        }
        return result;
    }
}

/// <summary>
/// Lets any step scorer see partial solutions with empty steps (a search step that ended at once, e.g. on end-of-sequence):
/// only the non-empty steps go to it (<see cref="StepScores.SkippingEmpty"/>, which <see cref="ProcessRewardModel"/> already
/// applies itself); an empty step gets the score of the last non-empty step before it, or NaN (not scored) when there is none.
/// The implicit-PRM scorer kind wraps its prefix values (<see cref="ImplicitPrmValues"/>) in it.
/// </summary>
public sealed class NonEmptySteps(IStepScorer inner) : IStepScorer
{
    /// <inheritdoc />
    public string Name => inner.Name;

    /// <inheritdoc />
    public double[][] ScoreSteps(IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)> items) => StepScores.SkippingEmpty(items, inner.ScoreSteps);
}

/// <summary>
/// A PRM's outcome score for finished solutions only: a completion with no extractable final answer (cut off by the
/// budget or the length limit) gets NaN, "not applicable", instead of the PRM's value of an unfinished prefix, which
/// can be high although the completion cannot be correct. Only answered completions go to the model.
/// </summary>
public sealed class AnsweredOnly(IOutcomeScorer inner) : IOutcomeScorer
{
    /// <inheritdoc />
    public string Name => inner.Name;

    /// <inheritdoc />
    public double[] Score(SearchProblem problem, IReadOnlyList<(string Completion, int Tokens)> completions)
    {
        var result = Enumerable.Repeat(double.NaN, completions.Count).ToArray();
        var answered = Enumerable.Range(0, completions.Count).Where(i => problem.ExtractAnswer(completions[i].Completion) is not null).ToList();
        if (answered.Count == 0) return result;
        var s = inner.Score(problem, answered.Select(i => completions[i]).ToList());
        for (int k = 0; k < answered.Count; k++) result[answered[k]] = s[k];
        return result;
    }
}
