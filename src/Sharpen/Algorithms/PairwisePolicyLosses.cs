using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// Pairwise Proximal Policy Optimization (P3O; Wu et al. 2023, arXiv:2310.00212) as a pure function of tensors. Rows
/// come in consecutive pairs (2k, 2k+1): two completions of the same prompt sampled from the behaviour policy μ, with
/// (KL-regularised) rewards r₁, r₂. Only the reward difference enters, so the loss is invariant to shifting the rewards
/// of a prompt by a constant.
/// </summary>
public static class PairwisePolicyLosses
{
    /// <summary>Trajectory log-ratios are clamped to ±20 before exp so that ratios stay finite in float32.</summary>
    const double MaxLogRatio = 20.0;

    /// <summary>The pair's importance weight ρ₁ρ₂ is clamped to [1/10, 10] (the bound of the first author's code).</summary>
    public const double MaxPairWeight = 10.0;

    /// <summary>
    /// P3O with joint clipping (P3O-V2, arXiv:2310.00212 §4.2), per pair: ρᵢ = π_θ(yᵢ)/μ(yᵢ) (trajectory-level, summed over
    /// tokens), R = ρ₁/ρ₂, A = (r₁ − r₂)/2, and
    /// loss = sg(w/R) · −min(R·A, clip(R, 1 − ε, 1 + ε)·A), w = clamp(ρ₁ρ₂, 1/10, 10).
    /// Both samples are drawn from μ, so the importance weight of the pair is ρ₁ρ₂; the factor sg(w/R) makes the unclipped
    /// gradient the off-policy pairwise policy gradient −A·ρ₁ρ₂·∇(log π(y₁) − log π(y₂)) (Theorem 1 reweighted), and at θ = μ
    /// the loss is the on-policy −min(R·A, clip(R)·A) with R = 1. The clamp on w is the first author's code's; the paper's text
    /// could not be checked for it. The pair losses are summed and divided by <paramref name="totalPairs"/> (the pairs of the
    /// whole optimizer step), so micro-batches accumulate to the mean over the step.
    /// <see cref="PolicyLossMetrics.ClipFraction"/> is the share of pairs (as their tokens) where the clipped term was taken.
    /// </summary>
    /// <param name="x">Log-probs under π_θ and μ and the mask, <c>(B, A)</c> with B even; <see cref="PolicyLossInput.Advantages"/> is not read.</param>
    /// <param name="rewards">r per row, <c>(B)</c>, already including any KL penalty.</param>
    /// <param name="clip">ε (0.2 in PPO and P3O).</param>
    /// <param name="totalPairs">Pairs in the optimizer step (≥ B/2).</param>
    public static (Tensor Loss, PolicyLossMetrics Metrics) P3o(PolicyLossInput x, Tensor rewards, double clip, double totalPairs)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(rewards);
        TorchRuntime.EnsureLoaded();
        RequirePairs(x, "P3O", rewards, "rewards", nameof(rewards), totalPairs);
        if (!(clip >= 0 && clip < 1)) throw new ArgumentOutOfRangeException(nameof(clip), clip, "ε must be in [0, 1).");
        using var scope = NewDisposeScope();
        var m = x.Mask.to_type(x.LogProbs.dtype);                                           // (B, A)
        var seqLogRatio = ((x.LogProbs - x.OldLogProbs) * m).sum(1).view(-1, 2);            // (B) → (P, 2)  log π_θ(y)/μ(y)
        var r = rewards.detach().to_type(x.LogProbs.dtype).view(-1, 2);                     // (P, 2)
        var adv = (r.select(1, 0) - r.select(1, 1)) / 2;                                    // (P)  A = (r₁ − r₂)/2
        var logR = (seqLogRatio.select(1, 0) - seqLogRatio.select(1, 1)).clamp(-MaxLogRatio, MaxLogRatio);   // (P)
        var ratio = logR.exp();                                                             // (P)  R = ρ(y₁)/ρ(y₂)
        var unclipped = -adv * ratio;                                                       // (P)
        var clipped = -adv * ratio.clamp(1 - clip, 1 + clip);                               // (P)
        var logW = (seqLogRatio.select(1, 0) + seqLogRatio.select(1, 1)).clamp(-MaxLogRatio, MaxLogRatio);   // (P)  log ρ₁ρ₂
        var weight = (logW.exp().clamp(1 / MaxPairWeight, MaxPairWeight) / ratio).detach();   // (P)  sg(w/R)
        var perPair = weight * maximum(unclipped, clipped);                                 // sg(w/R)·−min(R·A, clip(R, 1−ε, 1+ε)·A)
        var loss = perPair.sum() / totalPairs;
        PolicyLossMetrics metrics;
        using (no_grad())
        {
            var taken = (clipped > unclipped).to_type(ScalarType.Float32);                  // (P)
            var tokens = m.sum(1).view(-1, 2).sum(1).to_type(ScalarType.Float32);           // (P)
            var (n, approxKl, ratioMean, ratioMax) = TokenRatioStats(x, m);
            metrics = new PolicyLossMetrics((taken * tokens).sum().item<float>() / n, approxKl, ratioMean, ratioMax);
        }
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// REFUEL as a policy loss over consecutive row pairs (Gao et al. 2024, arXiv:2410.04612): rows 2k and 2k+1 are two
    /// on-policy responses y, y′ at turn h from one shared prefix s_h, whose futures were played to the end with returns
    /// Q̂(s_h, y), Q̂(s_h, y′) (<paramref name="futureReturns"/>); per pair
    /// ( (1/η)·[ Σ ln π_θ(y)/π_t(y) − Σ ln π_θ(y′)/π_t(y′) ] − (Q̂(y) − Q̂(y′)) )², the sums over each response's masked tokens
    /// (<see cref="MultiTurnReturns.RefuelLoss"/>). The pair losses are summed and divided by <paramref name="totalPairs"/>
    /// (the pairs of the whole optimizer step), so micro-batches accumulate to the mean over the step.
    /// <see cref="PolicyLossMetrics.ClipFraction"/> is 0 (nothing is clipped).
    /// </summary>
    /// <param name="x">Log-probs under π_θ and π_t and the mask, <c>(B, A)</c> with B even; advantages are not read.</param>
    /// <param name="futureReturns">Q̂ per row, <c>(B)</c>.</param>
    /// <param name="eta">η &gt; 0.</param>
    /// <param name="totalPairs">Pairs in the optimizer step (≥ B/2).</param>
    public static (Tensor Loss, PolicyLossMetrics Metrics) Refuel(PolicyLossInput x, Tensor futureReturns, double eta, double totalPairs)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(futureReturns);
        TorchRuntime.EnsureLoaded();
        RequirePairs(x, "REFUEL", futureReturns, "future returns", nameof(futureReturns), totalPairs);
        using var scope = NewDisposeScope();
        var m = x.Mask.to_type(x.LogProbs.dtype);                                           // (B, A)
        var logp = (x.LogProbs * m).sum(1).view(-1, 2);                                     // (P, 2)  Σ ln π_θ
        var old = (x.OldLogProbs.detach() * m).sum(1).view(-1, 2);                          // (P, 2)  Σ ln π_t
        var q = futureReturns.detach().to_type(x.LogProbs.dtype).view(-1, 2);               // (P, 2)
        long pairs = logp.shape[0];
        var loss = MultiTurnReturns.RefuelLoss(logp.select(1, 0), old.select(1, 0), logp.select(1, 1), old.select(1, 1),
            q.select(1, 0), q.select(1, 1), eta) * (pairs / totalPairs);                   // mean over the micro-batch's pairs → share of the step
        PolicyLossMetrics metrics;
        using (no_grad())
        {
            var (_, approxKl, ratioMean, ratioMax) = TokenRatioStats(x, m);
            metrics = new PolicyLossMetrics(0, approxKl, ratioMean, ratioMax);
        }
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    // The checks both pairwise losses make: log-probs, old log-probs and mask of one (B, A) shape, B even, one number per
    // row, and a step that holds at least this micro-batch's pairs.
    static void RequirePairs(PolicyLossInput x, string method, Tensor perRow, string perRowText, string perRowName, double totalPairs)
    {
        LossAggregator.RequireSameShape2D(x.LogProbs, x.OldLogProbs, nameof(x.OldLogProbs));
        LossAggregator.RequireSameShape2D(x.LogProbs, x.Mask, nameof(x.Mask));
        long b = x.LogProbs.shape[0];
        if (b % 2 != 0) throw new ArgumentException($"{method} needs consecutive pairs of rows; got B = {b}.", nameof(x));
        if (perRow.dim() != 1 || perRow.shape[0] != b) throw new ArgumentException($"{perRowText} must be (B) with B = {b}.", perRowName);
        if (!(totalPairs >= b / 2) || totalPairs <= 0) throw new ArgumentOutOfRangeException(nameof(totalPairs), totalPairs, $"must be ≥ B/2 = {b / 2}.");
    }

    // Per-token diagnostics over the mask (call under no_grad): token count (at least 1), ½·mean(log ratio²), and the mean
    // and largest token ratio π_θ/π_old.
    static (double N, double ApproxKl, double RatioMean, double RatioMax) TokenRatioStats(PolicyLossInput x, Tensor m)
    {
        double n = Math.Max(1, m.sum().item<float>());
        var tokLog = (x.LogProbs.detach() - x.OldLogProbs).to_type(ScalarType.Float32).clamp(-MaxLogRatio, MaxLogRatio) * m;
        var tokRatio = tokLog.exp();
        return (n, (0.5 * tokLog * tokLog).sum().item<float>() / n, (tokRatio * m).sum().item<float>() / n,
            tokRatio.masked_fill(m == 0, float.NegativeInfinity).max().item<float>());
    }
}
