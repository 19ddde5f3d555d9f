using TorchSharp;
using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// The Plackett–Luce ranking policy over a candidate set, as pure functions of tensors: scores s (B, N) define
/// π(σ) = Π_i exp s_{σ_i} / Σ_{j ∉ σ_{&lt;i}} exp s_j (Plackett 1975, Luce 1959); Neural PG-RANK (arXiv:2310.04407) trains
/// a retriever as this policy and PromptPG (arXiv:2209.14610) picks in-context examples with it (k of N, order kept).
/// A ranking may be partial (the top K of N): its probability is that of drawing those K first, in that order.
/// </summary>
public static class PlackettLuce
{
    /// <summary>log π(σ) = Σ_{i&lt;K} [ s_{σ_i} − log Σ_{j ∉ σ_{&lt;i}} exp s_j ].</summary>
    /// <param name="scores">(B, N) scores (logits); gradients flow into them.</param>
    /// <param name="ranking">(B, K) int64 candidate indices, distinct per row, K ≤ N.</param>
    /// <returns>(B) log-probabilities.</returns>
    public static Tensor LogProb(Tensor scores, Tensor ranking)
    {
        CheckShapes(scores, ranking);
        long b = scores.shape[0], n = scores.shape[1], k = ranking.shape[1];
        using var scope = NewDisposeScope();
        var picked = scores.gather(1, ranking);                                            // (B, K) s_{σ_i}
        var chosen = nn.functional.one_hot(ranking, n).to(ScalarType.Bool);                // (B, K, N)
        var earlier = chosen.to(ScalarType.Int32).cumsum(1).sub(chosen.to(ScalarType.Int32)).gt(0); // (B, K, N): j ∈ σ_{<i}
        var remaining = scores.unsqueeze(1).expand(b, k, n).masked_fill(earlier, double.NegativeInfinity);
        var logZ = remaining.logsumexp(2);                                                 // (B, K) log Σ_{j ∉ σ_<i} exp s_j
        return (picked - logZ).sum(1).MoveToOuterDisposeScope();
    }

    /// <summary>Draws rankings of the top <paramref name="k"/> without replacement: the indices of the k largest
    /// s_j + g_j with g_j ~ Gumbel(0, 1) independent, which is distributed as π (the Gumbel-top-k trick, Yellott 1977;
    /// Kool et al. 2019).</summary>
    /// <param name="scores">(B, N) scores; not differentiated.</param>
    /// <param name="k">Positions to draw, 1 ≤ k ≤ N.</param>
    /// <param name="samples">Rankings per row; the result is (B·samples, k), the samples of row b at rows b·samples … .</param>
    /// <param name="generator">Seeded generator (same seed, same rankings).</param>
    public static Tensor Sample(Tensor scores, int k, int samples, Generator? generator)
    {
        if (scores.dim() != 2) throw new ArgumentException($"scores must be (B, N), got [{string.Join(", ", scores.shape)}]", nameof(scores));
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(k, (int)scores.shape[1]);
        ArgumentOutOfRangeException.ThrowIfLessThan(samples, 1);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var s = scores.detach().to(ScalarType.Float64).repeat_interleave(samples, 0);      // (B·S, N)
        var u = rand(s.shape, ScalarType.Float64, generator: generator).clamp(1e-300, 1.0);
        var g = u.log().neg().log().neg();                                                  // Gumbel(0, 1)
        return (s + g).topk(k, dim: 1).indexes.MoveToOuterDisposeScope();
    }

    /// <summary>The highest-probability ranking of the top <paramref name="k"/>: candidates by descending score.</summary>
    public static Tensor Greedy(Tensor scores, int k)
    {
        using var _ = no_grad();
        return scores.detach().topk(k, dim: 1).indexes;
    }

    /// <summary>
    /// nDCG@K of each ranking: DCG = Σ_{i&lt;K} (2^{rel(σ_i)} − 1) / log₂(i + 2) over the ranked positions, divided by the
    /// DCG of the ideal ranking (relevances sorted descending, its top K); 0 for a row with no relevant candidate.
    /// Exponential gain, as in Järvelin and Kekäläinen's graded form used by MS MARCO-style evaluations.
    /// </summary>
    /// <param name="relevance">(B, N) graded relevance ≥ 0.</param>
    /// <param name="ranking">(B, K) candidate indices.</param>
    /// <returns>(B) values in [0, 1].</returns>
    public static Tensor Ndcg(Tensor relevance, Tensor ranking)
    {
        CheckShapes(relevance, ranking);
        var k = ranking.shape[1];
        using var scope = NewDisposeScope();
        var rel = relevance.to(ScalarType.Float64);
        var discount = arange(k, ScalarType.Float64).add(2).log2().reciprocal();          // (K) 1 / log₂(i + 2)
        var gain = rel.gather(1, ranking).exp2().sub(1);                                    // (B, K)
        var dcg = (gain * discount).sum(1);
        var ideal = rel.sort(1, descending: true).Values.narrow(1, 0, k).exp2().sub(1);     // (B, K)
        var idcg = (ideal * discount).sum(1);
        return where(idcg.gt(0), dcg / idcg.clamp_min(1e-300), zeros_like(dcg)).MoveToOuterDisposeScope();
    }

    /// <summary>Leave-one-out baseline of S rewards per row: b_s = (Σ_{s'} R_{s'} − R_s) / (S − 1).</summary>
    /// <param name="rewards">(B, S) with S ≥ 2.</param>
    public static Tensor LeaveOneOutBaseline(Tensor rewards)
    {
        if (rewards.dim() != 2 || rewards.shape[1] < 2)
            throw new ArgumentException($"rewards must be (B, S) with S ≥ 2 samples per row, got [{string.Join(", ", rewards.shape)}]", nameof(rewards));
        var s = rewards.shape[1];
        return (rewards.sum(1, keepdim: true) - rewards) / (s - 1);
    }

    /// <summary>REINFORCE with a baseline: L = −mean_{b,s} (R_{bs} − b_{bs}) · log π(σ_{bs}); its gradient is the
    /// unbiased policy gradient of the mean reward when b does not depend on σ_{bs}.</summary>
    /// <param name="logProbs">(B, S) log π of the sampled rankings (differentiable).</param>
    /// <param name="rewards">(B, S) rewards (e.g. <see cref="Ndcg"/>, or a frozen model's answer reward).</param>
    /// <param name="baseline">(B, S) or broadcastable: e.g. <see cref="LeaveOneOutBaseline"/>, or a moving average.</param>
    public static Tensor ReinforceLoss(Tensor logProbs, Tensor rewards, Tensor baseline)
    {
        if (!logProbs.shape.SequenceEqual(rewards.shape))
            throw new ArgumentException($"logProbs [{string.Join(", ", logProbs.shape)}] and rewards [{string.Join(", ", rewards.shape)}] differ");
        using var scope = NewDisposeScope();
        var advantage = (rewards - baseline).detach().to(logProbs.dtype);
        return (advantage * logProbs).mean().neg().MoveToOuterDisposeScope();
    }

    static void CheckShapes(Tensor scores, Tensor ranking)
    {
        if (scores.dim() != 2) throw new ArgumentException($"scores must be (B, N), got [{string.Join(", ", scores.shape)}]", nameof(scores));
        if (ranking.dim() != 2 || ranking.shape[0] != scores.shape[0] || ranking.shape[1] > scores.shape[1] || ranking.shape[1] < 1)
            throw new ArgumentException($"ranking must be (B, K) with B = {scores.shape[0]} and 1 ≤ K ≤ {scores.shape[1]}, got [{string.Join(", ", ranking.shape)}]", nameof(ranking));
        if (ranking.dtype != ScalarType.Int64) throw new ArgumentException($"ranking must be int64, got {ranking.dtype}", nameof(ranking));
    }
}
