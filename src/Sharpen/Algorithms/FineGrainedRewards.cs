using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// Dense per-token rewards from segment-level scores (FGAIF, Jing et al. 2024, arXiv:2404.05046, after Fine-Grained RLHF,
/// Wu et al. 2023, arXiv:2306.01693): several reward functions each score every segment (sentence or reasoning step) of a
/// completion; their weighted sum is placed on the segment's last token, which GAE then turns into per-token advantages.
/// PCPG's pseudo-convolution (Luo et al. 2019, arXiv:1811.01874) optionally spreads each token's reward over a local window.
/// Pure functions of tensors.
/// </summary>
public static class FineGrainedRewards
{
    /// <summary>
    /// Σ_k w_k · r_k over the reward functions' segment scores, each <c>(B, S)</c>; FGAIF's combination of its per-type reward models.
    /// </summary>
    public static Tensor Combine(IReadOnlyList<Tensor> perFunction, IReadOnlyList<double> weights)
    {
        TorchRuntime.EnsureLoaded();
        ArgumentNullException.ThrowIfNull(perFunction);
        ArgumentNullException.ThrowIfNull(weights);
        if (perFunction.Count == 0 || perFunction.Count != weights.Count)
            throw new ArgumentException($"Combine needs one weight per reward function and at least one function, got {perFunction.Count} functions and {weights.Count} weights.");
        var shape = perFunction[0].shape;
        Tensor? sum = null;
        for (int k = 0; k < perFunction.Count; k++)
        {
            if (!perFunction[k].shape.SequenceEqual(shape))
                throw new ArgumentException($"reward function {k} scored shape [{string.Join(", ", perFunction[k].shape)}], expected [{string.Join(", ", shape)}] like function 0.");
            var term = weights[k] * perFunction[k].to_type(ScalarType.Float32);                   // (B, S)
            sum = sum is null ? term : sum + term;
        }
        return sum!;
    }

    /// <summary>
    /// Places segment rewards <c>(B, S)</c> on each segment's last token: <paramref name="segmentEnds"/> <c>(B, S)</c> int64 holds the
    /// 0-based response-token index where segment s ends, <paramref name="segmentMask"/> <c>(B, S)</c> 1 for real segments. Two segments
    /// ending on one token add up. Result <c>(B, A)</c>, zero off segment ends and at padding of <paramref name="responseMask"/>.
    /// </summary>
    public static Tensor PlaceSegmentRewards(Tensor segmentRewards, Tensor segmentEnds, Tensor segmentMask, Tensor responseMask)
    {
        TorchRuntime.EnsureLoaded();
        ArgumentNullException.ThrowIfNull(segmentRewards);
        ArgumentNullException.ThrowIfNull(segmentEnds);
        ArgumentNullException.ThrowIfNull(segmentMask);
        ArgumentNullException.ThrowIfNull(responseMask);
        if (segmentRewards.dim() != 2 || !segmentRewards.shape.SequenceEqual(segmentEnds.shape) || !segmentRewards.shape.SequenceEqual(segmentMask.shape)
            || responseMask.dim() != 2 || responseMask.shape[0] != segmentRewards.shape[0])
            throw new ArgumentException($"segment rewards, ends and mask must be (B, S) and the response mask (B, A); got [{string.Join(", ", segmentRewards.shape)}], [{string.Join(", ", segmentEnds.shape)}], [{string.Join(", ", segmentMask.shape)}], [{string.Join(", ", responseMask.shape)}].");
        using var scope = NewDisposeScope();
        long a = responseMask.shape[1];
        var sm = segmentMask.to_type(ScalarType.Float32);                                          // (B, S)
        var ends = segmentEnds.to_type(ScalarType.Int64);                                          // (B, S)
        var outOfRange = ((ends < 0).logical_or(ends >= a)).logical_and(sm > 0);
        if (outOfRange.any().item<bool>())
            throw new ArgumentException($"a segment ends outside the {a} response tokens (segment ends must be in [0, {a - 1}]).", nameof(segmentEnds));
        var r = segmentRewards.to_type(ScalarType.Float32) * sm;                                   // (B, S)  padding segments add 0
        var placed = zeros(responseMask.shape[0], a, dtype: ScalarType.Float32, device: r.device)
            .scatter_add(1, ends.clamp(0, a - 1), r);                                             // (B, A)
        return (placed * responseMask.to_type(ScalarType.Float32)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// PCPG's pseudo-convolution of per-token rewards <c>(B, A)</c>: r̃_t = Σ_{j=−w}^{w} K_j · r_{t+j} · m_{t+j}, with the kernel
    /// <paramref name="kernel"/> of odd length 2w+1 (centre = offset 0); tokens outside the response count as 0, as zero padding in a
    /// convolution. A kernel summing to 1 keeps an interior reward's total. Padding comes out 0.
    /// </summary>
    public static Tensor Smooth(Tensor tokenRewards, Tensor mask, IReadOnlyList<double> kernel)
    {
        LossAggregator.RequireSameShape2D(tokenRewards, mask, nameof(mask));
        ArgumentNullException.ThrowIfNull(kernel);
        if (kernel.Count % 2 != 1) throw new ArgumentException($"the smoothing kernel must have an odd length 2w+1, got {kernel.Count}.", nameof(kernel));
        using var scope = NewDisposeScope();
        int w = kernel.Count / 2;
        long a = tokenRewards.shape[1];
        var m = mask.to_type(ScalarType.Float32);                                                  // (B, A)
        var r = tokenRewards.to_type(ScalarType.Float32) * m;                                      // (B, A)
        var padded = nn.functional.pad(r, [w, w]);                                                 // (B, A + 2w)
        var result = zeros_like(r);
        for (int j = -w; j <= w; j++)
            result = result + kernel[j + w] * padded[.., (w + j)..(w + j + (int)a)];             // K_j · r_{t+j}
        return (result * m).MoveToOuterDisposeScope();
    }

    /// <summary>The uniform kernel of half-width <paramref name="halfWidth"/>: 2w+1 weights of 1/(2w+1) (a moving average).</summary>
    public static double[] UniformKernel(int halfWidth)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(halfWidth);
        return Enumerable.Repeat(1.0 / (2 * halfWidth + 1), 2 * halfWidth + 1).ToArray();
    }

    /// <summary>
    /// The response-token index where a segment ending at character <paramref name="charEnd"/> (exclusive) ends: the first token whose
    /// cumulative decoded length <paramref name="tokenCharEnds"/> (non-decreasing, one per token) reaches it; the last token when none does.
    /// </summary>
    public static int TokenIndexOfCharEnd(IReadOnlyList<int> tokenCharEnds, int charEnd)
    {
        ArgumentNullException.ThrowIfNull(tokenCharEnds);
        if (tokenCharEnds.Count == 0) throw new ArgumentException("a completion with no token has no segment end.", nameof(tokenCharEnds));
        for (int t = 0; t < tokenCharEnds.Count; t++)
            if (tokenCharEnds[t] >= charEnd) return t;
        return tokenCharEnds.Count - 1;
    }
}
