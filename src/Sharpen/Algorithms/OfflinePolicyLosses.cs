using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// Metrics of <see cref="OfflinePolicyLosses.Copg"/>, batch means over the B pairs: the reward difference R1 − R2, the
/// implicit difference β·h (h = log π(y1)/π_ref(y1) − log π(y2)/π_ref(y2)), and the mean absolute residual |R1 − R2 − β·h|.
/// </summary>
public sealed record CopgMetrics(double RewardMargin, double ImplicitMargin, double AbsResidual);

/// <summary>
/// Metrics of <see cref="OfflinePolicyLosses.Alol"/>: the share of rows kept (advantage &gt; 0) and, over the kept rows
/// (0 when none), the mean advantage, the mean clipped weight and the share of weights that were clipped.
/// </summary>
public sealed record AlolMetrics(double KeptFraction, double AdvantageMean, double WeightMean, double ClipFraction);

/// <summary>
/// Offline policy-gradient losses on scored (not preference-labelled) completions, as pure functions of per-sequence
/// summed log-probs <c>(B)</c> and per-sequence scalar rewards <c>(B)</c>. The reference log-probs, rewards and values are
/// treated as constants (detached). Each returns a scalar loss to minimise and plain-number metrics.
/// </summary>
public static class OfflinePolicyLosses
{
    /// <summary>
    /// Contrastive Policy Gradient (Flet-Berliac et al. 2024, arXiv:2406.19185) on pairs (y1, y2) of completions of the same
    /// prompt with rewards R1, R2. With the regularised reward R_β(y) = R(y) − β·log π(y)/π_ref(y), the per-pair loss is the
    /// squared difference of the two regularised rewards:
    /// ℓ = (R1 − β·log π(y1)/π_ref(y1) − R2 + β·log π(y2)/π_ref(y2))² = (ΔR − β·h)², mean over B,
    /// with ΔR = R1 − R2 and h the difference of the <b>summed</b> log-ratios. Its gradient, −2β(ΔR − β h)·∇(log π(y1) − log π(y2)),
    /// is the pairwise policy gradient in which each completion serves as the other's baseline, corrected by the KL term.
    /// The loss is symmetric in (y1, y2). The paper's CoPG ascent direction is (R_β(y1) − R_β(y2))·∇(log π(y1) − log π(y2)),
    /// so minimising this squared loss follows exactly that direction scaled by 2β (the "supervised-friendly" form).
    /// Preference-only data (the documented constant): with R(y_w) − R(y_l) = ΔR for every pair,
    /// (ΔR − βh)² = β²·(h − ΔR/β)² = β²·IPO(τ) with τ = β/(2ΔR) (IPO, arXiv:2310.12036 Eq. 17: (h − 1/(2τ))²).
    /// Rewards 1/0 (ΔR = 1) give β²·IPO(τ = β/2); rewards ±1 (ΔR = 2) give β²·IPO(τ = β/4). Pairs with equal rewards only
    /// pull the two log-ratios together (ΔR = 0).
    /// Departure: the paper writes the loss for a single pair; here it is averaged over a batch of B pairs.
    /// </summary>
    public static (Tensor Loss, CopgMetrics Metrics) Copg(Tensor policy1, Tensor policy2, Tensor ref1, Tensor ref2,
        Tensor reward1, Tensor reward2, double beta = 0.1)
    {
        RequireVector(policy1, nameof(policy1));
        RequireSameShape(policy1, policy2, nameof(policy2));
        RequireSameShape(policy1, ref1, nameof(ref1));
        RequireSameShape(policy1, ref2, nameof(ref2));
        RequireSameShape(policy1, reward1, nameof(reward1));
        RequireSameShape(policy1, reward2, nameof(reward2));
        RequirePositive(beta, nameof(beta));
        using var scope = NewDisposeScope();
        var dtype = policy1.dtype;
        var h = (policy1 - ref1.detach().to_type(dtype)) - (policy2 - ref2.detach().to_type(dtype));   // (B)
        var rewardMargin = reward1.detach().to_type(dtype) - reward2.detach().to_type(dtype);           // (B)  ΔR
        var residual = rewardMargin - beta * h;                                                       // (B)  R_β(y1) − R_β(y2)
        var loss = (residual * residual).mean();                                                     // (ΔR − βh)², arXiv:2406.19185
        CopgMetrics metrics;
        using (no_grad())
        {
            metrics = new CopgMetrics(
                rewardMargin.to_type(ScalarType.Float64).mean().item<double>(),
                (beta * h).detach().to_type(ScalarType.Float64).mean().item<double>(),
                residual.detach().abs().to_type(ScalarType.Float64).mean().item<double>());
        }
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// A-LoL (Baheti et al. 2023, arXiv:2305.14718), the clipped-weight variant, with the whole completion as one action.
    /// Advantage A = R − V_ref(x) (the reference policy's value estimate of the prompt, given); rows with A ≤ 0 are dropped
    /// (the paper drops negative-advantage data; a row with A = 0 would add nothing to the gradient but would count in K).
    /// Importance weight w = clamp(π(y)/π_ref(y), 1 − ε, 1 + ε), computed from the summed log-probs and <b>detached</b>, so the
    /// gradient is −A·w·∇log π(y) per kept row. Loss = −(1/K)·Σ_kept A·w·log π(y), K the number of kept rows; when K = 0 the loss
    /// is 0 (still attached to the graph, with zero gradient). The default ε = 0.9 is the clip the A-LoL experiments use.
    /// The paper's other variants (reference-free: w = 1; A-LoL seq: per-token ratios; A-LoL KL: a KL penalty instead of
    /// the clip) are not implemented.
    /// </summary>
    public static (Tensor Loss, AlolMetrics Metrics) Alol(Tensor policyLogp, Tensor refLogp, Tensor rewards, Tensor values,
        double clip = 0.9)
    {
        RequireVector(policyLogp, nameof(policyLogp));
        RequireSameShape(policyLogp, refLogp, nameof(refLogp));
        RequireSameShape(policyLogp, rewards, nameof(rewards));
        RequireSameShape(policyLogp, values, nameof(values));
        if (!(clip > 0 && clip < 1))
            throw new ArgumentOutOfRangeException(nameof(clip), clip, $"{nameof(clip)} must be in (0, 1).");
        using var scope = NewDisposeScope();
        var dtype = policyLogp.dtype;
        var advantage = rewards.detach().to_type(dtype) - values.detach().to_type(dtype);            // (B)  A = R − V_ref(x)
        var keep = (advantage > 0).to_type(dtype);                                                     // (B)  1 kept, 0 dropped
        var ratio = (policyLogp.detach() - refLogp.detach().to_type(dtype)).exp();                   // (B)  π/π_ref
        var weight = ratio.clamp(1 - clip, 1 + clip);                                                 // (B)  detached clipped weight
        var kept = keep.sum().to_type(ScalarType.Float64).item<double>();                    // K
        var coefficient = keep * advantage * weight;                                                  // (B)  0 on dropped rows
        var loss = -(coefficient * policyLogp).sum() / Math.Max(kept, 1.0);                           // −mean_kept A·w·log π, arXiv:2305.14718
        AlolMetrics metrics;
        using (no_grad())
        {
            var n = policyLogp.shape[0];
            var clipped = ((ratio < 1 - clip) | (ratio > 1 + clip)).to_type(dtype);
            double MeanKept(Tensor t) => kept == 0 ? 0 : ((keep * t).sum().to_type(ScalarType.Float64).item<double>() / kept);
            metrics = new AlolMetrics(kept / n, MeanKept(advantage), MeanKept(weight), MeanKept(clipped));
        }
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    static void RequireVector(Tensor? t, string name)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        TorchRuntime.EnsureLoaded();
        if (t.dim() != 1 || t.shape[0] == 0)
            throw new ArgumentException($"{name} must be a non-empty (B) tensor, got shape [{string.Join(", ", t.shape)}].", name);
    }

    static void RequireSameShape(Tensor reference, Tensor? other, string otherName)
    {
        ArgumentNullException.ThrowIfNull(other, otherName);
        if (!reference.shape.SequenceEqual(other.shape))
            throw new ArgumentException(
                $"{otherName} has shape [{string.Join(", ", other.shape)}] but must match [{string.Join(", ", reference.shape)}].", otherName);
    }

    static void RequirePositive(double value, string name)
    {
        if (!(value > 0) || double.IsInfinity(value))
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a finite number > 0.");
    }
}
