using Sharpen.Torch;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sharpen.Algorithms;

/// <summary>
/// AlignDistil (Zhang et al. 2025, "AlignDistil: Token-Level Language Model Alignment as Adaptive Policy Distillation",
/// arXiv:2503.02832) as pure functions of logits. RLHF with the DPO reward r = β_dpo·log π_dpo/π_ref and KL weight β has the
/// token-level optimum log π* = log π_ref + α·(log π_dpo − log π_ref) + const, α = β_dpo/β: a teacher whose logits
/// linearly mix the DPO model's and the reference's. The contrastive variant uses a normal and a reverse DPO model (trained
/// on swapped preferences): log π* = base + α_t·(log π_dpo − log π_rdpo), with a token-adaptive α_t. The policy is
/// distilled towards π* token by token. Shapes: B sequences, T response positions, V vocabulary.
/// Departures (docs/recipes.md, "AlignDistil"): the token-adaptive weight is α_t = min(α_max, α / TV_t) with TV_t the total
/// variation between π_dpo and π_rdpo at position t (a larger shift where the two models agree, a smaller one where they
/// disagree sharply) — our reading of the paper's extrapolation rule, not its exact formula; the distillation divergence
/// is the forward KL(π* ‖ π_θ).
/// </summary>
public static class AlignDistilLosses
{
    /// <summary>
    /// The DPO-reward teacher's log-probabilities, log_softmax(log π_ref + α·(log π_dpo − log π_ref)), <c>(B, T, V)</c>, no grad.
    /// α = 0 is the reference, α = 1 the DPO model, α &gt; 1 extrapolates beyond it.
    /// </summary>
    public static Tensor TeacherLogProbs(Tensor referenceLogits, Tensor dpoLogits, double alpha)
    {
        TorchRuntime.EnsureLoaded();
        RequireSame(referenceLogits, dpoLogits, nameof(dpoLogits));
        if (!(alpha >= 0) || double.IsInfinity(alpha)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "alpha must be a finite number ≥ 0.");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var lref = F.log_softmax(referenceLogits.detach(), -1);                               // (B, T, V)
        var ldpo = F.log_softmax(dpoLogits.detach(), -1);                                     // (B, T, V)
        return F.log_softmax(lref + alpha * (ldpo - lref), -1).MoveToOuterDisposeScope();     // log π* ∝ log π_ref + α(log π_dpo − log π_ref)
    }

    /// <summary>
    /// The token-adaptive weights α_t = min(α_max, α / TV_t), TV_t = ½·Σ_v |π_dpo(v) − π_rdpo(v)| at each position,
    /// <c>(B, T)</c>, no grad (TV_t is floored at 1e-6).
    /// </summary>
    public static Tensor AdaptiveAlpha(Tensor dpoLogits, Tensor reverseLogits, double alpha, double alphaMax)
    {
        TorchRuntime.EnsureLoaded();
        RequireSame(dpoLogits, reverseLogits, nameof(reverseLogits));
        if (!(alpha > 0) || !(alphaMax >= alpha) || double.IsInfinity(alphaMax))
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha, $"need 0 < alpha ≤ alpha_max < ∞, got alpha = {alpha}, alpha_max = {alphaMax}.");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var tv = 0.5 * (F.softmax(dpoLogits.detach(), -1) - F.softmax(reverseLogits.detach(), -1)).abs().sum(-1);   // (B, T)
        return (alpha / tv.clamp_min(1e-6)).clamp_max(alphaMax).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The contrastive teacher's log-probabilities, log_softmax(log_softmax(base) + α_t·(log π_dpo − log π_rdpo)),
    /// <c>(B, T, V)</c>, no grad. <paramref name="alpha"/> is <c>(B, T)</c> (e.g. from <see cref="AdaptiveAlpha"/>).
    /// The base is the reference in the RLHF derivation; the DPO model itself gives the extrapolation away from the reverse model.
    /// </summary>
    public static Tensor ContrastiveTeacherLogProbs(Tensor baseLogits, Tensor dpoLogits, Tensor reverseLogits, Tensor alpha)
    {
        TorchRuntime.EnsureLoaded();
        RequireSame(baseLogits, dpoLogits, nameof(dpoLogits));
        RequireSame(baseLogits, reverseLogits, nameof(reverseLogits));
        if (!alpha.shape.SequenceEqual(baseLogits.shape.Take(2)))
            throw new ArgumentException($"alpha must be (B, T) = [{string.Join(", ", baseLogits.shape.Take(2))}], got [{string.Join(", ", alpha.shape)}].", nameof(alpha));
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var lbase = F.log_softmax(baseLogits.detach(), -1);                                  // (B, T, V)
        var diff = F.log_softmax(dpoLogits.detach(), -1) - F.log_softmax(reverseLogits.detach(), -1);   // (B, T, V)
        var a = alpha.detach().to_type(lbase.dtype).unsqueeze(-1);                           // (B, T, 1)
        return F.log_softmax(lbase + a * diff, -1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The distillation loss: KL(π* ‖ π_θ) = Σ_v π*(v)·(log π*(v) − log π_θ(v)) at each response position, averaged over
    /// the positions where <paramref name="mask"/> is 1. Returns the loss and the masked mean of the per-position KL.
    /// </summary>
    /// <param name="policyLogits">The policy's logits at the response positions, <c>(B, T, V)</c>, requires grad.</param>
    /// <param name="teacherLogProbs">log π* from <see cref="TeacherLogProbs"/> or <see cref="ContrastiveTeacherLogProbs"/>, <c>(B, T, V)</c>.</param>
    /// <param name="mask">1 at response tokens, 0 at prompt and padding, <c>(B, T)</c>.</param>
    public static (Tensor Loss, double MeanKl) Distill(Tensor policyLogits, Tensor teacherLogProbs, Tensor mask)
    {
        TorchRuntime.EnsureLoaded();
        RequireSame(policyLogits, teacherLogProbs, nameof(teacherLogProbs));
        if (!mask.shape.SequenceEqual(policyLogits.shape.Take(2)))
            throw new ArgumentException($"mask must be (B, T) = [{string.Join(", ", policyLogits.shape.Take(2))}], got [{string.Join(", ", mask.shape)}].", nameof(mask));
        using var scope = NewDisposeScope();
        var lt = teacherLogProbs.detach().to_type(policyLogits.dtype);                       // (B, T, V)
        var lp = F.log_softmax(policyLogits, -1);                                             // (B, T, V)
        var kl = (lt.exp() * (lt - lp)).sum(-1);                                              // (B, T)  KL(π* ‖ π_θ) per position
        var m = mask.to_type(kl.dtype);                                                       // (B, T)
        var loss = (kl * m).sum() / m.sum().clamp_min(1);
        return (loss.MoveToOuterDisposeScope(), loss.item<float>());
    }

    static void RequireSame(Tensor a, Tensor b, string name)
    {
        if (a.dim() != 3) throw new ArgumentException($"logits must be (B, T, V), got [{string.Join(", ", a.shape)}].", name);
        if (!a.shape.SequenceEqual(b.shape))
            throw new ArgumentException($"{name} has shape [{string.Join(", ", b.shape)}] but must match [{string.Join(", ", a.shape)}].", name);
    }
}
