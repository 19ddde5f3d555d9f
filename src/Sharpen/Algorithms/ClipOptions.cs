namespace Sharpen.Algorithms;

/// <summary>Clipping of the PPO surrogate (Schulman et al. 2017, arXiv:1707.06347).</summary>
/// <param name="ClipLow">ε_low: the ratio is clipped below at 1 − ε_low. Default 0.2.</param>
/// <param name="ClipHigh">ε_high: the ratio is clipped above at 1 + ε_high. ε_high &gt; ε_low is DAPO's clip-higher (arXiv:2503.14476, 0.28).</param>
/// <param name="DualClip">Dual-clip constant c &gt; 1 (Ye et al. 2020, arXiv:1912.09729): for A &lt; 0 the per-token loss is capped at −c·A; null disables.</param>
public sealed record ClipOptions(double ClipLow = 0.2, double ClipHigh = 0.2, double? DualClip = null)
{
    /// <summary>Throws when a bound is out of range: 0 ≤ ε_low &lt; 1, ε_high ≥ 0, c &gt; 1.</summary>
    public void Validate()
    {
        if (ClipLow is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(ClipLow), ClipLow, "ClipLow must be in [0, 1).");
        ArgumentOutOfRangeException.ThrowIfNegative(ClipHigh);
        if (DualClip is { } c && !(c > 1)) throw new ArgumentOutOfRangeException(nameof(DualClip), c, "DualClip must be greater than 1.");
    }

    /// <summary>DAPO's clip-higher defaults: ε_low = 0.2, ε_high = 0.28 (arXiv:2503.14476).</summary>
    public static ClipOptions Dapo() => new(0.2, 0.28);
}
