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
