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
