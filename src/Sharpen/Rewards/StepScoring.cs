namespace Sharpen.Rewards;

/// <summary>
/// A process scorer: one score per reasoning step of each (prompt, steps) item. PRMs give the
/// probability that the solution is still correct after each step; implicit PRMs give per-step
/// rewards (differences of prefix log-ratios); stub scorers in tests give anything.
/// </summary>
public interface IStepScorer
{
    /// <summary>Name used in metrics.</summary>
    string Name { get; }

    /// <summary>Per item, one score per step (the same count as the item's steps).</summary>
    double[][] ScoreSteps(IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)> items);
}

/// <summary>Helpers for step scorers.</summary>
public static class StepScores
{
    /// <summary>
    /// Scores <paramref name="items"/> with <paramref name="score"/> on their non-empty steps only. An empty step (a search
    /// step that ended at once, e.g. on end-of-sequence) adds no text and a model cannot encode it; it gets the score of the
    /// last non-empty step before it, or NaN (not scored) when there is none: the value of an unchanged prefix. Scores that
    /// are per-step increments (implicit-PRM step rewards) pass <paramref name="empty"/> = 0 instead: an unchanged prefix
    /// adds nothing.
    /// </summary>
    public static double[][] SkippingEmpty(IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)> items,
        Func<IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)>, double[][]> score, double? empty = null)
    {
        var kept = items.Select(x => (x.Prompt, (IReadOnlyList<string>)x.Steps.Where(s => s.Length > 0).ToList())).ToList();
        var scored = score(kept);
        var result = new double[items.Count][];
        for (int i = 0; i < items.Count; i++)
        {
            result[i] = new double[items[i].Steps.Count];
            int k = -1;
            for (int t = 0; t < result[i].Length; t++)
            {
                if (items[i].Steps[t].Length > 0) { k++; result[i][t] = scored[i][k]; }
                else result[i][t] = empty ?? (k < 0 ? double.NaN : scored[i][k]);
            }
        }
        return result;
    }
}

/// <summary>How step scores become one outcome score.</summary>
public enum StepAggregation
{
    /// <summary>The weakest step (a chain is as good as its worst step).</summary>
    Min,
    /// <summary>The last step's score.</summary>
    Last,
    /// <summary>The product of step scores (probability that every step is right).</summary>
    Product,
    /// <summary>The mean of step scores.</summary>
    Mean,
    /// <summary>The sum of step scores (for implicit-PRM step rewards, whose sum is the outcome log-ratio).</summary>
    Sum,
}

/// <summary>Aggregates step scores.</summary>
public static class StepAggregator
{
    /// <summary>Parses <c>min|last|product|mean|sum</c>; throws listing the known names.</summary>
    public static StepAggregation Parse(string name) => name switch
    {
        "min" => StepAggregation.Min,
        "last" => StepAggregation.Last,
        "product" or "prod" => StepAggregation.Product,
        "mean" => StepAggregation.Mean,
        "sum" => StepAggregation.Sum,
        _ => throw new ArgumentException($"step aggregation '{name}' is not known; expected min, last, product, mean or sum"),
    };

    /// <summary>The outcome score of one chain of step scores; NaN for no steps.</summary>
    public static double Aggregate(IReadOnlyList<double> steps, StepAggregation how)
    {
        if (steps.Count == 0) return double.NaN;
        return how switch
        {
            StepAggregation.Min => steps.Min(),
            StepAggregation.Last => steps[^1],
            StepAggregation.Product => steps.Aggregate(1.0, (a, b) => a * b),
            StepAggregation.Mean => steps.Average(),
            StepAggregation.Sum => steps.Sum(),
            _ => throw new ArgumentOutOfRangeException(nameof(how)),
        };
    }
}
