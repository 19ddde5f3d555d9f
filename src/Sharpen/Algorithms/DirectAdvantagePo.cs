using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// Step-level Direct Advantage Policy Optimization (Liu et al. 2024, "Improving Multi-Step Reasoning Abilities of Large
/// Language Models with Direct Advantage Policy Optimization", arXiv:2412.18279), called <c>direct_advantage_po</c> here so
/// that nobody confuses it with Yu et al.'s DAPO (decoupled clip and dynamic sampling, arXiv:2503.14476), which the RL
/// trainer calls <c>dapo</c>. A reasoning step is an action; a step critic V(s) predicts the probability that a solution
/// continued from the prefix s ends correct. The critic is trained first and alone, on Monte-Carlo step values (the share of
/// verified-correct rollouts from each prefix: the step labels of <c>data label-steps</c>, fitted by the PRM trainer); the
/// actor is then trained offline on the step advantages A(s_k, a_k) = V(s_{k+1}) − V(s_k) (<see cref="StepAdvantages"/>)
/// with a squared loss that makes the step's log-ratio to the data policy match the scaled advantage (<see cref="ActorLoss"/>).
/// Actor and critic are never trained together.
/// </summary>
public static class DirectAdvantagePo
{
    /// <summary>
    /// Monte-Carlo value of each prefix: V(s) = correct / rollouts (NaN-free: a prefix with no rollout gets 0 and should be
    /// masked out by the caller). Shapes <c>(N, S+1)</c> for S steps (prefix 0 is the prompt alone).
    /// </summary>
    public static Tensor MonteCarloValues(Tensor correct, Tensor rollouts)
    {
        TorchRuntime.EnsureLoaded();
        LossAggregator.RequireSameShape2D(correct, rollouts, nameof(rollouts));
        using var scope = NewDisposeScope();
        var n = rollouts.to_type(ScalarType.Float32);                             // (N, S+1)
        return (correct.to_type(ScalarType.Float32) / n.clamp_min(1)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Step advantages A_k = V(s_{k+1}) − V(s_k) for k = 0 … S−1 (arXiv:2412.18279 §3), 0 at padded steps.
    /// </summary>
    /// <param name="values">V(s_0) … V(s_S) per solution, <c>(N, S+1)</c>; after a solution's last step the terminal value
    /// (its verified outcome) should be repeated or masked.</param>
    /// <param name="stepMask">1 for a real step k, <c>(N, S)</c>.</param>
    public static Tensor StepAdvantages(Tensor values, Tensor stepMask)
    {
        TorchRuntime.EnsureLoaded();
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(stepMask);
        if (values.dim() != 2 || stepMask.dim() != 2 || values.shape[0] != stepMask.shape[0] || values.shape[1] != stepMask.shape[1] + 1)
            throw new ArgumentException($"values must be (N, S+1) and stepMask (N, S); got [{string.Join(", ", values.shape)}] and [{string.Join(", ", stepMask.shape)}].");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        long s = stepMask.shape[1];
        var next = values.narrow(1, 1, s);                                        // (N, S)  V(s_{k+1})
        var now = values.narrow(1, 0, s);                                         // (N, S)  V(s_k)
        return ((next - now) * stepMask.to_type(values.dtype)).MoveToOuterDisposeScope();   // A_k = V(s_{k+1}) − V(s_k)
    }

    /// <summary>
    /// Sum of token log-probs per step: <c>(N, A)</c> token values and each token's step index (−1 for tokens of no step,
    /// e.g. padding) → <c>(N, S)</c>, log π(a_k | s_k) = Σ_{t ∈ step k} log π(y_t | y_&lt;t). Differentiable in
    /// <paramref name="tokenLogProbs"/>.
    /// </summary>
    public static Tensor StepLogProbs(Tensor tokenLogProbs, Tensor tokenStep, int steps)
    {
        TorchRuntime.EnsureLoaded();
        LossAggregator.RequireSameShape2D(tokenLogProbs, tokenStep, nameof(tokenStep));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(steps);
        using var scope = NewDisposeScope();
        var idx = tokenStep.to_type(ScalarType.Int64);                            // (N, A)
        var valid = idx >= 0;                                                     // (N, A)
        var safe = where(valid, idx, full_like(idx, steps));                      // (N, A)  junk tokens go to an extra column
        var sums = zeros(tokenLogProbs.shape[0], steps + 1, dtype: tokenLogProbs.dtype, device: tokenLogProbs.device)
            .scatter_add(1, safe, tokenLogProbs * valid.to_type(tokenLogProbs.dtype));   // (N, S+1)
        return sums.narrow(1, 0, steps).MoveToOuterDisposeScope();                // (N, S)
    }

    /// <summary>
    /// The offline actor loss: the mean over real steps of (log π_θ(a_k|s_k)/π_ref(a_k|s_k) − A_k/β)², so that at the optimum
    /// β·log π_θ/π_ref = A, the KL-regularised optimal policy π ∝ π_ref·exp(A/β) restricted to the sampled steps
    /// (arXiv:2412.18279 §3). π_ref is the policy that produced the data (iterative DAPO refreshes it each round).
    /// </summary>
    /// <param name="stepLogProbs">log π_θ(a_k | s_k), <c>(N, S)</c>, requires grad.</param>
    /// <param name="referenceStepLogProbs">log π_ref(a_k | s_k), <c>(N, S)</c>.</param>
    /// <param name="advantages">A_k, <c>(N, S)</c>.</param>
    /// <param name="stepMask">1 for real steps, <c>(N, S)</c>.</param>
    /// <param name="beta">β &gt; 0, the KL strength.</param>
    /// <param name="count">Real steps of the whole optimizer step (for micro-batching); null = this call's.</param>
    public static Tensor ActorLoss(Tensor stepLogProbs, Tensor referenceStepLogProbs, Tensor advantages, Tensor stepMask, double beta, double? count = null)
    {
        TorchRuntime.EnsureLoaded();
        LossAggregator.RequireSameShape2D(stepLogProbs, referenceStepLogProbs, nameof(referenceStepLogProbs));
        LossAggregator.RequireSameShape2D(stepLogProbs, advantages, nameof(advantages));
        LossAggregator.RequireSameShape2D(stepLogProbs, stepMask, nameof(stepMask));
        if (!(beta > 0) || !double.IsFinite(beta)) throw new ArgumentOutOfRangeException(nameof(beta), beta, "must be a positive finite number");
        using var scope = NewDisposeScope();
        var m = stepMask.to_type(stepLogProbs.dtype);                             // (N, S)
        var logRatio = stepLogProbs - referenceStepLogProbs.detach();             // (N, S)  log π_θ/π_ref
        var err = logRatio - advantages.detach().to_type(stepLogProbs.dtype) / beta;   // (N, S)
        var n = count ?? Math.Max(1.0, m.sum().item<float>());
        if (!(n > 0)) throw new ArgumentOutOfRangeException(nameof(count), count, "must be positive");
        return ((err * err * m).sum() / n).MoveToOuterDisposeScope();
    }
}
