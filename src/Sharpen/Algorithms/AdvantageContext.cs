using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// What an RL iteration knows when it estimates advantages; each registered estimator reads the fields it needs and
/// hands them to its pure function's typed input (<see cref="GroupOutcomeInput"/>, <see cref="RemaxInput"/>,
/// <see cref="BaselineInput"/>, <see cref="GaeInput"/>).
/// </summary>
/// <param name="Rewards">Sequence rewards <c>(B)</c>, after any normalisation and clipping.</param>
/// <param name="ResponseMask">Completion tokens <c>(B, A)</c>, right-padded.</param>
/// <param name="GroupSize">Samples per prompt G; rows of one prompt are adjacent.</param>
/// <param name="TokenKl">Per-token KL estimate to the reference <c>(B, A)</c> (k1, 0 at padding; zeros without a reference).</param>
/// <param name="Beta">The KL coefficient β of this iteration.</param>
/// <param name="KlInReward">Whether the algorithm subtracts β·KL from the reward (it has a reference and places KL there).</param>
/// <param name="Values">Critic values V(s_t) <c>(B, A)</c>, for estimators that need a critic; else null.</param>
/// <param name="GreedyRewards">Each row's greedy-completion reward <c>(B)</c>, for estimators that need a greedy baseline; else null.</param>
/// <param name="Baseline">The run's moving-average reward baseline (REINFORCE-style estimators read and update it).</param>
/// <param name="Gamma">GAE discount γ.</param>
/// <param name="Lambda">GAE λ.</param>
/// <param name="Scaling">What the group-relative estimators (GRPO, RLOO) divide the centred rewards by: the group's reward std,
/// the batch's, or nothing (<c>rl.scale_rewards</c>).</param>
/// <param name="TokenRewards">Multi-turn trajectories only: each turn's reward at the turn's last policy token <c>(B, A)</c>
/// (<see cref="MultiTurnReturns.PlaceTurnRewards"/>); <see cref="Rewards"/> is then each trajectory's return. Token-level
/// estimators (GAE) read it instead of putting the sequence reward on the last token; null for single-turn batches.</param>
/// <param name="GroupIds">Each row's group <c>(B)</c> int64 when groups come from an id column of the prompts (<c>rl.group_by</c>);
/// null = <paramref name="GroupSize"/> consecutive rows per group.</param>
/// <param name="OldLogProbs">The behaviour policy's log-probs of the sampled tokens <c>(B, A)</c> (f-DPG and trajectory balance read
/// log π(y)); null when the caller has none.</param>
/// <param name="Divergence">The f-divergence f-DPG minimises (<c>rl.divergence</c>).</param>
/// <param name="Target">f-DPG's target EBM: base × exp(r/β) or base × filter (<c>rl.target</c>).</param>
/// <param name="TurnStates">Multi-turn trajectories only: at each policy token, the id of the state its turn was taken from
/// (equal ids = the same turn index after the same last observation), −1 elsewhere <c>(B, A)</c> int64; GiGPO's step groups.</param>
public sealed record AdvantageContext(Tensor Rewards, Tensor ResponseMask, int GroupSize, Tensor TokenKl, double Beta, bool KlInReward,
    Tensor? Values, Tensor? GreedyRewards, MovingAverageBaseline Baseline, double Gamma, double Lambda, RewardScaling Scaling,
    Tensor? TokenRewards = null, Tensor? GroupIds = null, Tensor? OldLogProbs = null,
    FDivergence Divergence = FDivergence.JensenShannon, EbmTarget Target = EbmTarget.ExpReward, Tensor? TurnStates = null);

/// <summary>An estimator's result: token advantages <c>(B, A)</c>, the sequence-level advantage or reward the sequence
/// losses read <c>(B)</c>, and value targets <c>(B, A)</c> when it bootstraps from a critic.</summary>
public sealed record AdvantageEstimate(Tensor Advantages, Tensor SequenceAdvantages, Tensor? Returns = null);

/// <summary>An advantage estimator as a registry entry: its function and what the iteration must provide for it.</summary>
/// <param name="Estimate">Context → advantages.</param>
/// <param name="NeedsCritic">It reads <see cref="AdvantageContext.Values"/>: the trainer keeps and trains a critic.</param>
/// <param name="NeedsGreedyBaseline">It reads <see cref="AdvantageContext.GreedyRewards"/>: the trainer also generates greedily.</param>
/// <param name="GroupRelative">Its advantages are relative to the prompt's group (needs G ≥ 2; groups with equal rewards carry no signal,
/// which dynamic sampling and <c>skip_zero_advantage_groups</c> use).</param>
/// <param name="ReadsLogProbs">It reads <see cref="AdvantageContext.OldLogProbs"/> or the per-token KL built from them, so the
/// trainer must have the old log-probs before the update.</param>
/// <param name="PositiveGroupsCarrySignal">A group whose rewards are all equal and at least this value still carries signal
/// (OREAL behaviour-clones every positive, so its all-correct groups must not be skipped); null = no such group.</param>
public sealed record AdvantageEstimator(Func<AdvantageContext, AdvantageEstimate> Estimate, bool NeedsCritic = false,
    bool NeedsGreedyBaseline = false, bool GroupRelative = false, bool ReadsLogProbs = false, double? PositiveGroupsCarrySignal = null);
