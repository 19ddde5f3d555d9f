using System.Diagnostics;
using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// The one place where a per-token loss becomes a scalar (verl <c>agg_loss</c>, OpenRLHF <c>aggregate_loss</c>).
/// </summary>
public static class LossAggregator
{
    /// <summary>
    /// Reduces <paramref name="perToken"/> <c>(B, A)</c> under <paramref name="mask"/> <c>(B, A)</c> (1 = real response token,
    /// 0 = padding; bool or float) to a scalar, as <paramref name="agg"/> says:
    /// <list type="bullet">
    /// <item>TokenMean: Σ loss·mask / GlobalTokens;</item>
    /// <item>SeqMeanTokenMean: Σ_b (Σ_t loss·mask / Σ_t mask) / GlobalSequences;</item>
    /// <item>SeqMeanTokenSum: Σ loss·mask / GlobalSequences;</item>
    /// <item>SeqMeanTokenSumNorm: Σ loss·mask / (GlobalSequences · NormConstant).</item>
    /// </list>
    /// With a null global count the batch's own count is used: the number of mask = 1 tokens, or the number of rows with at
    /// least one real token (at least 1, so an all-padding batch gives 0, not NaN). A row without real tokens contributes 0.
    /// </summary>
    public static Tensor Aggregate(Tensor perToken, Tensor mask, Aggregation agg)
    {
        ArgumentNullException.ThrowIfNull(agg);
        RequireSameShape2D(perToken, mask, nameof(mask));
        if (agg.GlobalTokens is { } gt) ArgumentOutOfRangeException.ThrowIfNegativeOrZero(gt, nameof(agg.GlobalTokens));
        if (agg.GlobalSequences is { } gs) ArgumentOutOfRangeException.ThrowIfNegativeOrZero(gs, nameof(agg.GlobalSequences));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(agg.NormConstant, nameof(agg.NormConstant));

        using var scope = NewDisposeScope();
        var m = mask.to_type(perToken.dtype);                                    // (B, A)
        var masked = perToken * m;                                               // (B, A)
        var result = agg.Mode switch
        {
            LossAggregation.TokenMean => masked.sum() / TokenCount(m, agg),
            LossAggregation.SeqMeanTokenMean =>
                (masked.sum(1) / m.sum(1).clamp_min(1.0)).sum() / SequenceCount(m, agg),   // (B) → scalar
            LossAggregation.SeqMeanTokenSum => masked.sum() / SequenceCount(m, agg),
            LossAggregation.SeqMeanTokenSumNorm => masked.sum() / SequenceCount(m, agg) / agg.NormConstant,  // Dr. GRPO, arXiv:2503.20783
            _ => throw new UnreachableException(),
        };
        return result.MoveToOuterDisposeScope();
    }

    static Tensor TokenCount(Tensor m, Aggregation agg) =>
        agg.GlobalTokens is { } n ? tensor(n, dtype: m.dtype, device: m.device) : m.sum().clamp_min(1.0);

    static Tensor SequenceCount(Tensor m, Aggregation agg) =>
        agg.GlobalSequences is { } n ? tensor(n, dtype: m.dtype, device: m.device) : (m.sum(1) > 0).to_type(m.dtype).sum().clamp_min(1.0);

    internal static void RequireSameShape2D(Tensor reference, Tensor other, string otherName)
    {
        TorchRuntime.EnsureLoaded();
        if (reference.dim() != 2)
            throw new ArgumentException($"Expected a (B, A) tensor, got shape [{string.Join(", ", reference.shape)}].");
        if (!reference.shape.SequenceEqual(other.shape))
            throw new ArgumentException(
                $"{otherName} has shape [{string.Join(", ", other.shape)}] but must match [{string.Join(", ", reference.shape)}].", otherName);
    }
}
