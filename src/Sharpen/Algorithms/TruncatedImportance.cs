using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// The gap between the rollout engine and the trainer, and its correction (Yao et al. 2025, "Your efficient RL framework
/// secretly brings you off-policy RL training"): the engine samples from π_engine(θ_old) while the trainer's loss takes
/// π_trainer(θ_old) as the old policy, so the policy gradient is taken on slightly off-policy samples. Truncated importance
/// sampling weights each token's policy-gradient term by w_t = min(π_trainer_old(a_t) / π_engine(a_t), C), detached.
/// </summary>
public static class TruncatedImportance
{
    /// <summary>
    /// w_t = min(exp(log π_trainer_old − log π_engine), <paramref name="cap"/>) at mask = 1, 0 at padding, <c>(B, A)</c>, no grad.
    /// A NaN engine log-prob (a server that did not report one) gets weight 1.
    /// </summary>
    public static Tensor Weights(Tensor trainerOldLogProbs, Tensor engineLogProbs, Tensor mask, double cap)
    {
        LossAggregator.RequireSameShape2D(trainerOldLogProbs, engineLogProbs, nameof(engineLogProbs));
        LossAggregator.RequireSameShape2D(trainerOldLogProbs, mask, nameof(mask));
        if (!(cap > 0) || double.IsInfinity(cap)) throw new ArgumentException($"the TIS cap must be a positive finite number, got {cap}");
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var engine = where(engineLogProbs.isnan(), trainerOldLogProbs, engineLogProbs);           // (B, A)
        var w = (trainerOldLogProbs - engine).clamp_max(Math.Log(cap)).exp();                      // min(π_t/π_e, C), (B, A)
        return (w * mask.to_type(w.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// How far the engine's log-probs are from the trainer's on the sampled tokens (mask = 1):
    /// the mean |log π_engine − log π_trainer|, and KL(π_engine ‖ π_trainer) estimated from the engine's own samples with
    /// Schulman's k3, mean over tokens of r − 1 − log r with r = π_trainer / π_engine (unbiased, never negative).
    /// NaN engine log-probs are left out.
    /// </summary>
    public static (double MeanAbsDiff, double Kl) Mismatch(Tensor trainerOldLogProbs, Tensor engineLogProbs, Tensor mask)
    {
        LossAggregator.RequireSameShape2D(trainerOldLogProbs, engineLogProbs, nameof(engineLogProbs));
        LossAggregator.RequireSameShape2D(trainerOldLogProbs, mask, nameof(mask));
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var valid = mask.to_type(ScalarType.Float32) * engineLogProbs.isnan().logical_not().to_type(ScalarType.Float32);   // (B, A)
        double n = valid.sum().item<float>();
        if (n == 0) return (0, 0);
        var diff = (trainerOldLogProbs - engineLogProbs.nan_to_num()).to_type(ScalarType.Float32) * valid;                   // log r, (B, A)
        double abs = (diff.abs().sum() / n).item<float>();
        double kl = (((diff.exp() - 1 - diff) * valid).sum() / n).item<float>();
        return (abs, kl);
    }
}
