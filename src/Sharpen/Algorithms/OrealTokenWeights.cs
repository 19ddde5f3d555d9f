using Sharpen.Torch;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sharpen.Algorithms;

/// <summary>
/// OREAL's token-level outcome reward model and the importance weights it gives each token (Lyu et al. 2025,
/// arXiv:2502.06781 §2.4). The model emits one logit w_t per response token; it is trained only on the outcome label by
/// asking that the sigmoid of the sequence's mean logit, σ((1/T)·Σ_t w_t), predict whether the answer is right
/// (<see cref="OutcomeLoss"/>). A token of a correct answer then counts in proportion to how much it pushes towards
/// correct, a token of a wrong answer in proportion to how much it pushes towards wrong (<see cref="Weights"/>).
/// Departure: the thresholds τ⁺ = τ⁻ = 0.5 and the linear rescaling between them follow the authors' released configuration
/// ("threshold_rescale", correct/incorrect threshold 0.5); the paper's text was not available to check the exact form.
/// </summary>
public static class OrealTokenWeights
{
    /// <summary>
    /// The token-RM's training loss: binary cross-entropy of σ(mean_t w_t) against the outcome label,
    /// ℓ = −[y log σ(w̄) + (1 − y) log(1 − σ(w̄))], w̄ = Σ_t m_t w_t / Σ_t m_t, averaged over the B sequences.
    /// </summary>
    /// <param name="tokenLogits">w_t, <c>(B, A)</c>, requires grad.</param>
    /// <param name="mask">1 at response tokens, <c>(B, A)</c>.</param>
    /// <param name="labels">Outcome per sequence in [0, 1], <c>(B)</c>.</param>
    public static Tensor OutcomeLoss(Tensor tokenLogits, Tensor mask, Tensor labels)
    {
        TorchRuntime.EnsureLoaded();
        LossAggregator.RequireSameShape2D(tokenLogits, mask, nameof(mask));
        ArgumentNullException.ThrowIfNull(labels);
        if (labels.dim() != 1 || labels.shape[0] != tokenLogits.shape[0])
            throw new ArgumentException($"labels must be (B) with B = {tokenLogits.shape[0]}, got shape [{string.Join(", ", labels.shape)}].", nameof(labels));
        using var scope = NewDisposeScope();
        var m = mask.to_type(tokenLogits.dtype);                                  // (B, A)
        var mean = (tokenLogits * m).sum(1) / m.sum(1).clamp_min(1);              // (B)  w̄ = (1/T) Σ_t w_t
        var y = labels.to_type(tokenLogits.dtype);                                // (B)
        var perSeq = y * F.softplus(-mean) + (1 - y) * F.softplus(mean);          // (B)  −y log σ(w̄) − (1−y) log(1−σ(w̄))
        return perSeq.mean().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Importance weight of each token, 0 at padding: in a correct sequence ω⁺_t = max(σ(w_t) − τ⁺, 0) / (1 − τ⁺), in a wrong
    /// one ω⁻_t = max(τ⁻ − σ(w_t), 0) / τ⁻. With τ = 0.5 these are max(2σ(w_t) − 1, 0) and max(1 − 2σ(w_t), 0): a token the
    /// token-RM finds neutral gets weight 0, one it finds decisive weight near 1. Multiply the per-token policy loss by it.
    /// </summary>
    /// <param name="tokenLogits">w_t, <c>(B, A)</c> (detached here).</param>
    /// <param name="mask">1 at response tokens, <c>(B, A)</c>.</param>
    /// <param name="correct">Whether each sequence's outcome is correct, <c>(B)</c> bool.</param>
    /// <param name="correctThreshold">τ⁺ in (0, 1).</param>
    /// <param name="incorrectThreshold">τ⁻ in (0, 1).</param>
    public static Tensor Weights(Tensor tokenLogits, Tensor mask, Tensor correct, double correctThreshold = 0.5, double incorrectThreshold = 0.5)
    {
        TorchRuntime.EnsureLoaded();
        LossAggregator.RequireSameShape2D(tokenLogits, mask, nameof(mask));
        ArgumentNullException.ThrowIfNull(correct);
        if (correct.dim() != 1 || correct.shape[0] != tokenLogits.shape[0])
            throw new ArgumentException($"correct must be (B) with B = {tokenLogits.shape[0]}, got shape [{string.Join(", ", correct.shape)}].", nameof(correct));
        if (!(correctThreshold > 0 && correctThreshold < 1)) throw new ArgumentOutOfRangeException(nameof(correctThreshold), correctThreshold, "must be in (0, 1)");
        if (!(incorrectThreshold > 0 && incorrectThreshold < 1)) throw new ArgumentOutOfRangeException(nameof(incorrectThreshold), incorrectThreshold, "must be in (0, 1)");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var p = tokenLogits.detach().sigmoid();                                   // (B, A)  σ(w_t)
        var up = (p - correctThreshold).clamp_min(0) / (1 - correctThreshold);    // (B, A)  ω⁺
        var down = (incorrectThreshold - p).clamp_min(0) / incorrectThreshold;    // (B, A)  ω⁻
        var w = where(correct.to_type(ScalarType.Bool).unsqueeze(1), up, down);   // (B) → (B, 1) → (B, A)
        return (w * mask.to_type(w.dtype)).MoveToOuterDisposeScope();
    }
}
