using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sharpen.Algorithms;

/// <summary>
/// Losses and step rewards of process reward models, as pure functions of tensors. Each loss returns a <b>sum</b> over
/// its terms divided by a count the caller passes (the terms of the whole optimizer step), so splitting a step into
/// micro-batches and adding their gradients gives the gradient of the large batch; without a count the mean is taken.
/// −log σ(z) is computed as softplus(−z) and −log(1 − σ(z)) as softplus(z).
/// </summary>
public static class ProcessLosses
{
    /// <summary>
    /// Per-step binary cross-entropy of a PRM with soft labels y ∈ [0, 1] (Lightman et al. 2023; Wang et al. 2024, Math-Shepherd):
    /// ℓ = Σ_steps mask·[−y log σ(z) − (1 − y) log(1 − σ(z))] / count, with z the head's logit at each step's last token.
    /// </summary>
    /// <param name="logits">(N, S) logits, padded steps anything finite.</param>
    /// <param name="labels">(N, S) labels in [0, 1].</param>
    /// <param name="mask">(N, S) 1 for real steps, 0 for padding.</param>
    /// <param name="count">Real steps of the whole optimizer step; null = the real steps of this call.</param>
    public static Tensor StepBce(Tensor logits, Tensor labels, Tensor mask, double? count = null)
    {
        RequireSameShape(logits, labels, nameof(labels));
        RequireSameShape(logits, mask, nameof(mask));
        using var scope = NewDisposeScope();
        var z = logits.to(ScalarType.Float32);
        var y = labels.to(ScalarType.Float32);
        var m = mask.to(ScalarType.Float32);
        var perStep = y * F.softplus(-z) + (1 - y) * F.softplus(z);               // −y log σ(z) − (1−y) log(1−σ(z))
        var n = count ?? Math.Max(1.0, m.sum().item<float>());
        RequirePositive(n, nameof(count));
        return ((perStep * m).sum() / n).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Implicit PRM, cross-entropy variant (Yuan et al. 2024, "Free Process Rewards without Process Labels", arXiv:2412.01981):
    /// r = β·(log π_θ(y) − log π_ref(y)); ℓ = Σ [−l log σ(r) − (1 − l) log(1 − σ(r))] / count over completions with
    /// outcome labels l ∈ [0, 1].
    /// </summary>
    /// <param name="policy">(N) summed log π_θ of each completion (requires grad).</param>
    /// <param name="reference">(N) summed log π_ref of each completion.</param>
    /// <param name="labels">(N) outcome labels in [0, 1].</param>
    /// <param name="beta">β &gt; 0.</param>
    /// <param name="count">Completions of the whole optimizer step; null = N.</param>
    public static Tensor ImplicitCrossEntropy(Tensor policy, Tensor reference, Tensor labels, double beta, double? count = null)
    {
        RequirePositive(beta, nameof(beta));
        RequireSameShape(policy, reference, nameof(reference));
        RequireSameShape(policy, labels, nameof(labels));
        using var scope = NewDisposeScope();
        var r = beta * (policy - reference);                                       // β log π_θ/π_ref
        var l = labels.to(r.dtype);
        var n = count ?? policy.shape[0];
        RequirePositive(n, nameof(count));
        return ((l * F.softplus(-r) + (1 - l) * F.softplus(r)).sum() / n).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Implicit PRM, DPO variant (Yuan et al. 2024 with Rafailov et al. 2023 Eq. 7) on (correct, incorrect) pairs of one prompt:
    /// ℓ = Σ −log σ(β·[(log π_θ(y_w) − log π_ref(y_w)) − (log π_θ(y_l) − log π_ref(y_l))]) / count.
    /// </summary>
    /// <param name="policyCorrect">(B) summed log π_θ of the correct completions.</param>
    /// <param name="referenceCorrect">(B) summed log π_ref of the correct completions.</param>
    /// <param name="policyWrong">(B) summed log π_θ of the incorrect completions.</param>
    /// <param name="referenceWrong">(B) summed log π_ref of the incorrect completions.</param>
    /// <param name="beta">β &gt; 0.</param>
    /// <param name="count">Pairs of the whole optimizer step; null = B.</param>
    public static Tensor ImplicitDpo(Tensor policyCorrect, Tensor referenceCorrect, Tensor policyWrong, Tensor referenceWrong, double beta, double? count = null)
    {
        RequirePositive(beta, nameof(beta));
        RequireSameShape(policyCorrect, referenceCorrect, nameof(referenceCorrect));
        RequireSameShape(policyCorrect, policyWrong, nameof(policyWrong));
        RequireSameShape(policyCorrect, referenceWrong, nameof(referenceWrong));
        using var scope = NewDisposeScope();
        var h = (policyCorrect - referenceCorrect) - (policyWrong - referenceWrong);
        var n = count ?? policyCorrect.shape[0];
        RequirePositive(n, nameof(count));
        return (F.softplus(-beta * h).sum() / n).MoveToOuterDisposeScope();       // −log σ(β h)
    }


    static void RequirePositive(double v, string name)
    {
        if (!(v > 0) || double.IsInfinity(v)) throw new ArgumentOutOfRangeException(name, v, $"{name} must be positive and finite");
    }

    static void RequireSameShape(Tensor a, Tensor b, string name)
    {
        if (!a.shape.SequenceEqual(b.shape))
            throw new ArgumentException($"{name} has shape [{string.Join(",", b.shape)}], expected [{string.Join(",", a.shape)}]");
    }
}
