namespace Sharpen.Algorithms;

/// <summary>
/// Adaptive KL coefficient (Ziegler et al. 2019, arXiv:1909.08593 §2.2): e = clip(KL / KL_target − 1, −0.2, 0.2),
/// β ← β·(1 + e·steps / horizon). β grows when the policy drifts further than the target and shrinks when it stays closer.
/// </summary>
/// <param name="initBeta">Starting β &gt; 0.</param>
/// <param name="targetKl">KL_target &gt; 0.</param>
/// <param name="horizon">Horizon K (in samples) over which β may change by at most a factor e^{±0.2}.</param>
public sealed class AdaptiveKlController(double initBeta, double targetKl, int horizon) : IKlController
{
    readonly double _target = targetKl > 0 && double.IsFinite(targetKl)
        ? targetKl
        : throw new ArgumentOutOfRangeException(nameof(targetKl), targetKl, "The target KL must be positive.");

    readonly int _horizon = horizon > 0
        ? horizon
        : throw new ArgumentOutOfRangeException(nameof(horizon), horizon, "The horizon must be positive.");

    /// <inheritdoc />
    public double Value { get; private set; } = initBeta > 0 && double.IsFinite(initBeta)
        ? initBeta
        : throw new ArgumentOutOfRangeException(nameof(initBeta), initBeta, "The initial beta must be positive.");

    /// <inheritdoc />
    public void Update(double observedKl, int steps)
    {
        if (!double.IsFinite(observedKl)) throw new ArgumentOutOfRangeException(nameof(observedKl), observedKl, "The observed KL must be finite.");
        ArgumentOutOfRangeException.ThrowIfNegative(steps);
        var error = Math.Clamp(observedKl / _target - 1, -0.2, 0.2);             // e_t = clip(KL/KL_target − 1, −0.2, 0.2), arXiv:1909.08593 §2.2
        Value *= 1 + error * steps / _horizon;                                    // β ← β (1 + K_β e_t), K_β = steps / horizon
    }
}
