using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>Which f-divergence D_f(π_θ ‖ p) f-DPG minimises (Go et al. 2023, arXiv:2302.08215).</summary>
public enum FDivergence
{
    /// <summary>KL(π_θ ‖ p), f(t) = t log t: RL with a KL penalty (RLHF) when p ∝ a·exp(r/β).</summary>
    ReverseKl,
    /// <summary>KL(p ‖ π_θ), f(t) = −log t: DPG / GDC (Khalifa et al. 2021), mass-covering.</summary>
    ForwardKl,
    /// <summary>TV(π_θ, p), f(t) = ½|t − 1|.</summary>
    TotalVariation,
    /// <summary>JS(π_θ, p), f(t) = ½[t log(2t/(1+t)) + log(2/(1+t))]; the paper's recommended balance of alignment and diversity.</summary>
    JensenShannon,
}

/// <summary>The target energy-based model P(y) = a(y)·φ(y) f-DPG moves the policy towards (a = the reference / base policy).</summary>
public enum EbmTarget
{
    /// <summary>φ(y) = exp(r(y)/β): the target whose reverse-KL projection is KL-regularised RL (the RLHF optimum).</summary>
    ExpReward,
    /// <summary>φ(y) = 1 when r(y) &gt; 0, else 0: a pointwise constraint (GDC), p is the base policy restricted to the passing set.</summary>
    Filter,
}

/// <summary>
/// f-DPG (Go et al. 2023, arXiv:2302.08215): distributional policy gradient towards a target distribution p = P/Z for any
/// f-divergence. With t(y) = π_θ(y)/p(y), ∇_θ D_f(π_θ ‖ p) = E_{y∼π_θ}[f′(t(y)) ∇_θ log π_θ(y)], so the policy follows a
/// policy gradient with the pseudo-reward R_θ(y) = −f′(π_θ(y)/p(y)). Pure functions of per-sequence log-probabilities
/// <c>(B)</c>; Z is estimated on the batch by importance sampling, Ẑ = mean_i P(y_i)/π_θ(y_i).
/// Departures: log t is clamped to ±<see cref="MaxLogRatio"/> (the filter target makes t infinite where φ = 0; reverse KL's
/// −log t would be −∞ there); Ẑ is the batch's estimate, not a moving average over batches.
/// </summary>
public static class FDivergences
{
    /// <summary>Bound on |log t| so that pseudo-rewards stay finite.</summary>
    public const double MaxLogRatio = 20.0;

    /// <summary>log Ẑ = log( (1/B) Σ_i exp(log P_i − log π_i) ) from the batch's unnormalised target and policy log-probs <c>(B)</c>;
    /// −∞ when no sample has P &gt; 0.</summary>
    public static Tensor LogPartition(Tensor logPolicy, Tensor logTarget)
    {
        Check(logPolicy, logTarget);
        var w = logTarget.to_type(ScalarType.Float64) - logPolicy.to_type(ScalarType.Float64);   // (B)  log P/π
        return w.logsumexp(0) - Math.Log(w.shape[0]);                                            // scalar, log mean P/π
    }

    /// <summary>
    /// f′(t) at log t <c>(B)</c>: reverse KL log t + 1; forward KL −1/t; TV ½ sign(t − 1); JS ½ log(2t/(1+t)).
    /// </summary>
    public static Tensor Derivative(Tensor logT, FDivergence f)
    {
        ArgumentNullException.ThrowIfNull(logT);
        var lt = logT.clamp(-MaxLogRatio, MaxLogRatio);                                          // (B)
        return f switch
        {
            FDivergence.ReverseKl => lt + 1,                                                     // d/dt t log t
            FDivergence.ForwardKl => -(-lt).exp(),                                               // d/dt −log t = −1/t
            FDivergence.TotalVariation => 0.5 * lt.sign(),                                       // d/dt ½|t − 1|
            FDivergence.JensenShannon => 0.5 * (Math.Log(2.0) - nn.functional.softplus(-lt)),   // ½ log(2t/(1+t)) = ½[log 2 − log(1 + 1/t)]
            _ => throw new ArgumentOutOfRangeException(nameof(f), f, "unknown f-divergence"),
        };
    }

    /// <summary>
    /// The pseudo-rewards R_i = −f′(t_i) <c>(B)</c> with log t_i = log π_i − log P_i + log Z. <paramref name="logZ"/> null: the
    /// batch estimate <see cref="LogPartition"/>. A batch where no sample has P &gt; 0 carries no signal: all zeros.
    /// </summary>
    public static Tensor PseudoRewards(Tensor logPolicy, Tensor logTarget, FDivergence f, Tensor? logZ = null)
    {
        Check(logPolicy, logTarget);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var lz = logZ ?? LogPartition(logPolicy, logTarget);                                       // scalar
        if (double.IsNegativeInfinity(lz.to_type(ScalarType.Float64).item<double>()))
            return zeros_like(logPolicy, dtype: ScalarType.Float32).MoveToOuterDisposeScope();
        var lp = logPolicy.to_type(ScalarType.Float64);
        var ltarget = logTarget.to_type(ScalarType.Float64);
        var logT = (lp - ltarget + lz).nan_to_num(nan: MaxLogRatio, posinf: MaxLogRatio, neginf: -MaxLogRatio);   // (B)  log π/p; P = 0 → +∞ → clamp
        var r = -Derivative(logT, f);                                                              // (B)  R_θ(y) = −f′(π_θ/p), arXiv:2302.08215 §3
        return r.to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// log P(y) of the target EBM per sequence <c>(B)</c>: log a(y) + r(y)/β (<see cref="EbmTarget.ExpReward"/>) or log a(y) where
    /// r(y) &gt; 0 and −∞ elsewhere (<see cref="EbmTarget.Filter"/>). <paramref name="logBase"/> = log a(y), the reference's sequence log-prob.
    /// </summary>
    public static Tensor LogTarget(Tensor logBase, Tensor rewards, EbmTarget target, double beta)
    {
        Check(logBase, rewards);
        var lb = logBase.to_type(ScalarType.Float64);
        var r = rewards.to_type(ScalarType.Float64);
        return target switch
        {
            EbmTarget.ExpReward => beta > 0 ? lb + r / beta : throw new ArgumentOutOfRangeException(nameof(beta), beta, "the exp-reward target needs β > 0"),
            EbmTarget.Filter => where(r > 0, lb, full_like(lb, double.NegativeInfinity)),
            _ => throw new ArgumentOutOfRangeException(nameof(target), target, "unknown EBM target"),
        };
    }

    /// <summary>
    /// f-DPG advantages: pseudo-rewards minus their mean over each group of <paramref name="groupSize"/> consecutive rows (the batch
    /// when it is 1), broadcast over the response tokens <paramref name="mask"/> <c>(B, A)</c>. Returns (advantages <c>(B, A)</c>,
    /// pseudo-rewards <c>(B)</c>). log π and log a are sequence sums of per-token log-probs.
    /// </summary>
    public static (Tensor Advantages, Tensor PseudoRewards) Advantages(Tensor logPolicy, Tensor logTarget, Tensor mask, int groupSize, FDivergence f)
    {
        ArgumentNullException.ThrowIfNull(mask);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var r = PseudoRewards(logPolicy, logTarget, f);                                           // (B)
        if (groupSize < 1 || r.shape[0] % groupSize != 0)
            throw new ArgumentException($"The batch of {r.shape[0]} rows is not a whole number of groups of {groupSize}.", nameof(groupSize));
        var baseline = groupSize > 1 ? r.view(-1, groupSize).mean([1L], keepdim: true).expand(-1, groupSize).reshape(-1) : r.mean().expand_as(r);   // (B)
        var adv = (r - baseline).unsqueeze(1) * mask.to_type(ScalarType.Float32);                // (B) → (B, A)
        scope.MoveToOuter(adv, r);
        return (adv, r);
    }

    static void Check(Tensor a, Tensor b)
    {
        TorchRuntime.EnsureLoaded();
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.dim() != 1 || b.dim() != 1 || a.shape[0] != b.shape[0] || a.shape[0] == 0)
            throw new ArgumentException($"f-DPG needs two non-empty (B) vectors of one length, got [{string.Join(", ", a.shape)}] and [{string.Join(", ", b.shape)}].");
    }
}
