using Sharpen.Tasks;
using Sharpen.Generation;

namespace Sharpen.Rewards;

/// <summary>What a reward function sees of one completion: the prompt, the completion, and every field of the dataset row (e.g. the ground truth).</summary>
public sealed record RewardContext(string Prompt, string Completion, IReadOnlyDictionary<string, string> Fields, int CompletionTokens);

/// <summary>
/// A reward: a plain function of (context, completions) → one score per completion, or null where
/// it does not apply. Rule rewards, reward models and user delegates share this interface.
/// </summary>
public interface IRewardFunction
{
    /// <summary>Name used in metrics (<c>reward/NAME</c>).</summary>
    string Name { get; }
    /// <summary>Scores a batch; the result has one entry per context.</summary>
    ValueTask<double?[]> ScoreAsync(IReadOnlyList<RewardContext> batch, CancellationToken cancel = default);
}

/// <summary>The task's verifier as a reward: 1 for a correct answer (plus the task's optional format reward), else 0.</summary>
public sealed class TaskReward(IVerifiableTask task) : IRewardFunction
{
    /// <inheritdoc />
    public string Name => task.Name;

    /// <inheritdoc />
    public ValueTask<double?[]> ScoreAsync(IReadOnlyList<RewardContext> batch, CancellationToken cancel = default) =>
        ValueTask.FromResult(batch.Select(c => (double?)task.Verify(ToProblem(c), c.Completion).Reward).ToArray());

    /// <summary>The problem a row describes (fields written by <c>data make</c>: id, answer, numbers, target, ...).</summary>
    public static Problem ToProblem(RewardContext c) =>
        new(c.Fields.GetValueOrDefault("id") ?? c.Prompt, c.Prompt, c.Fields.GetValueOrDefault("answer") ?? "", c.Fields);
}

/// <summary>A user's delegate as a reward; return null for "not applicable".</summary>
public sealed class DelegateReward(string name, Func<RewardContext, double?> score) : IRewardFunction
{
    /// <inheritdoc />
    public string Name => name;

    /// <inheritdoc />
    public ValueTask<double?[]> ScoreAsync(IReadOnlyList<RewardContext> batch, CancellationToken cancel = default) =>
        ValueTask.FromResult(batch.Select(score).ToArray());
}

/// <summary>A reward with its weight in the total.</summary>
public sealed record WeightedReward(IRewardFunction Function, double Weight = 1.0);

/// <summary>Combined scores of a batch.</summary>
/// <param name="Total">Per completion: Σ weight·score over the functions that applied (null scores add nothing).</param>
/// <param name="MeanByFunction">Per function: mean of its non-null scores (NaN when it never applied).</param>
public sealed record RewardBreakdown(double[] Total, IReadOnlyDictionary<string, double> MeanByFunction);

/// <summary>Runs several reward functions and combines them with weights.</summary>
public static class RewardCombiner
{
    /// <summary>Scores <paramref name="batch"/> with every function and sums the weighted scores.</summary>
    public static async ValueTask<RewardBreakdown> ScoreAsync(IReadOnlyList<WeightedReward> rewards, IReadOnlyList<RewardContext> batch,
        CancellationToken cancel = default)
    {
        if (rewards.Count == 0) throw new ArgumentException("no reward functions");
        if (rewards.GroupBy(w => w.Function.Name).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new ArgumentException($"{twice.Count()} reward functions are named '{twice.Key}'; names label the metrics (reward/NAME) and must differ");
        var total = new double[batch.Count];
        var means = new Dictionary<string, double>();
        foreach (var (fn, weight) in rewards)
        {
            var scores = await fn.ScoreAsync(batch, cancel);
            if (scores.Length != batch.Count)
                throw new InvalidOperationException($"reward '{fn.Name}' returned {scores.Length} scores for {batch.Count} completions");
            double sum = 0;
            int n = 0;
            for (int i = 0; i < scores.Length; i++)
            {
                if (scores[i] is not { } s) continue;
                if (!double.IsFinite(s)) throw new InvalidOperationException($"reward '{fn.Name}' returned {s} for completion {i}");
                total[i] += weight * s;
                sum += s;
                n++;
            }
            means[fn.Name] = n > 0 ? sum / n : double.NaN;
        }
        return new RewardBreakdown(total, means);
    }
}
