using Sharpen.Torch;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sharpen.Algorithms;

/// <summary>
/// The self-play loss of SPIN (Chen et al. 2024, arXiv:2401.01335) as a pure function of per-sequence summed log-probs.
/// The "chosen" side is the real answer y from the SFT data and the "rejected" side the opponent's answer y' sampled
/// from the previous iterate π_t, which is also the reference.
/// </summary>
public static class SelfPlayLosses
{
    /// <summary>
    /// SPIN (arXiv:2401.01335 §4, L_SPIN with the logistic ℓ(t) = log(1 + e^(−t))):
    /// loss = ℓ(λ log(π_θ(y)/π_t(y)) − λ log(π_θ(y')/π_t(y'))), mean over B. Metrics use λ·(log π_θ − log π_t) as the
    /// implicit reward of each side.
    /// </summary>
    /// <param name="x">Summed log-probs: chosen = the data's answer y, rejected = the opponent's y'; reference = π_t.</param>
    /// <param name="lambda">λ &gt; 0, the regularisation weight (the paper uses 0.1).</param>
    public static (Tensor Loss, PreferenceMetrics Metrics) Spin(PreferenceInput x, double lambda = 0.1)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!(lambda > 0) || double.IsInfinity(lambda)) throw new ArgumentOutOfRangeException(nameof(lambda), lambda, "λ must be positive and finite.");
        if (x.ReferenceChosen is null || x.ReferenceRejected is null) throw new ArgumentException("SPIN needs the opponent's (π_t's) log-probs.", nameof(x));
        TorchRuntime.EnsureLoaded();
        using var scope = NewDisposeScope();
        var real = x.PolicyChosen - x.ReferenceChosen.detach();                  // (B)  log π_θ(y)/π_t(y)
        var synthetic = x.PolicyRejected - x.ReferenceRejected.detach();         // (B)  log π_θ(y')/π_t(y')
        var loss = F.softplus(-lambda * (real - synthetic)).mean();              // ℓ(λ·real − λ·synthetic), arXiv:2401.01335 §4 (L_SPIN)
        PreferenceMetrics metrics;
        using (no_grad())
        {
            var rc = (lambda * real).detach();
            var rr = (lambda * synthetic).detach();
            metrics = new PreferenceMetrics((rc > rr).to_type(ScalarType.Float32).mean().item<float>(), (rc - rr).mean().item<float>(),
                rc.mean().item<float>(), rr.mean().item<float>());
        }
        return (loss.MoveToOuterDisposeScope(), metrics);
    }
}
