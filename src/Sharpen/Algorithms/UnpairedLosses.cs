using Sharpen.Torch;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sharpen.Algorithms;

/// <summary>
/// Inputs of <see cref="UnpairedLosses.Kto"/>: per-example summed log-probs of a completion under the policy and the
/// reference <c>(B)</c>, which examples are desirable <c>(B)</c> bool, and the reference point z₀ (a scalar, see
/// <see cref="UnpairedLosses.KtoReferencePoint"/>).
/// </summary>
public sealed record KtoInput(Tensor Policy, Tensor Reference, Tensor Desirable, Tensor ReferencePoint);

/// <summary>
/// Metrics of a KTO batch: the mean implicit reward β·(log π_θ − log π_ref) of the desirable and of the undesirable examples
/// (NaN when the batch has none of that kind), the reference point z₀ (in nats, before β), and how many of each kind.
/// </summary>
public sealed record KtoMetrics(double DesirableReward, double UndesirableReward, double ReferencePoint, int Desirable, int Undesirable);

/// <summary>
/// Losses over unpaired examples (a completion labelled desirable or undesirable, no pairing), as pure functions of tensors.
/// </summary>
public static class UnpairedLosses
{
    /// <summary>The ways <see cref="KtoReferencePoint"/>'s inputs can be obtained (see the KTO trainer).</summary>
    public static IReadOnlyList<string> ReferencePoints { get; } = ["mismatched", "policy_samples", "zero"];

    /// <summary>
    /// KTO's reference point z₀ = max(0, mean_j [log π_θ(y′_j|x_j) − log π_ref(y′_j|x_j)]), detached (KTO, Ethayarajh et al.
    /// 2024, arXiv:2402.01306 §4.1: z₀ estimates KL(π_θ ‖ π_ref) and no gradient flows through it). The y′ are completions
    /// that are <i>not</i> the examples' own: in the paper's definition samples y′ ~ π_θ(·|x); in its practical estimate (and
    /// TRL's) the completions of other examples of the same batch. Inputs: summed log-probs <c>(M)</c> each; returns a scalar.
    /// </summary>
    public static Tensor KtoReferencePoint(Tensor policyLogProbs, Tensor referenceLogProbs)
    {
        ArgumentNullException.ThrowIfNull(policyLogProbs);
        ArgumentNullException.ThrowIfNull(referenceLogProbs);
        TorchRuntime.EnsureLoaded();
        if (policyLogProbs.dim() != 1 || policyLogProbs.shape[0] == 0 || !policyLogProbs.shape.SequenceEqual(referenceLogProbs.shape))
            throw new ArgumentException($"KTO reference point needs two equal non-empty (M) tensors, got [{string.Join(", ", policyLogProbs.shape)}] and [{string.Join(", ", referenceLogProbs.shape)}].");
        using var noGrad = no_grad();
        return (policyLogProbs.detach() - referenceLogProbs.detach().to_type(policyLogProbs.dtype)).mean().clamp_min(0);
    }

    /// <summary>
    /// KTO (Ethayarajh et al. 2024, arXiv:2402.01306 Eq. 8): with r = log π_θ(y|x) − log π_ref(y|x) and reference point z₀,
    /// the value v = λ_D·σ(β(r − z₀)) for a desirable example and λ_U·σ(β(z₀ − r)) for an undesirable one, and
    /// loss = mean over B of (λ_y − v) = λ_D·(1 − σ(β(r − z₀))) or λ_U·(1 − σ(β(z₀ − r))). The paper suggests
    /// λ_D·n_D / (λ_U·n_U) in [1, 4/3]. z₀ is detached.
    /// </summary>
    public static (Tensor Loss, KtoMetrics Metrics) Kto(KtoInput x, double beta = 0.1, double desirableWeight = 1.0, double undesirableWeight = 1.0)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!(beta > 0) || double.IsInfinity(beta)) throw new ArgumentOutOfRangeException(nameof(beta), beta, "beta must be positive and finite.");
        if (!(desirableWeight >= 0) || !(undesirableWeight >= 0) || double.IsInfinity(desirableWeight) || double.IsInfinity(undesirableWeight))
            throw new ArgumentOutOfRangeException(nameof(desirableWeight), "desirable and undesirable weights must be finite and non-negative.");
        TorchRuntime.EnsureLoaded();
        if (x.Policy.dim() != 1 || x.Policy.shape[0] == 0)
            throw new ArgumentException($"Policy must be a non-empty (B) tensor, got [{string.Join(", ", x.Policy.shape)}].", nameof(x));
        if (!x.Reference.shape.SequenceEqual(x.Policy.shape) || !x.Desirable.shape.SequenceEqual(x.Policy.shape))
            throw new ArgumentException("Policy, Reference and Desirable must have the same (B) shape.", nameof(x));
        if (x.ReferencePoint.NumberOfElements != 1) throw new ArgumentException("ReferencePoint must be a scalar.", nameof(x));
        using var scope = NewDisposeScope();
        var desirable = x.Desirable.to_type(ScalarType.Bool);                                       // (B)
        var r = x.Policy - x.Reference.detach().to_type(x.Policy.dtype);                            // (B)  log π_θ − log π_ref
        var z0 = x.ReferencePoint.detach().to_type(x.Policy.dtype).reshape(1);                       // (1)
        var sign = where(desirable, ones_like(r), -ones_like(r));                                   // +1 desirable, −1 undesirable
        var weight = where(desirable, full_like(r, desirableWeight), full_like(r, undesirableWeight));
        var loss = (weight * (1 - F.sigmoid(beta * sign * (r - z0)))).mean();                       // λ_y − v(x, y), arXiv:2402.01306 Eq. 8

        KtoMetrics metrics;
        using (no_grad())
        {
            var rewards = (beta * r).detach().to_type(ScalarType.Float64);
            var nd = (int)desirable.sum().item<long>();
            var nu = (int)desirable.shape[0] - nd;
            double Mean(Tensor mask, int n) => n == 0 ? double.NaN : rewards.masked_select(mask).mean().item<double>();
            metrics = new KtoMetrics(Mean(desirable, nd), Mean(desirable.logical_not(), nu), z0.to_type(ScalarType.Float64).item<double>(), nd, nu);
        }
        return (loss.MoveToOuterDisposeScope(), metrics);
    }
}
