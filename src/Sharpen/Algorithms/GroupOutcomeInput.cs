using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// Inputs of the group-relative estimators (GRPO, Dr. GRPO, RLOO). Without <paramref name="GroupIds"/> the
/// <paramref name="GroupSize"/> samples of one prompt are consecutive rows, so B must be a multiple of G; with it, the rows
/// sharing an id form one group, of any size (at least 2 for RLOO), in any order.
/// </summary>
/// <param name="Rewards">Outcome reward per sequence, <c>(B)</c>.</param>
/// <param name="ResponseMask">1 at real response tokens, 0 at padding, <c>(B, A)</c>.</param>
/// <param name="GroupSize">G, the number of samples per prompt.</param>
/// <param name="GroupIds">Optional group of each row <c>(B)</c>, integers 0 … K−1 (see <see cref="AdvantageEstimators.DenseGroupIds"/>).</param>
public sealed record GroupOutcomeInput(Tensor Rewards, Tensor ResponseMask, int GroupSize, Tensor? GroupIds = null);

/// <summary>What the group-relative estimators divide the centred rewards r − mean_group by (<c>rl.scale_rewards</c>).</summary>
public enum RewardScaling
{
    /// <summary>The group's unbiased reward std (GRPO as published, Shao et al. 2024).</summary>
    Group,
    /// <summary>The unbiased std of every reward in the batch (TRL's <c>scale_rewards="batch"</c>; the group mean stays the baseline).</summary>
    Batch,
    /// <summary>Nothing: centring only (Dr. GRPO, Liu et al. 2025).</summary>
    None,
}
