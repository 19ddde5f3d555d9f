using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// The pure math of multi-turn RL over trajectories: per-turn returns, where a turn's reward sits among the tokens (the
/// RL trainer's multi-turn rows use it), SCoRe's shaped second-attempt reward and REFUEL's regression loss.
/// </summary>
public static class MultiTurnReturns
{
    /// <summary>Per-turn returns G_k = r_k + γ·G_{k+1} (reward-to-go over turns; γ = 1 gives the undiscounted future).</summary>
    /// <param name="turnRewards">r_k per turn, (turns).</param>
    /// <param name="gamma">Discount per turn, in [0, 1].</param>
    public static double[] RewardToGo(IReadOnlyList<double> turnRewards, double gamma = 1.0)
    {
        ArgumentNullException.ThrowIfNull(turnRewards);
        if (!(gamma >= 0 && gamma <= 1)) throw new ArgumentOutOfRangeException(nameof(gamma), $"gamma must be in [0, 1], got {gamma}");
        var g = new double[turnRewards.Count];
        double next = 0;
        for (int k = turnRewards.Count - 1; k >= 0; k--) g[k] = next = turnRewards[k] + gamma * next;
        return g;
    }

    /// <summary>
    /// Token-level rewards of a trajectory sequence: each turn's reward on the turn's last policy token, 0 elsewhere (as
    /// single-turn RL puts the outcome reward on the last completion token); GAE over the policy's tokens then carries it
    /// back across turns.
    /// </summary>
    /// <param name="length">T, the sequence length.</param>
    /// <param name="turnEnds">Index of each turn's last policy token (<c>TrajectorySequence.TurnEnds</c>), increasing.</param>
    /// <param name="turnRewards">Each turn's reward.</param>
    /// <returns>(T) rewards.</returns>
    public static float[] PlaceTurnRewards(int length, IReadOnlyList<int> turnEnds, IReadOnlyList<double> turnRewards)
    {
        ArgumentNullException.ThrowIfNull(turnEnds);
        ArgumentNullException.ThrowIfNull(turnRewards);
        if (turnEnds.Count != turnRewards.Count) throw new ArgumentException($"{turnEnds.Count} turn ends but {turnRewards.Count} rewards");
        var r = new float[length];
        for (int k = 0; k < turnEnds.Count; k++)
        {
            if (turnEnds[k] < 0 || turnEnds[k] >= length) throw new ArgumentOutOfRangeException(nameof(turnEnds), $"turn {k} ends at {turnEnds[k]}, outside [0, {length})");
            if (k > 0 && turnEnds[k] <= turnEnds[k - 1]) throw new ArgumentException("turn ends must increase", nameof(turnEnds));
            r[turnEnds[k]] = (float)turnRewards[k];
        }
        return r;
    }

    /// <summary>
    /// SCoRe stage II's reward of the second attempt (arXiv:2409.12917, §5.2): r̂(y₂) + α·(r̂(y₂) − r̂(y₁)), the bonus
    /// α·(r₂ − r₁) rewarding a flip from wrong to right and penalising right to wrong (α &gt; 1 in the paper, so the
    /// flip outweighs the reward itself).
    /// </summary>
    public static double ScoreShapedReward(double firstReward, double secondReward, double alpha) =>
        secondReward + alpha * (secondReward - firstReward);

    /// <summary>
    /// The turn rewards one of SCoRe's two stages trains on (arXiv:2409.12917, §5), from the environment's turn rewards and
    /// the first attempt's reward r₁ (the self-correction environment reports it in the first turn's info, since it scores
    /// only the second attempt). The second attempt's reward r₂ is the last turn's; a trajectory cut before its second
    /// attempt counts r₂ = 0.
    /// <list type="bullet">
    /// <item>Stage I maximises the second attempt's reward only: every turn 0 except the last, which keeps r₂.</item>
    /// <item>Stage II trains both attempts: the first turn gets r₁, the last r₂ + α·(r₂ − r₁) (<see cref="ScoreShapedReward"/>),
    /// turns between keep their own. With one turn only, that turn carries both: r₁ + α·(0 − r₁).</item>
    /// </list>
    /// </summary>
    /// <param name="turnRewards">The environment's reward of each turn, (turns ≥ 1).</param>
    /// <param name="firstReward">r₁, the verifier's reward of the first attempt.</param>
    /// <param name="stage">1 or 2.</param>
    /// <param name="alpha">α of stage II's bonus (not read in stage I).</param>
    public static double[] ScoreTurnRewards(IReadOnlyList<double> turnRewards, double firstReward, int stage, double alpha)
    {
        ArgumentNullException.ThrowIfNull(turnRewards);
        if (turnRewards.Count == 0) throw new ArgumentException("a trajectory with no turn has no attempt to reward", nameof(turnRewards));
        if (stage is not (1 or 2)) throw new ArgumentOutOfRangeException(nameof(stage), $"SCoRe has stages 1 and 2, got {stage}");
        int n = turnRewards.Count;
        var r = new double[n];
        if (stage == 1)
        {
            if (n > 1) r[n - 1] = turnRewards[n - 1];
            return r;
        }
        if (n == 1) { r[0] = firstReward + alpha * (0 - firstReward); return r; }
        for (int k = 1; k < n - 1; k++) r[k] = turnRewards[k];
        r[0] = firstReward;
        r[n - 1] = ScoreShapedReward(firstReward, turnRewards[n - 1], alpha);
        return r;
    }

    /// <summary>
    /// SCoRe's per-token KL weights (arXiv:2409.12917, Eq. 3 and 4): the KL to the reference of the first attempt's tokens
    /// weighs <paramref name="firstBeta"/> (β₂, large in stage I, so the first attempt stays the base model's), every later
    /// attempt's tokens <paramref name="laterBeta"/> (β₁); 0 off the policy's tokens.
    /// </summary>
    /// <param name="turnIds">Each completion position's turn index (0 = first attempt), <c>(B, A)</c>.</param>
    /// <param name="mask">1 at the policy's tokens, <c>(B, A)</c>.</param>
    /// <param name="firstBeta">β₂.</param>
    /// <param name="laterBeta">β₁.</param>
    /// <returns><c>(B, A)</c> weights, in the mask's dtype.</returns>
    public static Tensor TurnKlWeights(Tensor turnIds, Tensor mask, double firstBeta, double laterBeta)
    {
        ArgumentNullException.ThrowIfNull(turnIds);
        ArgumentNullException.ThrowIfNull(mask);
        if (!turnIds.shape.SequenceEqual(mask.shape)) throw new ArgumentException($"turn ids {string.Join("x", turnIds.shape)} and mask {string.Join("x", mask.shape)} differ in shape");
        if (!(firstBeta >= 0) || !(laterBeta >= 0)) throw new ArgumentOutOfRangeException(nameof(firstBeta), "KL weights must be non-negative");
        var m = mask.to_type(ScalarType.Float32);
        return where(turnIds.eq(0), full_like(m, firstBeta), full_like(m, laterBeta)) * m;
    }

    /// <summary>
    /// REFUEL's loss (Gao et al. 2024, arXiv:2410.04612): from a shared prefix s_h, two on-policy turn-h responses y and y′
    /// whose futures were rolled out to the end with returns Q̂(s_h, y), Q̂(s_h, y′); the policy's relative log-ratio
    /// regresses their difference:
    /// ℓ(θ) = ( (1/η)·[ ln π_θ(y|s)/π_t(y|s) − ln π_θ(y′|s)/π_t(y′|s) ] − (Q̂(s,y) − Q̂(s,y′)) )², averaged over pairs.
    /// </summary>
    /// <param name="logProbs">Σ ln π_θ over the tokens of y, (B).</param>
    /// <param name="oldLogProbs">Σ ln π_t (the policy that sampled) over y, (B).</param>
    /// <param name="otherLogProbs">Σ ln π_θ over y′, (B).</param>
    /// <param name="otherOldLogProbs">Σ ln π_t over y′, (B).</param>
    /// <param name="futureReturns">Q̂(s, y): the return from turn h to the end after y, (B).</param>
    /// <param name="otherFutureReturns">Q̂(s, y′), (B).</param>
    /// <param name="eta">η &gt; 0, the step size of the regression (1/η scales the log-ratios).</param>
    /// <returns>Scalar loss.</returns>
    public static Tensor RefuelLoss(Tensor logProbs, Tensor oldLogProbs, Tensor otherLogProbs, Tensor otherOldLogProbs,
        Tensor futureReturns, Tensor otherFutureReturns, double eta)
    {
        if (!(eta > 0) || double.IsInfinity(eta)) throw new ArgumentOutOfRangeException(nameof(eta), $"eta must be positive, got {eta}");
        var relative = (logProbs - oldLogProbs - (otherLogProbs - otherOldLogProbs)) / eta;   // (B)
        var target = futureReturns - otherFutureReturns;                                     // (B)
        return (relative - target).square().mean();
    }
}
