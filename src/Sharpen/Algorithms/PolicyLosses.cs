using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// Policy-gradient losses as pure functions of tensors (the "update" move). Each builds a per-token loss <c>(B, A)</c>,
/// reduces it with <see cref="LossAggregator.Aggregate"/> and returns the scalar to minimise plus plain-number metrics.
/// Registered names: "ppo_clip", "vanilla", "topr".
/// </summary>
public static class PolicyLosses
{
    /// <summary>log-ratios are clamped to ±20 before exp so that ratios stay finite in float32.</summary>
    const double MaxLogRatio = 20.0;

    /// <summary>The policy losses by name, as the RL trainer looks them up through an algorithm's <c>AlgorithmSpec</c>.</summary>
    public static Registry<PolicyLoss> Registry { get; } = BuiltIns();

    /// <summary>The registered loss names.</summary>
    public static IReadOnlyList<string> Names => Registry.Names;

    /// <summary>Throws <see cref="ArgumentException"/> listing <see cref="Names"/> when <paramref name="name"/> is not one of them.</summary>
    public static void EnsureKnown(string name) => Registry.Get(name);

    static Registry<PolicyLoss> BuiltIns()
    {
        var r = new Registry<PolicyLoss>("policy loss");
        r.Register("ppo_clip", new((x, c) => PpoClip(x, c.Clip, c.Aggregation)));
        r.Register("vanilla", new((x, c) => Vanilla(x, c.Aggregation)));
        r.Register("topr", new((x, c) => Topr(x, c.SequenceAdvantages, c.Aggregation), OffPolicy: true));
        r.Register("p3o_clip", new((x, c) => PairwisePolicyLosses.P3o(x, c.SequenceAdvantages, c.Clip.ClipLow, c.MinibatchPairs), RowsPerUnit: 2));
        r.Register("refuel", new((x, c) => PairwisePolicyLosses.Refuel(x, c.SequenceAdvantages, c.Eta, c.MinibatchPairs), RowsPerUnit: 2));
        return r;
    }

    /// <summary>
    /// Per-token entropy of the policy, H_t = −Σ_v π(v | s_t) log π(v | s_t), from logits <c>(B, A, V)</c>; differentiable.
    /// An entropy bonus (Williams &amp; Peng 1991; Mnih et al. 2016, arXiv:1602.01783) subtracts
    /// <c>coef · Aggregate(H, mask)</c> from the loss to keep the policy from collapsing onto one answer per prompt.
    /// </summary>
    public static Tensor TokenEntropy(Tensor logits)
    {
        ArgumentNullException.ThrowIfNull(logits);
        var logp = logits.log_softmax(-1);                                               // (B, A, V)
        return -(logp.exp() * logp).sum(-1);                                             // (B, A)
    }

    /// <summary>
    /// PPO clipped surrogate (Schulman et al. 2017, arXiv:1707.06347 Eq. 7) with asymmetric bounds (DAPO clip-higher,
    /// arXiv:2503.14476 Eq. 10) and optional dual clip (Ye et al. 2020, arXiv:1912.09729):
    /// loss_t = −min(ρ_t A_t, clip(ρ_t, 1 − ε_low, 1 + ε_high) A_t), and for A_t &lt; 0 with dual clip c, min(loss_t, −c A_t).
    /// <see cref="PolicyLossMetrics.ClipFraction"/> counts tokens where the clipped term or the dual-clip cap was taken
    /// (those tokens get no gradient).
    /// </summary>
    public static (Tensor Loss, PolicyLossMetrics Metrics) PpoClip(PolicyLossInput x, ClipOptions clip, Aggregation agg)
    {
        ArgumentNullException.ThrowIfNull(clip);
        clip.Validate();
        Check(x);
        using var scope = NewDisposeScope();
        var adv = x.Advantages.detach();                                          // (B, A)
        var ratio = (x.LogProbs - x.OldLogProbs).clamp(-MaxLogRatio, MaxLogRatio).exp();   // (B, A)  ρ_t = π_θ / μ
        var unclipped = -adv * ratio;                                             // (B, A)
        var clipped = -adv * ratio.clamp(1 - clip.ClipLow, 1 + clip.ClipHigh);    // (B, A)
        var perToken = maximum(unclipped, clipped);                               // −min(ρA, clip(ρ, 1−ε_low, 1+ε_high)A), arXiv:1707.06347 Eq. 7; 2503.14476 Eq. 10
        var clippedTaken = clipped > unclipped;                                   // (B, A) bool
        if (clip.DualClip is { } c)
        {
            var capped = minimum(perToken, -c * adv);                             // min(loss, −c·A), arXiv:1912.09729 Eq. 5
            var negative = adv < 0;                                               // (B, A) bool
            clippedTaken = clippedTaken.logical_or(negative.logical_and(-c * adv < perToken));
            perToken = where(negative, capped, perToken);                         // dual clip applies to A < 0 only
        }
        var loss = LossAggregator.Aggregate(perToken, x.Mask, agg);
        var metrics = Metrics(x, clippedTaken);
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// Plain on-policy policy gradient (Williams 1992), the loss of REINFORCE, ReMax (arXiv:2310.10505) and RLOO
    /// (arXiv:2402.14740): loss_t = −A_t log π_θ(a_t). No ratio and no clipping; metrics still report π/μ.
    /// </summary>
    public static (Tensor Loss, PolicyLossMetrics Metrics) Vanilla(PolicyLossInput x, Aggregation agg)
    {
        Check(x);
        using var scope = NewDisposeScope();
        var perToken = -x.Advantages.detach() * x.LogProbs;                       // (B, A)  −A·log π, Williams 1992
        var loss = LossAggregator.Aggregate(perToken, x.Mask, agg);
        var metrics = Metrics(x, clippedTaken: null);
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// Tapered Off-Policy REINFORCE (Le Roux et al. 2025, arXiv:2503.14286 Eq. 4): sequences with R − c ≥ 0 get weight 1
    /// (no importance sampling); sequences with R − c &lt; 0 get the truncated sequence ratio
    /// w = clamp(π(y)/μ(y), 0, 1) = exp(min(Σ_t (log π − log μ), 0)). w is detached, so ∇loss = −w (R − c) ∇log π.
    /// loss_t = −w_b (R_b − c) log π_θ(a_t). The token advantage used is <paramref name="sequenceAdvantage"/> broadcast over
    /// the row; <see cref="PolicyLossInput.Advantages"/> is not read. <see cref="PolicyLossMetrics.ClipFraction"/> is the
    /// share of tokens in negative sequences whose weight was truncated below 1.
    /// </summary>
    /// <param name="x">Log-probs, behaviour log-probs and mask.</param>
    /// <param name="sequenceAdvantage">R − c per sequence, <c>(B)</c>.</param>
    /// <param name="agg">Aggregation.</param>
    public static (Tensor Loss, PolicyLossMetrics Metrics) Topr(PolicyLossInput x, Tensor sequenceAdvantage, Aggregation agg)
    {
        Check(x);
        ArgumentNullException.ThrowIfNull(sequenceAdvantage);
        if (sequenceAdvantage.dim() != 1 || sequenceAdvantage.shape[0] != x.LogProbs.shape[0])
            throw new ArgumentException($"sequenceAdvantage must be (B) with B = {x.LogProbs.shape[0]}, got shape [{string.Join(", ", sequenceAdvantage.shape)}].", nameof(sequenceAdvantage));
        using var scope = NewDisposeScope();
        var m = x.Mask.to_type(x.LogProbs.dtype);                                 // (B, A)
        var adv = sequenceAdvantage.detach().to_type(x.LogProbs.dtype);           // (B)
        Tensor weight;                                                            // (B)
        using (no_grad())
        {
            var logSeqRatio = ((x.LogProbs - x.OldLogProbs) * m).sum(1);          // (B, A) → (B)  log π(y)/μ(y)
            var truncated = logSeqRatio.clamp_max(0.0).exp();                     // (B)  clamp(π(y)/μ(y), 0, 1), arXiv:2503.14286 Eq. 4
            weight = where(adv >= 0, ones_like(truncated), truncated);            // (B)  1 for positives, truncated IS for negatives
        }
        var perToken = -(weight * adv).unsqueeze(1) * x.LogProbs;                 // (B) → (B, 1) → (B, A)  −w (R − c) log π
        var loss = LossAggregator.Aggregate(perToken, x.Mask, agg);
        var truncatedRows = (weight < 1).unsqueeze(1).expand_as(m);               // (B) → (B, A)
        var metrics = Metrics(x, truncatedRows);
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    static void Check(PolicyLossInput x)
    {
        ArgumentNullException.ThrowIfNull(x);
        TorchRuntime.EnsureLoaded();
        LossAggregator.RequireSameShape2D(x.LogProbs, x.OldLogProbs, nameof(x.OldLogProbs));
        LossAggregator.RequireSameShape2D(x.LogProbs, x.Advantages, nameof(x.Advantages));
        LossAggregator.RequireSameShape2D(x.LogProbs, x.Mask, nameof(x.Mask));
    }

    /// <summary>Masked diagnostics over this batch's tokens, as doubles.</summary>
    static PolicyLossMetrics Metrics(PolicyLossInput x, Tensor? clippedTaken)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var m = x.Mask.to_type(ScalarType.Float32);                               // (B, A)
        var n = m.sum().clamp_min(1.0);                                           // scalar
        var logRatio = (x.LogProbs.detach() - x.OldLogProbs).to_type(ScalarType.Float32).clamp(-MaxLogRatio, MaxLogRatio);   // (B, A)
        var ratio = logRatio.exp();                                               // (B, A)
        var clipFraction = clippedTaken is null ? 0.0 : ((clippedTaken.to_type(ScalarType.Float32) * m).sum() / n).item<float>();
        var approxKl = ((0.5 * logRatio * logRatio * m).sum() / n).item<float>(); // ½(log π − log μ)², Schulman 2020 k2
        var ratioMean = ((ratio * m).sum() / n).item<float>();
        var ratioMax = m.sum().item<float>() > 0 ? ratio.masked_fill(m == 0, float.NegativeInfinity).max().item<float>() : 0f;
        return new PolicyLossMetrics(clipFraction, approxKl, ratioMean, ratioMax);
    }
}
