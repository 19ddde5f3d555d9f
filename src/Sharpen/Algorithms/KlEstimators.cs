using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// Per-token Monte-Carlo estimators of KL(π ‖ π_ref) from samples of π (Schulman, "Approximating KL Divergence", 2020).
/// Inputs are log-probabilities of the sampled tokens, <c>(B, A)</c>; outputs are <c>(B, A)</c> and are not masked
/// (pass them through <see cref="LossAggregator"/> or multiply by the response mask). With log r = refLogp − logp:
/// k1 = −log r (unbiased, high variance, can be negative), k2 = ½(log r)² (biased, low variance; its gradient is the
/// gradient of the true KL to first order), k3 = (r − 1) − log r (unbiased, always ≥ 0; the GRPO KL term, arXiv:2402.03300 Eq. 4).
/// </summary>
public static class KlEstimators
{
    /// <summary>Largest |log r| used inside k3's exponential, so that exp stays finite in float32 (e^20 ≈ 4.9e8).</summary>
    const double MaxLogRatio = 20.0;

    static readonly Dictionary<string, Func<Tensor, Tensor, Tensor>> Registry = new()
    {
        ["k1"] = K1,
        ["k2"] = K2,
        ["k3"] = K3,
    };

    /// <summary>The registered estimator names: "k1", "k2", "k3".</summary>
    public static IReadOnlyList<string> Names { get; } = [.. Registry.Keys];

    /// <summary>k1 = log π − log π_ref, <c>(B, A)</c> (Schulman 2020).</summary>
    public static Tensor K1(Tensor logp, Tensor refLogp) =>
        logp - refLogp;                                                           // k1 = −log r, Schulman 2020

    /// <summary>k2 = ½ (log π − log π_ref)², <c>(B, A)</c> (Schulman 2020).</summary>
    public static Tensor K2(Tensor logp, Tensor refLogp)
    {
        using var scope = NewDisposeScope();
        var d = logp - refLogp;                                                   // (B, A)
        return (0.5 * d * d).MoveToOuterDisposeScope();                           // k2 = ½ (log r)², Schulman 2020
    }

    /// <summary>
    /// k3 = exp(log π_ref − log π) − (log π_ref − log π) − 1, <c>(B, A)</c>, ≥ 0 and 0 exactly where the two agree
    /// (Schulman 2020; GRPO's KL, arXiv:2402.03300 Eq. 4). log r is clamped to ±20 before the exponential.
    /// </summary>
    public static Tensor K3(Tensor logp, Tensor refLogp)
    {
        using var scope = NewDisposeScope();
        var logR = (refLogp - logp).clamp(-MaxLogRatio, MaxLogRatio);           // (B, A)
        return (logR.exp() - logR - 1.0).MoveToOuterDisposeScope();               // k3 = (r − 1) − log r, Schulman 2020
    }

    /// <summary>Looks an estimator up by name; an unknown name throws <see cref="ArgumentException"/> listing <see cref="Names"/>.</summary>
    public static Func<Tensor, Tensor, Tensor> Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Registry.TryGetValue(name, out var fn)
            ? fn
            : throw new ArgumentException($"Unknown KL estimator '{name}'. Known: {string.Join(", ", Names)}.", nameof(name));
    }
}
