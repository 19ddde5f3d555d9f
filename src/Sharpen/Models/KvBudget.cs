using static TorchSharp.torch;

namespace Sharpen.Models;

/// <summary>
/// H₂O KV eviction (Zhang et al. 2023, "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language
/// Models", arXiv:2306.14048): every layer and KV head keeps at most <see cref="Budget"/> cached tokens, the
/// <see cref="Recent"/> most recent ones plus the heavy hitters, the older tokens with the largest attention received so
/// far (summed over every query, and over the query heads that share the KV head). When a new token would exceed the
/// budget, the one older token with the least accumulated attention is evicted (the paper's greedy, one per step).
/// </summary>
/// <param name="Budget">Cached tokens kept per layer and KV head (≥ 2).</param>
/// <param name="Recent">Of those, the most recent tokens always kept (1 ≤ Recent &lt; Budget); the paper splits the budget
/// evenly between recent tokens and heavy hitters.</param>
public sealed record KvBudget(int Budget, int Recent)
{
    /// <summary>A budget split evenly between the recent window and heavy hitters, as in the paper's experiments.</summary>
    public static KvBudget Even(int budget) => new(budget, Math.Max(1, budget / 2));

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad field.</summary>
    public KvBudget Validate()
    {
        if (Budget < 2) throw new ArgumentException($"kv_budget must be ≥ 2, got {Budget}");
        if (Recent < 1 || Recent >= Budget) throw new ArgumentException($"kv_recent must be in [1, kv_budget = {Budget}), got {Recent}");
        return this;
    }
}

/// <summary>H₂O's eviction choices as pure functions of the cache's bookkeeping tensors (tested by hand).</summary>
public static class HeavyHitters
{
    /// <summary>
    /// The slot each (row, head) evicts: an empty or padding slot first, else the one with the least accumulated attention
    /// among the tokens outside the recent window (columns ≤ <paramref name="newestColumn"/> − <paramref name="recent"/>).
    /// </summary>
    /// <param name="scores">(B, H, S) accumulated attention each slot received.</param>
    /// <param name="columns">(B, H, S) the sequence column of each slot's token.</param>
    /// <param name="valid">(B, H, S) bool: the slot holds a real token.</param>
    /// <param name="newestColumn">The column of the newest token.</param>
    /// <param name="recent">Size of the recent window (≥ 1).</param>
    /// <returns>(B, H) int64 slot indices.</returns>
    public static Tensor Victims(Tensor scores, Tensor columns, Tensor valid, long newestColumn, int recent)
    {
        var inWindow = columns.gt(newestColumn - recent);                                   // (B, H, S)
        var key = scores.masked_fill(inWindow, double.PositiveInfinity)
                        .masked_fill(valid.logical_not(), double.NegativeInfinity);          // (B, H, S)
        return key.argmin(-1);                                                               // (B, H)
    }

    /// <summary>
    /// The slots each (row, head) keeps when more than <paramref name="budget"/> are filled (after a long prompt): every
    /// valid token of the recent window, then the heavy hitters by accumulated attention, then (only if too few real
    /// tokens exist) empty slots. Returns (B, H, budget) int64 slot indices in ascending order.
    /// </summary>
    public static Tensor Keep(Tensor scores, Tensor columns, Tensor valid, long newestColumn, int budget, int recent)
    {
        var inWindow = columns.gt(newestColumn - recent) & valid;                            // (B, H, S)
        var key = scores.masked_fill(inWindow, double.PositiveInfinity)
                        .masked_fill(valid.logical_not(), double.NegativeInfinity);          // (B, H, S)
        var top = key.topk(budget, dim: -1).indexes;                                         // (B, H, budget)
        var (sorted, _) = top.sort(-1);
        return sorted;
    }
}
