using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// GFlowNet balance losses for fine-tuning a language model as a sampler with P(τ) ∝ R(τ) (Flow of Reasoning, Yu et al. 2024,
/// arXiv:2406.05673; trajectory balance, Malkin et al. 2022, arXiv:2201.13176; sub-trajectory balance, Madan et al. 2023,
/// arXiv:2209.12782). Generation is a tree (each state has one parent), so the backward policy is 1 and log P_F(τ) is the sum
/// of the policy's token log-probs; a step of reasoning is a run of tokens, and log P_F of a step is the sum over its tokens.
/// </summary>
public static class FlowBalance
{
    /// <summary>
    /// Trajectory balance: mean_b (log Z_b + log P_F(τ_b) − log R(τ_b))², arXiv:2201.13176 Eq. 14 with P_B = 1.
    /// <paramref name="logZ"/> <c>(B)</c> (a learned log Z per prompt, gathered per row) or a scalar; <paramref name="logPf"/> <c>(B)</c>
    /// sequence log-prob under the policy (requires grad); <paramref name="logReward"/> <c>(B)</c>.
    /// </summary>
    public static Tensor TrajectoryBalance(Tensor logZ, Tensor logPf, Tensor logReward)
    {
        TorchRuntime.EnsureLoaded();
        ArgumentNullException.ThrowIfNull(logZ);
        Vectors(logPf, logReward);
        if (logZ.dim() > 1 || (logZ.dim() == 1 && logZ.shape[0] != logPf.shape[0]))
            throw new ArgumentException($"log Z must be a scalar or (B) with B = {logPf.shape[0]}, got [{string.Join(", ", logZ.shape)}].", nameof(logZ));
        var residual = logZ + logPf - logReward.to_type(logPf.dtype);                             // (B)  δ = log Z + log P_F − log R
        return residual.pow(2).mean();
    }

    /// <summary>
    /// The log Z that minimises trajectory balance for each group of <paramref name="groupSize"/> consecutive rows (the samples of one
    /// prompt): mean over the group of log R − log P_F <c>(B)</c>, repeated per row (the "VarGrad" estimate; with it the TB loss is the
    /// group variance of log R − log P_F).
    /// </summary>
    public static Tensor OptimalLogZ(Tensor logPf, Tensor logReward, int groupSize)
    {
        Vectors(logPf, logReward);
        if (groupSize < 1 || logPf.shape[0] % groupSize != 0)
            throw new ArgumentException($"The batch of {logPf.shape[0]} rows is not a whole number of groups of {groupSize}.", nameof(groupSize));
        var d = (logReward.to_type(logPf.dtype) - logPf).detach();                                 // (B)
        return d.view(-1, groupSize).mean([1L], keepdim: true).expand(-1, groupSize).reshape(-1);  // (B/G, 1) → (B)
    }

    /// <summary>
    /// Advantages whose policy gradient is trajectory balance's with the group-optimal log Z (<see cref="OptimalLogZ"/>): for
    /// ½δ², ∇ = δ ∇log P_F with δ = log Z* + log P_F − log R, so a score-function loss −A·log π with
    /// A_b = (log R_b − log P_F,b) − mean_group(log R − log P_F) = −δ_b has the same gradient on-policy. Returns (A broadcast over
    /// <paramref name="mask"/> <c>(B, A)</c>, A <c>(B)</c>).
    /// </summary>
    public static (Tensor Advantages, Tensor SequenceAdvantages) TrajectoryBalanceAdvantages(Tensor logPf, Tensor logReward, Tensor mask, int groupSize)
    {
        ArgumentNullException.ThrowIfNull(mask);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var delta = OptimalLogZ(logPf, logReward, groupSize) + logPf - logReward.to_type(logPf.dtype);   // (B)  δ
        var a = (-delta).to_type(ScalarType.Float32);                                                // (B)
        var adv = a.unsqueeze(1) * mask.to_type(ScalarType.Float32);                                 // (B) → (B, A)
        scope.MoveToOuter(adv, a);
        return (adv, a);
    }

    /// <summary>
    /// Sub-trajectory balance (arXiv:2209.12782 Eq. 8 with P_B = 1) over the steps of each trajectory:
    /// Σ_{0≤i&lt;j≤n} λ^{j−i} (log F(s_i) + Σ_{k=i}^{j−1} log P_F(s_{k+1}|s_k) − log F(s_j))² / Σ_{0≤i&lt;j≤n} λ^{j−i}, averaged over rows.
    /// <paramref name="logFlow"/> <c>(B, S+1)</c>: log F(s_0 … s_S), where the caller puts log Z at s_0 and log R at each row's
    /// terminal state s_n; <paramref name="logPfSteps"/> <c>(B, S)</c>: each step's log-prob; <paramref name="stepMask"/> <c>(B, S)</c>:
    /// 1 for the row's n real steps (a prefix). Trajectory balance is the single pair (0, n).
    /// </summary>
    public static Tensor SubTrajectoryBalance(Tensor logFlow, Tensor logPfSteps, Tensor stepMask, double lambda)
    {
        TorchRuntime.EnsureLoaded();
        ArgumentNullException.ThrowIfNull(logFlow);
        ArgumentNullException.ThrowIfNull(logPfSteps);
        ArgumentNullException.ThrowIfNull(stepMask);
        if (logPfSteps.dim() != 2 || stepMask.dim() != 2 || logFlow.dim() != 2 || !logPfSteps.shape.SequenceEqual(stepMask.shape)
            || logFlow.shape[0] != logPfSteps.shape[0] || logFlow.shape[1] != logPfSteps.shape[1] + 1)
            throw new ArgumentException($"SubTB needs logFlow (B, S+1), logPfSteps (B, S), stepMask (B, S); got [{string.Join(", ", logFlow.shape)}], [{string.Join(", ", logPfSteps.shape)}], [{string.Join(", ", stepMask.shape)}].");
        if (!(lambda > 0)) throw new ArgumentOutOfRangeException(nameof(lambda), lambda, "λ must be positive.");
        long s = logPfSteps.shape[1];
        var m = stepMask.to_type(logPfSteps.dtype);                                                  // (B, S)
        var cum = cat([zeros(logPfSteps.shape[0], 1, dtype: logPfSteps.dtype, device: logPfSteps.device), (logPfSteps * m).cumsum(1)], 1);   // (B, S+1)  Σ_{k<j} log P_F
        var num = zeros(logPfSteps.shape[0], dtype: logPfSteps.dtype, device: logPfSteps.device);  // (B)
        var den = zeros_like(num);                                                                  // (B)
        var validState = cat([ones(logPfSteps.shape[0], 1, dtype: m.dtype, device: m.device), m], 1);   // (B, S+1)  s_j exists for j ≤ n
        for (long i = 0; i < s; i++)
            for (long j = i + 1; j <= s; j++)
            {
                double w = Math.Pow(lambda, j - i);
                var d = logFlow[.., i] + cum[.., j] - cum[.., i] - logFlow[.., j];                   // (B)
                var valid = validState[.., j];                                                      // (B)  both ends within the trajectory
                num = num + w * valid * d.pow(2);
                den = den + w * valid;
            }
        return (num / den.clamp_min(1e-12)).mean();
    }

    static void Vectors(Tensor a, Tensor b)
    {
        TorchRuntime.EnsureLoaded();
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.dim() != 1 || b.dim() != 1 || a.shape[0] != b.shape[0])
            throw new ArgumentException($"log P_F and log R must be (B) of one length, got [{string.Join(", ", a.shape)}] and [{string.Join(", ", b.shape)}].");
    }
}
