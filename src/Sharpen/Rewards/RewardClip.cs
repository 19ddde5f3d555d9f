namespace Sharpen.Rewards;

/// <summary>Clips a reward function's scores into [<paramref name="Min"/>, <paramref name="Max"/>] (±Infinity included;
/// NaN is still an error). Set per reward in a recipe as <c>clip: [min, max]</c>.</summary>
public sealed record RewardClip(double Min, double Max)
{
    /// <summary>Throws <see cref="ArgumentException"/> unless both bounds are finite and <c>Min &lt; Max</c>.</summary>
    public RewardClip Validate(string what = "clip")
    {
        if (!double.IsFinite(Min) || !double.IsFinite(Max) || !(Min < Max))
            throw new ArgumentException($"{what} must be [min, max] with finite min < max, got [{Min}, {Max}]");
        return this;
    }
}
