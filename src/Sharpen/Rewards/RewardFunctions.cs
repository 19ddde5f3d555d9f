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

/// <summary>A reward with its weight in the total, and what its scores may be (see <see cref="RewardCombiner"/>).</summary>
public sealed record WeightedReward(IRewardFunction Function, double Weight = 1.0)
{
    /// <summary>Clip the function's scores into this range instead of rejecting those beyond <see cref="MaxAbs"/>; null = no clipping.</summary>
    public RewardClip? Clip { get; init; }
    /// <summary>Largest |score| accepted without <see cref="Clip"/> (default <see cref="RewardCombiner.DefaultMaxAbs"/>); beyond it the run stops.</summary>
    public double MaxAbs { get; init; } = RewardCombiner.DefaultMaxAbs;
}

/// <summary>Combined scores of a batch.</summary>
/// <param name="Total">Per completion: Σ weight·score over the functions that applied (null scores add nothing).</param>
/// <param name="MeanByFunction">Per function: mean of its non-null scores (NaN when it never applied).</param>
public sealed record RewardBreakdown(double[] Total, IReadOnlyDictionary<string, double> MeanByFunction);

/// <summary>
/// Runs several reward functions and combines them with weights. Every score is checked at this boundary: NaN is always an
/// error, and a score that is ±Infinity or beyond ±<see cref="WeightedReward.MaxAbs"/> (default 1e6; far past any sane
/// reward, far below float32's 3.4e38 where an update turns into NaN weights) is an error naming the function — unless the
/// reward has a <see cref="WeightedReward.Clip"/> range, which the score is clipped into instead.
/// </summary>
public static class RewardCombiner
{
    /// <summary>Default bound on |score| (1e6).</summary>
    public const double DefaultMaxAbs = 1e6;

    /// <summary>
    /// <paramref name="score"/> of completion <paramref name="index"/> as the trainer may use it: clipped into
    /// <paramref name="reward"/>'s <see cref="WeightedReward.Clip"/> if it has one, else returned as is when finite and
    /// within ±<see cref="WeightedReward.MaxAbs"/>. Throws <see cref="RewardValueException"/> otherwise, and for NaN always.
    /// </summary>
    public static double Checked(WeightedReward reward, double score, int index)
    {
        var fn = reward.Function;
        string Who() => $"reward '{fn.Name}'" + (fn is HttpReward h ? $" (server {h.Url})" : "");
        if (double.IsNaN(score)) throw new RewardValueException($"{Who()} returned NaN for completion {index}; a reward must be a number (or null: not applicable)");
        if (reward.Clip is { } c) return Math.Clamp(score, c.Min, c.Max);
        if (!double.IsFinite(score) || Math.Abs(score) > reward.MaxAbs)
            throw new RewardValueException($"{Who()} returned {score.ToString("R", System.Globalization.CultureInfo.InvariantCulture)} for completion {index}, beyond the allowed ±{reward.MaxAbs.ToString("G", System.Globalization.CultureInfo.InvariantCulture)}; " +
                "fix the reward, or give it 'clip: [min, max]' (or a larger 'max_abs') in the recipe's rewards entry");
        return score;
    }

    /// <summary>Scores <paramref name="batch"/> with every function and sums the weighted scores.</summary>
    public static async ValueTask<RewardBreakdown> ScoreAsync(IReadOnlyList<WeightedReward> rewards, IReadOnlyList<RewardContext> batch,
        CancellationToken cancel = default)
    {
        if (rewards.Count == 0) throw new ArgumentException("no reward functions");
        if (rewards.GroupBy(w => w.Function.Name).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new ArgumentException($"{twice.Count()} reward functions are named '{twice.Key}'; names label the metrics (reward/NAME) and must differ");
        var total = new double[batch.Count];
        var means = new Dictionary<string, double>();
        foreach (var reward in rewards)
        {
            var (fn, weight) = reward;
            var scores = await fn.ScoreAsync(batch, cancel);
            if (scores.Length != batch.Count)
                throw new InvalidOperationException($"reward '{fn.Name}' returned {scores.Length} scores for {batch.Count} completions");
            double sum = 0;
            int n = 0;
            for (int i = 0; i < scores.Length; i++)
            {
                if (scores[i] is not { } raw) continue;
                var s = Checked(reward, raw, i);
                total[i] += weight * s;
                sum += s;
                n++;
            }
            means[fn.Name] = n > 0 ? sum / n : double.NaN;
        }
        return new RewardBreakdown(total, means);
    }
}
