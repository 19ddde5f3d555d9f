using Sharpen.Generation;
namespace Sharpen.Rewards;

/// <summary>
/// DAPO's soft overlong punishment (Yu et al. 2025): with L_max = the token limit and L_cache =
/// the buffer, a completion of L tokens scores 0 when L ≤ L_max − L_cache and ((L_max − L_cache) − L) / L_cache
/// beyond that, down to −1 at L_max (clamped there). Added to the task reward with a weight, it discourages answers that
/// run into the length limit without cutting them off abruptly.
/// </summary>
public sealed class OverlongPenalty : IRewardFunction
{
    readonly int _max, _buffer;

    /// <summary>Punishes the last <paramref name="buffer"/> tokens before <paramref name="maxTokens"/>.</summary>
    public OverlongPenalty(int maxTokens, int buffer)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(buffer);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, buffer);
        (_max, _buffer) = (maxTokens, buffer);
    }

    /// <inheritdoc />
    public string Name => "overlong";

    /// <summary>The score of a completion of <paramref name="tokens"/> tokens.</summary>
    public double Score(int tokens) => Math.Max(-1.0, Math.Min(0.0, (double)(_max - _buffer - tokens) / _buffer));

    /// <inheritdoc />
    public ValueTask<double?[]> ScoreAsync(IReadOnlyList<RewardContext> batch, CancellationToken cancel = default) =>
        ValueTask.FromResult(batch.Select(c => (double?)Score(c.CompletionTokens)).ToArray());
}
