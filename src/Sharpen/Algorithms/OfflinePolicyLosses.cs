using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// Metrics of <see cref="OfflinePolicyLosses.Copg"/>, batch means over the B pairs: the reward difference R1 − R2, the
/// implicit difference β·h (h = log π(y1)/π_ref(y1) − log π(y2)/π_ref(y2)), and the mean absolute residual |R1 − R2 − β·h|.
/// </summary>
public sealed record CopgMetrics(double RewardMargin, double ImplicitMargin, double AbsResidual);

/// <summary>
/// Metrics of the A-LoL losses (<see cref="OfflinePolicyLosses.Alol"/> and its variants): the share of rows kept
/// (advantage &gt; 0) and, over the kept rows (0 when none), the mean advantage, the mean importance weight and the share of
/// weights that were clipped (per token for A-LoL seq; 1 and 0 for the variants without a weight), and the mean sequence
/// log-ratio log π(y) − log π_ref(y) (0 for the reference-free variant, which has no reference).
/// </summary>
public sealed record AlolMetrics(double KeptFraction, double AdvantageMean, double WeightMean, double ClipFraction, double LogRatioMean = 0);

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
    /// With <paramref name="paperScale"/> the loss is divided by 2β, ℓ/(2β), so its gradient −(ΔR − βh)·∇h is exactly the
    /// paper's CoPG direction and the paper's learning rates carry over; without it (the default, kept for the recipes
    /// already tuned on it) the gradient is 2β times the paper's.
    /// </summary>
    public static (Tensor Loss, CopgMetrics Metrics) Copg(Tensor policy1, Tensor policy2, Tensor ref1, Tensor ref2,
        Tensor reward1, Tensor reward2, double beta = 0.1, bool paperScale = false)
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
        if (paperScale) loss = loss / (2 * beta);                                                    // gradient = the paper's direction
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
    /// A-LoL (Baheti et al. 2023, arXiv:2305.14718), the main variant (sequence-level clipped importance weight), with the
    /// whole completion as one action. Advantage A = R − V_ref(x) (the reference policy's value estimate of the prompt,
    /// given); rows with A ≤ 0 are dropped (the paper drops negative-advantage data; a row with A = 0 would add nothing to the
    /// gradient but would count in K). Importance weight w = clamp(π(y)/π_ref(y), 1 − ε, 1 + ε), computed from the summed
    /// log-probs and <b>detached</b>, so the gradient is −A·w·∇log π(y) per kept row. Loss = −(1/K)·Σ_kept A·w·log π(y), K the
    /// number of kept rows; when K = 0 the loss is 0 (still attached to the graph, with zero gradient). The default ε = 0.9 is
    /// the clip the A-LoL experiments use. The other variants are <see cref="AlolRefFree"/>, <see cref="AlolSeq"/> and
    /// <see cref="AlolKl"/>.
    /// </summary>
    /// <param name="policyLogp">log π(y|x) summed over the completion, (B).</param>
    /// <param name="refLogp">log π_ref(y|x) summed over the completion, (B).</param>
    /// <param name="rewards">R, (B).</param>
    /// <param name="values">V_ref(x), (B).</param>
    /// <param name="clip">ε in (0, 1).</param>
    public static (Tensor Loss, AlolMetrics Metrics) Alol(Tensor policyLogp, Tensor refLogp, Tensor rewards, Tensor values,
        double clip = 0.9)
    {
        RequireAlolInputs(policyLogp, refLogp, rewards, values);
        RequireClip(clip);
        using var scope = NewDisposeScope();
        var dtype = policyLogp.dtype;
        var (advantage, keep, kept) = KeptAdvantages(rewards, values, dtype);                          // (B), (B), K
        var logRatio = policyLogp.detach() - refLogp.detach().to_type(dtype);                          // (B)  log π/π_ref
        var ratio = logRatio.exp();                                                                    // (B)  π/π_ref
        var weight = ratio.clamp(1 - clip, 1 + clip);                                                 // (B)  detached clipped weight
        var coefficient = keep * advantage * weight;                                                  // (B)  0 on dropped rows
        var loss = -(coefficient * policyLogp).sum() / Math.Max(kept, 1.0);                           // −mean_kept A·w·log π, arXiv:2305.14718
        AlolMetrics metrics;
        using (no_grad())
        {
            var clipped = ((ratio < 1 - clip) | (ratio > 1 + clip)).to_type(dtype);
            metrics = new AlolMetrics(kept / policyLogp.shape[0], MeanKept(keep, kept, advantage), MeanKept(keep, kept, weight),
                MeanKept(keep, kept, clipped), MeanKept(keep, kept, logRatio));
        }
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// A-LoL reference-free (arXiv:2305.14718): the main variant with the importance weight set to 1, so the policy's
    /// likelihood ratio to the reference plays no part (V_ref(x) still comes from the reference). Rows with A = R − V ≤ 0 are
    /// dropped; loss = −(1/K)·Σ_kept A·log π(y), gradient −A/K per kept row; 0 when K = 0.
    /// </summary>
    /// <param name="policyLogp">log π(y|x) summed over the completion, (B).</param>
    /// <param name="rewards">R, (B).</param>
    /// <param name="values">V_ref(x), (B).</param>
    public static (Tensor Loss, AlolMetrics Metrics) AlolRefFree(Tensor policyLogp, Tensor rewards, Tensor values)
    {
        RequireAlolInputs(policyLogp, null, rewards, values, withReference: false);
        using var scope = NewDisposeScope();
        var (advantage, keep, kept) = KeptAdvantages(rewards, values, policyLogp.dtype);              // (B), (B), K
        var loss = -(keep * advantage * policyLogp).sum() / Math.Max(kept, 1.0);                      // −mean_kept A·log π (w = 1)
        AlolMetrics metrics;
        using (no_grad())
            metrics = new AlolMetrics(kept / policyLogp.shape[0], MeanKept(keep, kept, advantage), kept == 0 ? 0 : 1, 0, 0);
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// A-LoL seq (arXiv:2305.14718): the importance weight is taken per token instead of per sequence. With the per-token
    /// ratio r_t = π(y_t|x, y_&lt;t)/π_ref(y_t|x, y_&lt;t) and w_t = clamp(r_t, 1 − ε, 1 + ε) <b>detached</b>, the per-row loss is
    /// A·Σ_t w_t·(−log π(y_t)), summed over the completion's real tokens (mask 1). Rows with A = R − V ≤ 0 are dropped; loss =
    /// mean over the K kept rows, 0 when K = 0. The gradient with respect to log π(y_t) is −A·w_t/K.
    /// </summary>
    /// <param name="policyTokenLogp">log π(y_t|·) per completion token, (B, A); padding is masked out.</param>
    /// <param name="refTokenLogp">log π_ref(y_t|·) per completion token, (B, A).</param>
    /// <param name="mask">(B, A), 1 on real completion tokens, 0 on padding.</param>
    /// <param name="rewards">R, (B).</param>
    /// <param name="values">V_ref(x), (B).</param>
    /// <param name="clip">ε in (0, 1).</param>
    public static (Tensor Loss, AlolMetrics Metrics) AlolSeq(Tensor policyTokenLogp, Tensor refTokenLogp, Tensor mask,
        Tensor rewards, Tensor values, double clip = 0.9)
    {
        ArgumentNullException.ThrowIfNull(policyTokenLogp, nameof(policyTokenLogp));
        TorchRuntime.EnsureLoaded();
        if (policyTokenLogp.dim() != 2 || policyTokenLogp.shape[0] == 0 || policyTokenLogp.shape[1] == 0)
            throw new ArgumentException($"{nameof(policyTokenLogp)} must be a non-empty (B, A) tensor, got shape [{string.Join(", ", policyTokenLogp.shape)}].", nameof(policyTokenLogp));
        RequireSameShape(policyTokenLogp, refTokenLogp, nameof(refTokenLogp));
        RequireSameShape(policyTokenLogp, mask, nameof(mask));
        RequireVector(rewards, nameof(rewards));
        if (rewards.shape[0] != policyTokenLogp.shape[0])
            throw new ArgumentException($"{nameof(rewards)} has shape [{string.Join(", ", rewards.shape)}] but must be [{policyTokenLogp.shape[0]}].", nameof(rewards));
        RequireSameShape(rewards, values, nameof(values));
        RequireClip(clip);
        using var scope = NewDisposeScope();
        var dtype = policyTokenLogp.dtype;
        var m = mask.detach().to_type(dtype);                                                          // (B, A)
        var (advantage, keep, kept) = KeptAdvantages(rewards, values, dtype);                          // (B), (B), K
        var logRatio = (policyTokenLogp.detach() - refTokenLogp.detach().to_type(dtype)) * m;         // (B, A)  per-token log π/π_ref
        var ratio = logRatio.exp();                                                                    // (B, A)
        var weight = ratio.clamp(1 - clip, 1 + clip) * m;                                             // (B, A)  detached w_t, 0 on padding
        var perRow = (weight * policyTokenLogp * m).sum(1);                                           // (B)  Σ_t w_t·log π(y_t)
        var loss = -(keep * advantage * perRow).sum() / Math.Max(kept, 1.0);                         // mean_kept A·Σ_t w_t·(−log π(y_t))
        AlolMetrics metrics;
        using (no_grad())
        {
            var keptTokens = (keep.unsqueeze(1) * m);                                                  // (B, A)  tokens of kept rows
            double tokens = keptTokens.sum().to_type(ScalarType.Float64).item<double>();
            double TokenMean(Tensor t) => tokens == 0 ? 0 : (keptTokens * t).sum().to_type(ScalarType.Float64).item<double>() / tokens;
            var clipped = ((ratio < 1 - clip) | (ratio > 1 + clip)).to_type(dtype);
            metrics = new AlolMetrics(kept / policyTokenLogp.shape[0], MeanKept(keep, kept, advantage), TokenMean(weight),
                TokenMean(clipped), MeanKept(keep, kept, logRatio.sum(1)));
        }
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// A-LoL KL (arXiv:2305.14718): no importance weight (w = 1) and no clip; instead a penalty β·(log π(y) − log π_ref(y)) on
    /// the sequence log-ratio, a one-sample estimate of KL(π‖π_ref). Rows with A = R − V ≤ 0 are dropped; per kept row the
    /// loss is A·(−log π(y)) + β·(log π(y) − log π_ref(y)), averaged over the K kept rows (0 when K = 0). The gradient with
    /// respect to log π(y) is (β − A)/K per kept row.
    /// </summary>
    /// <param name="policyLogp">log π(y|x) summed over the completion, (B).</param>
    /// <param name="refLogp">log π_ref(y|x) summed over the completion, (B).</param>
    /// <param name="rewards">R, (B).</param>
    /// <param name="values">V_ref(x), (B).</param>
    /// <param name="beta">β &gt; 0, the weight of the KL penalty.</param>
    public static (Tensor Loss, AlolMetrics Metrics) AlolKl(Tensor policyLogp, Tensor refLogp, Tensor rewards, Tensor values,
        double beta = 0.1)
    {
        RequireAlolInputs(policyLogp, refLogp, rewards, values);
        RequirePositive(beta, nameof(beta));
        using var scope = NewDisposeScope();
        var dtype = policyLogp.dtype;
        var (advantage, keep, kept) = KeptAdvantages(rewards, values, dtype);                          // (B), (B), K
        var logRatio = policyLogp - refLogp.detach().to_type(dtype);                                  // (B)  log π/π_ref, with gradient
        var perRow = advantage * -policyLogp + beta * logRatio;                                       // (B)  A·(−log π) + β·(log π − log π_ref)
        var loss = (keep * perRow).sum() / Math.Max(kept, 1.0);                                       // mean over kept rows
        AlolMetrics metrics;
        using (no_grad())
            metrics = new AlolMetrics(kept / policyLogp.shape[0], MeanKept(keep, kept, advantage), kept == 0 ? 0 : 1, 0,
                MeanKept(keep, kept, logRatio.detach()));
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>A = R − V (detached), the keep mask 1[A &gt; 0] and the number K of kept rows.</summary>
    static (Tensor Advantage, Tensor Keep, double Kept) KeptAdvantages(Tensor rewards, Tensor values, ScalarType dtype)
    {
        var advantage = rewards.detach().to_type(dtype) - values.detach().to_type(dtype);             // (B)  A = R − V_ref(x)
        var keep = (advantage > 0).to_type(dtype);                                                     // (B)  1 kept, 0 dropped
        return (advantage, keep, keep.sum().to_type(ScalarType.Float64).item<double>());
    }

    /// <summary>Mean of a (B) tensor over the kept rows; 0 when none is kept.</summary>
    static double MeanKept(Tensor keep, double kept, Tensor t) =>
        kept == 0 ? 0 : (keep * t).sum().to_type(ScalarType.Float64).item<double>() / kept;

    /// <summary>The sequence-level A-LoL inputs: (B) vectors of one shape (no <paramref name="refLogp"/> for ref-free).</summary>
    static void RequireAlolInputs(Tensor? policyLogp, Tensor? refLogp, Tensor? rewards, Tensor? values, bool withReference = true)
    {
        RequireVector(policyLogp, nameof(policyLogp));
        if (withReference) RequireSameShape(policyLogp!, refLogp, nameof(refLogp));
        RequireSameShape(policyLogp!, rewards, nameof(rewards));
        RequireSameShape(policyLogp!, values, nameof(values));
    }

    static void RequireClip(double clip)
    {
        if (!(clip > 0 && clip < 1))
            throw new ArgumentOutOfRangeException(nameof(clip), clip, $"{nameof(clip)} must be in (0, 1).");
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
