using Sharpen.Torch;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sharpen.Algorithms;

/// <summary>
/// The self-play loss of SPIN (Chen et al. 2024, arXiv:2401.01335) as a pure function of per-sequence summed log-probs.
/// The "chosen" side is the real answer y from the SFT data and the "rejected" side the opponent's answer y' sampled
/// from the previous iterate π_t, which is also the reference. And SePPO's anchored variant (<see cref="Seppo"/>), whose
/// reference (and opponent) is a past checkpoint.
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

    /// <summary>
    /// SePPO's anchor criterion (Zhang et al. 2024, "SePPO: Semi-Policy Preference Optimization for Diffusion Alignment",
    /// arXiv:2410.05255; the text analogue): the winning sample y_w is the anchor. With h_w = log π_θ(y_w)/π_ref(y_w) and
    /// h_s = log π_θ(y_s)/π_ref(y_s) for the reference model's own sample y_s, the sample is judged a loser (I = +1) while
    /// h_s ≤ h_w, i.e. the policy has moved towards it no more than towards the anchor, and a likely winner (I = −1) once
    /// h_s &gt; h_w. Ties count as losers, so a reference equal to the policy gives SPIN's pair. <c>(B)</c> of ±1, no grad.
    /// </summary>
    public static Tensor AnchorIndicators(Tensor winnerLogRatio, Tensor sampleLogRatio)
    {
        TorchRuntime.EnsureLoaded();
        using var noGrad = no_grad();
        var w = winnerLogRatio.detach();
        return where(sampleLogRatio.detach() > w, full_like(w, -1.0), full_like(w, 1.0));   // (B)
    }

    /// <summary>
    /// SePPO's loss with its anchor-based flip (arXiv:2410.05255, the text analogue of its Diffusion-DPO form):
    /// loss = −log σ(β·(h_w − I·h_s)), mean over B, with I from <see cref="AnchorIndicators"/>. I = +1 is DPO with the
    /// reference's sample as the loser; I = −1 (the sample looks like a winner) raises both log-ratios, so the model learns
    /// from the sample instead of pushing it down. Metrics use β·h_w and β·h_s as the two sides' implicit rewards.
    /// </summary>
    /// <param name="x">Summed log-probs: chosen = the off-policy winner y_w (the data's answer), rejected = the reference
    /// model's sample y_s; reference = the past checkpoint that drew y_s.</param>
    /// <param name="beta">β &gt; 0.</param>
    public static (Tensor Loss, PreferenceMetrics Metrics) Seppo(PreferenceInput x, double beta = 0.1)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!(beta > 0) || double.IsInfinity(beta)) throw new ArgumentOutOfRangeException(nameof(beta), beta, "β must be positive and finite.");
        if (x.ReferenceChosen is null || x.ReferenceRejected is null) throw new ArgumentException("SePPO needs the reference checkpoint's log-probs.", nameof(x));
        TorchRuntime.EnsureLoaded();
        using var scope = NewDisposeScope();
        var winner = x.PolicyChosen - x.ReferenceChosen.detach();                // (B)  h_w
        var sample = x.PolicyRejected - x.ReferenceRejected.detach();            // (B)  h_s
        var indicator = AnchorIndicators(winner, sample);                        // (B)  ±1
        var loss = F.softplus(-beta * (winner - indicator * sample)).mean();     // −log σ(β(h_w − I·h_s)), arXiv:2410.05255
        PreferenceMetrics metrics;
        using (no_grad())
        {
            var rc = (beta * winner).detach();
            var rr = (beta * sample).detach();
            metrics = new PreferenceMetrics((rc > rr).to_type(ScalarType.Float32).mean().item<float>(), (rc - rr).mean().item<float>(),
                rc.mean().item<float>(), rr.mean().item<float>());
        }
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// Filtered behaviour cloning on a pair's chosen side only (ReST / best-of-n SFT; the "no negative gradient" arm of
    /// Tajwar et al. 2024, "Preference Fine-Tuning of LLMs Should Leverage Suboptimal, On-Policy Data", arXiv:2404.14367):
    /// loss = −Σ_t log π_θ(y_w,t) / |y_w|, mean over B; the rejected side gets no gradient. Metrics compare the two sides'
    /// length-averaged log-probs (no reference).
    /// </summary>
    /// <param name="x">Summed log-probs and <see cref="PreferenceInput.ChosenLengths"/>/<see cref="PreferenceInput.RejectedLengths"/>.</param>
    public static (Tensor Loss, PreferenceMetrics Metrics) FilteredBc(PreferenceInput x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.ChosenLengths is null || x.RejectedLengths is null) throw new ArgumentException("filtered BC needs the completions' lengths.", nameof(x));
        TorchRuntime.EnsureLoaded();
        using var scope = NewDisposeScope();
        var chosen = x.PolicyChosen / x.ChosenLengths.to_type(x.PolicyChosen.dtype).clamp_min(1);          // (B)  mean log π(y_w)
        var loss = (-chosen).mean();                                                                      // NLL of the chosen only
        PreferenceMetrics metrics;
        using (no_grad())
        {
            var rc = chosen.detach();
            var rr = (x.PolicyRejected / x.RejectedLengths.to_type(x.PolicyRejected.dtype).clamp_min(1)).detach();
            metrics = new PreferenceMetrics((rc > rr).to_type(ScalarType.Float32).mean().item<float>(), (rc - rr).mean().item<float>(),
                rc.mean().item<float>(), rr.mean().item<float>());
        }
        return (loss.MoveToOuterDisposeScope(), metrics);
    }
}
