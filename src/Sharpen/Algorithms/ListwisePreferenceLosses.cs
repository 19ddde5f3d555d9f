using Sharpen.Torch;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sharpen.Algorithms;

/// <summary>
/// TPO (Liao et al. 2024, "TPO: Aligning Large Language Models with Multi-branch &amp; Multi-step Preference Trees",
/// arXiv:2410.12854) as pure functions of tensors: a <b>listwise</b> ranking loss over the K ranked responses of a prompt
/// (its "Preference List Ranking"), and the Adaptive Step Reward that turns per-step log-ratios into a response's reward.
/// Notation: B prompts, K responses per prompt, S steps per response, D hidden size.
/// Departures (also in docs/recipes.md, "Listwise and tree preferences"): the pair weights λ_ij are LiPO-λ's
/// (arXiv:2402.01878), which the paper adopts; the authors' released code instead averages −log σ over every ordered pair
/// and wraps the result in a second −log σ(β·), which we do not reproduce. The step weights follow the authors' code
/// (1 + cosine similarity of a step's mean hidden state with the same-index step of the top-ranked response).
/// </summary>
public static class ListwisePreferenceLosses
{
    /// <summary>
    /// TPO's Adaptive Step Reward without the β scale: the reward of response k is the weighted mean over its steps of the
    /// per-step log-ratio m_{k,s} = Σ_{t∈s} (log π_θ − log π_ref) / |s| with weights w_{k,s} = 1 + cos(e_{k,s}, e_{0,s}),
    /// e the step's mean hidden state and response 0 the top-ranked one: r_k = Σ_s w_{k,s} m_{k,s} / Σ_s w_{k,s}.
    /// Steps the top response lacks (mask 0 there) get w = 1 (cos = 0). With <paramref name="stepEmbeddings"/> null every
    /// weight is 1 (plain mean of the step log-ratios).
    /// </summary>
    /// <param name="stepLogRatios">Σ_t log π_θ − log π_ref over each step's tokens, <c>(B, K, S)</c>; carries the policy's grad.</param>
    /// <param name="stepLengths">Tokens per step, <c>(B, K, S)</c>; 0 marks a missing step.</param>
    /// <param name="stepEmbeddings">Mean hidden state of each step, <c>(B, K, S, D)</c>, or null; detached here.</param>
    /// <returns>r_k without β, <c>(B, K)</c>.</returns>
    public static Tensor AdaptiveStepRewards(Tensor stepLogRatios, Tensor stepLengths, Tensor? stepEmbeddings = null)
    {
        TorchRuntime.EnsureLoaded();
        if (stepLogRatios.dim() != 3) throw new ArgumentException($"stepLogRatios must be (B, K, S), got [{string.Join(", ", stepLogRatios.shape)}].", nameof(stepLogRatios));
        if (!stepLengths.shape.SequenceEqual(stepLogRatios.shape)) throw new ArgumentException("stepLengths must have the shape of stepLogRatios.", nameof(stepLengths));
        using var scope = NewDisposeScope();
        var dtype = stepLogRatios.dtype;
        var present = (stepLengths > 0).to_type(dtype);                                       // (B, K, S)
        var mean = stepLogRatios / stepLengths.to_type(dtype).clamp_min(1);                    // (B, K, S)  m_{k,s}
        Tensor w = present;                                                                    // (B, K, S)
        if (stepEmbeddings is not null)
        {
            if (stepEmbeddings.dim() != 4 || !stepEmbeddings.shape.Take(3).SequenceEqual(stepLogRatios.shape))
                throw new ArgumentException("stepEmbeddings must be (B, K, S, D) with the (B, K, S) of stepLogRatios.", nameof(stepEmbeddings));
            var e = stepEmbeddings.detach().to_type(dtype);                                    // (B, K, S, D)
            var top = e.narrow(1, 0, 1).expand_as(e);                                          // (B, K, S, D)  the top-ranked response's steps
            var cos = F.cosine_similarity(e, top, dim: 3);                                     // (B, K, S)
            var topPresent = present.narrow(1, 0, 1).expand_as(present);                       // (B, K, S)
            w = present * (1 + cos * topPresent);                                              // 1 + cos, or 1 where the top lacks the step
        }
        var r = (w * mean).sum(2) / w.sum(2).clamp_min(1e-12);                                 // (B, K)
        return r.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// LiPO-λ's pair weights λ_ij = |G_i − G_j|·|1/D(τ_i) − 1/D(τ_j)| with gains G = 2^ψ − 1 of the labels ψ and discounts
    /// D(τ) = log₂(1 + τ) of the rank τ (1 = first) of each response under the <b>model's</b> current rewards (ties: lower
    /// index first), <c>(B, K, K)</c>, no grad. Masked responses get weight 0.
    /// </summary>
    public static Tensor LambdaWeights(Tensor scores, Tensor predicted, Tensor? listMask = null)
    {
        TorchRuntime.EnsureLoaded();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var s = scores.to_type(ScalarType.Float64);                                           // (B, K)
        var p = predicted.detach().to_type(ScalarType.Float64);                               // (B, K)
        var mask = listMask is null ? ones_like(s) : listMask.to_type(ScalarType.Float64);    // (B, K)
        p = p.masked_fill(mask == 0, double.NegativeInfinity);
        var order = p.sort(1, descending: true, stable: true).Indices;                        // (B, K) response index by rank
        var rank = order.sort(1, descending: false, stable: true).Indices.to_type(ScalarType.Float64) + 1;   // (B, K) τ of each response
        var gain = pow(2.0, s) - 1;                                                           // (B, K)
        var invD = 1.0 / log2(1 + rank);                                                      // (B, K)
        var lam = (gain.unsqueeze(2) - gain.unsqueeze(1)).abs() * (invD.unsqueeze(2) - invD.unsqueeze(1)).abs();   // (B, K, K)
        lam = lam * mask.unsqueeze(2) * mask.unsqueeze(1);
        return lam.to_type(predicted.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="Tpo"/> on the list of two each pair is: rewards [log π_θ/π_ref(c), log π_θ/π_ref(r)] with labels ψ = [1, 0]
    /// (λ = (2¹ − 1)·(1 − 1/log₂ 3) = 0.3690702 whatever the order, so this is 0.3690702 × DPO's loss).
    /// </summary>
    public static (Tensor Loss, PreferenceMetrics Metrics) TpoPairs(PreferenceInput x, double beta = 0.1)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.ReferenceChosen is null || x.ReferenceRejected is null) throw new ArgumentException("TPO needs the reference's log-probs.", nameof(x));
        using var scope = NewDisposeScope();
        var dtype = x.PolicyChosen.dtype;
        var rewards = stack([x.PolicyChosen - x.ReferenceChosen.detach().to_type(dtype), x.PolicyRejected - x.ReferenceRejected.detach().to_type(dtype)], 1);   // (B, 2)
        var scores = stack([ones_like(x.PolicyChosen), zeros_like(x.PolicyChosen)], 1).detach();                                                              // (B, 2)
        var (loss, m) = Tpo(rewards, scores, null, beta);
        return (loss.MoveToOuterDisposeScope(), m);
    }

    /// <summary>
    /// TPO's Preference List Ranking loss: for every prompt and every ordered pair (i, j) with label ψ_i &gt; ψ_j,
    /// λ_ij·(−log σ(β·(r_i − r_j))), summed per prompt and divided by the number of such pairs, then averaged over prompts
    /// (LiPO-λ, arXiv:2402.01878 Eq. 7, as TPO Eq. 8 uses it). <paramref name="lambdaWeighted"/> false sets every λ_ij to 1
    /// (the plain listwise average of pairwise DPO terms). With K = 2 and unweighted this is DPO.
    /// Metrics: accuracy = share of the ψ-ordered pairs the rewards order the same way; margin = mean β(r_i − r_j) over them;
    /// chosen/rejected reward = mean β·r of the top- and bottom-ranked responses.
    /// </summary>
    /// <param name="rewards">r_k = log π_θ/π_ref of each response (summed or from <see cref="AdaptiveStepRewards"/>), <c>(B, K)</c>.</param>
    /// <param name="scores">Labels ψ (higher is better, e.g. the tree's value of each leaf), <c>(B, K)</c>; response 0 must be a top one for the metrics.</param>
    /// <param name="listMask">1 for a real response, 0 for padding, <c>(B, K)</c>; null = all real.</param>
    /// <param name="beta">β, the scale of the implicit rewards.</param>
    /// <param name="lambdaWeighted">Whether to weight pairs by LiPO-λ's λ_ij (else every λ_ij = 1).</param>
    public static (Tensor Loss, PreferenceMetrics Metrics) Tpo(Tensor rewards, Tensor scores, Tensor? listMask = null, double beta = 0.1,
        bool lambdaWeighted = true)
    {
        TorchRuntime.EnsureLoaded();
        if (!(beta > 0) || double.IsInfinity(beta)) throw new ArgumentOutOfRangeException(nameof(beta), beta, "beta must be a finite number > 0.");
        if (rewards.dim() != 2 || rewards.shape[1] < 2) throw new ArgumentException($"rewards must be (B, K) with K ≥ 2, got [{string.Join(", ", rewards.shape)}].", nameof(rewards));
        if (!scores.shape.SequenceEqual(rewards.shape)) throw new ArgumentException("scores must have the shape of rewards.", nameof(scores));
        if (listMask is not null && !listMask.shape.SequenceEqual(rewards.shape)) throw new ArgumentException("listMask must have the shape of rewards.", nameof(listMask));
        using var scope = NewDisposeScope();
        var dtype = rewards.dtype;
        var mask = listMask is null ? ones_like(rewards) : listMask.to_type(dtype);           // (B, K)
        var s = scores.to_type(dtype);                                                        // (B, K)
        var z = beta * (rewards.unsqueeze(2) - rewards.unsqueeze(1));                          // (B, K, K)  β(r_i − r_j)
        var better = ((s.unsqueeze(2) - s.unsqueeze(1)) > 0).to_type(dtype)
                     * mask.unsqueeze(2) * mask.unsqueeze(1);                                  // (B, K, K)  ψ_i > ψ_j
        var lam = lambdaWeighted ? LambdaWeights(scores, rewards, listMask) : ones_like(z);   // (B, K, K)
        var perPair = lam * F.softplus(-z) * better;                                           // (B, K, K)
        var pairs = better.sum([1, 2]);                                                        // (B)
        var loss = (perPair.sum([1, 2]) / pairs.clamp_min(1)).mean();                          // TPO Eq. 8 / LiPO-λ
        PreferenceMetrics metrics;
        using (no_grad())
        {
            var zd = z.detach();
            double n = better.sum().item<float>();
            double acc = n == 0 ? 0 : ((zd > 0).to_type(dtype) * better).sum().item<float>() / n;
            double margin = n == 0 ? 0 : (zd * better).sum().item<float>() / n;
            var r = rewards.detach() * beta;                                                   // (B, K)
            var sd = s.masked_fill(mask == 0, double.PositiveInfinity);
            var worst = sd.argmin(1, keepdim: true);                                           // (B, 1)
            metrics = new PreferenceMetrics(acc, margin, r.narrow(1, 0, 1).mean().item<float>(), r.gather(1, worst).mean().item<float>());
        }
        return (loss.MoveToOuterDisposeScope(), metrics);
    }
}
