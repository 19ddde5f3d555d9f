using Sharpen.Algorithms;
using Sharpen.Rewards;

namespace Sharpen.Training.Rl;

/// <summary>
/// Online RL settings (the <c>rl</c> section of a recipe). Each algorithm has a preset with its
/// paper's defaults (<see cref="For"/>); a recipe overrides fields on top of the preset.
/// </summary>
public sealed record RlOptions
{
    /// <summary>Algorithm name: ppo, ppo_max, pf_ppo, nlpo, grpo, dr_grpo, remax, rloo, reinforce, topr, p3o; with <c>env:</c> also score_stage1, score_stage2, refuel.</summary>
    public string Algorithm { get; init; } = "grpo";
    /// <summary>RL iterations (generate → score → estimate → update).</summary>
    public int Iterations { get; init; } = 100;
    /// <summary>Prompts sampled per iteration.</summary>
    public int PromptsPerIteration { get; init; } = 32;
    /// <summary>Completions per prompt (G). GRPO and RLOO need G ≥ 2.</summary>
    public int SamplesPerPrompt { get; init; } = 8;
    /// <summary>Sampling temperature of rollouts.</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Nucleus mass of rollouts.</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Most new tokens per completion.</summary>
    public int MaxNewTokens { get; init; } = 64;
    /// <summary>Actor learning rate (AdamW, constant after warm-up).</summary>
    public double LearningRate { get; init; } = 1e-6;
    /// <summary>Linear warm-up of the actor learning rate, in optimizer steps.</summary>
    public int WarmupSteps { get; init; }
    /// <summary>Passes over each iteration's rollouts (PPO's K epochs; GRPO's μ).</summary>
    public int Epochs { get; init; } = 1;
    /// <summary>Sequences per optimizer step (0 = all of the iteration's rollouts in one step).</summary>
    public int MiniBatchSize { get; init; }
    /// <summary>Sequences per forward/backward pass (memory bound; does not change the update).</summary>
    public int MicroBatchSize { get; init; } = 64;
    /// <summary>Gradient-norm clip (0 = off).</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>KL coefficient β toward the reference policy (0 = no reference pass).</summary>
    public double Beta { get; init; } = 0.04;
    /// <summary>KL estimator: k1, k2 or k3 (Schulman 2020).</summary>
    public string KlEstimator { get; init; } = "k3";
    /// <summary>When set, β adapts toward this KL per sequence (Ziegler et al. 2019).</summary>
    public double? TargetKl { get; init; }
    /// <summary>Horizon of the adaptive KL controller.</summary>
    public int KlHorizon { get; init; } = 10000;
    /// <summary>Lower clip ε of the ratio.</summary>
    public double ClipLow { get; init; } = 0.2;
    /// <summary>Upper clip ε of the ratio (greater than ClipLow = DAPO's clip-higher).</summary>
    public double ClipHigh { get; init; } = 0.2;
    /// <summary>Dual-clip constant c &gt; 1 for negative advantages (null = off).</summary>
    public double? DualClip { get; init; }
    /// <summary>How per-token losses become one number.</summary>
    public LossAggregation Aggregation { get; init; } = LossAggregation.SeqMeanTokenMean;
    /// <summary>Divide GRPO advantages by the group's reward std (false = Dr. GRPO). Older spelling of
    /// <see cref="ScaleRewards"/> = none; false with <c>scale_rewards: batch</c> is an error.</summary>
    public bool ScaleByStd { get; init; } = true;
    /// <summary>
    /// What the group-relative estimators divide centred rewards by: <c>group</c> (the group's reward std, GRPO's default),
    /// <c>batch</c> (the std of all rewards of the iteration's batch, TRL's <c>scale_rewards="batch"</c>; the group mean stays
    /// the baseline) or <c>none</c> (Dr. GRPO's centring only; RLOO's default). Read by grpo and rloo; dr_grpo never scales.
    /// </summary>
    public RewardScaling ScaleRewards { get; init; } = RewardScaling.Group;
    /// <summary>
    /// A field (JSONL column) of the prompt rows whose value names each prompt's group: every sample of every prompt sharing
    /// the value in an iteration's batch forms one group of the group-relative estimators (grpo, dr_grpo, rloo), instead of
    /// the G samples of each prompt. Null = groups of G consecutive samples of one prompt.
    /// </summary>
    public string? GroupBy { get; init; }
    /// <summary>
    /// A staged limit on new tokens (Vision-R1's progressive thinking suppression, Huang et al. 2025): iterations 1 … N of a
    /// stage <c>{until_iteration: N, max_new_tokens: M}</c> (after the previous stage's) sample at most M tokens; after the
    /// last stage, <see cref="MaxNewTokens"/>. Null or empty = <see cref="MaxNewTokens"/> throughout. Rollouts, the greedy
    /// baseline, DAPO's overlong shaping (L_max) and the truncation mask follow the current limit; evaluation and Dr. GRPO's
    /// constant length normaliser use <see cref="MaxNewTokens"/>.
    /// </summary>
    public IReadOnlyList<MaxNewTokensStage>? MaxNewTokensSchedule { get; init; }
    /// <summary>GAE discount γ (PPO).</summary>
    public double Gamma { get; init; } = 1.0;
    /// <summary>GAE λ (PPO).</summary>
    public double Lambda { get; init; } = 0.95;
    /// <summary>Value-clip range (PPO).</summary>
    public double ValueClip { get; init; } = 0.2;
    /// <summary>Critic learning rate (PPO).</summary>
    public double CriticLearningRate { get; init; } = 1e-5;
    /// <summary>Iterations in which only the critic learns (PPO critic warm-up).</summary>
    public int CriticWarmupIterations { get; init; }
    /// <summary>
    /// Train only on groups whose rewards differ (group estimators: GRPO, Dr. GRPO, RLOO). Their advantages
    /// are all zero otherwise, so the policy gradient is unchanged up to the normaliser, and the update
    /// costs only what carries signal (the idea behind DAPO's dynamic sampling, Yu et al. 2025).
    /// </summary>
    public bool SkipZeroAdvantageGroups { get; init; }
    /// <summary>
    /// OREAL (<c>rl.oreal_token_weights</c>): train a token-level outcome reward model each iteration on the rollouts' outcomes
    /// and multiply each token's policy-loss term by its weight (<see cref="OrealTokenModel"/>); on in the <c>oreal</c> preset.
    /// </summary>
    public bool OrealTokenWeights { get; init; }
    /// <summary>AdamW learning rate of OREAL's token-level reward head (<c>rl.oreal_token_rm_learning_rate</c>).</summary>
    public double OrealTokenRmLearningRate { get; init; } = 0.005;
    /// <summary>Full-batch steps of OREAL's token-level reward head per iteration (<c>rl.oreal_token_rm_steps</c>).</summary>
    public int OrealTokenRmSteps { get; init; } = 8;
    /// <summary>
    /// DAPO's dynamic sampling (Yu et al. 2025), for the group estimators: when a batch of prompts leaves fewer than
    /// <see cref="PromptsPerIteration"/> groups whose rewards differ, draw the next prompts and generate again, keeping
    /// only such groups, until the batch is full or <see cref="MaxSamplingRounds"/> rounds were drawn. Metrics
    /// (reward, accuracy, zero-advantage fraction) cover every generated group; the update sees the kept ones.
    /// </summary>
    public bool DynamicSampling { get; init; }
    /// <summary>
    /// DR-PO (Chang et al. 2024, arXiv:2404.08495): the fraction of each iteration's prompts whose rollouts start from a
    /// random prefix of the prompt's dataset response (a reset to an offline state) instead of from the prompt; the G samples
    /// of a reset prompt share its prefix and form its group. Needs prompts with a response (<c>data.train</c> rows with a
    /// completion, or task-generated worked solutions). 0 (default) = every rollout from the prompt.
    /// </summary>
    public double DatasetReset { get; init; }
    /// <summary>Most rounds of prompts drawn per iteration with <see cref="DynamicSampling"/>.</summary>
    public int MaxSamplingRounds { get; init; } = 4;
    /// <summary>
    /// DAPO's overlong reward shaping (Yu et al. 2025, "soft overlong punishment"), with L_max = <see cref="MaxNewTokens"/>
    /// and L_cache = this many tokens (0 = off): a completion of L tokens gets min(0, ((L_max − L_cache) − L) / L_cache) ×
    /// <see cref="OverlongPenalty"/> added to its reward, so nothing up to L_max − L_cache, falling linearly to
    /// −<see cref="OverlongPenalty"/> at L_max. Logged as <c>reward/overlong</c>.
    /// </summary>
    public int OverlongBuffer { get; init; }
    /// <summary>The punishment at L_max with <see cref="OverlongBuffer"/> (DAPO: 1).</summary>
    public double OverlongPenalty { get; init; } = 1.0;
    /// <summary>
    /// Leave completions cut off at <see cref="MaxNewTokens"/> (no end-of-sequence token) out of the policy loss (DAPO's
    /// overlong filtering; TRL's <c>mask_truncated_completions</c>). Their rewards still count in their group's baseline.
    /// </summary>
    public bool MaskTruncatedCompletions { get; init; }
    /// <summary>Entropy bonus: subtract this × the aggregated per-token policy entropy from the actor loss (0 = off).</summary>
    public double EntropyCoefficient { get; init; }
    /// <summary>Whiten advantages over the batch (PPO-max).</summary>
    public bool WhitenAdvantages { get; init; }
    /// <summary>Scale rewards by a running std estimate (PPO-max reward normalisation).</summary>
    public bool NormalizeRewards { get; init; }
    /// <summary>Clip rewards to ±this after normalisation (0 = off; PPO-max uses 5).</summary>
    public double RewardClip { get; init; }
    /// <summary>
    /// Where PPO's critic starts (Secrets of RLHF I, Zheng et al. 2023, arXiv:2307.04964, PPO-max): <c>{init: policy}</c> copies
    /// the policy with a zero value head (the ppo default), <c>{init: reward_model}</c> loads a reward-model checkpoint, its
    /// scalar head the value head (<c>path</c>, or the recipe's first <c>rewards</c> entry with <c>model</c>). With LoRA the
    /// critic is a value head on the policy's frozen base (no copy), whatever <c>init</c> says about a copy.
    /// </summary>
    public CriticOptions Critic { get; init; } = new();
    /// <summary>PPO-ptx (Ouyang et al. 2022; PPO-max): γ of the pretraining term: every actor step adds γ × the mean negative
    /// log-likelihood of <see cref="PtxBatchSize"/> rows of <see cref="PtxData"/> (their completion tokens) to the loss (0 = off).</summary>
    public double PtxCoefficient { get; init; }
    /// <summary>PPO-ptx: an SFT JSONL file ({"prompt", "completion"} rows) whose log-likelihood the actor keeps up.</summary>
    public string? PtxData { get; init; }
    /// <summary>PPO-ptx: SFT rows per actor step, taken in a seeded shuffled order.</summary>
    public int PtxBatchSize { get; init; } = 8;
    /// <summary>
    /// PF-PPO's policy filtration (Zhang et al. 2024, arXiv:2409.06957): which of each prompt's G samples, ranked by their
    /// reward, the PPO update sees. <c>none</c> = all; <c>best_worst</c> = the ⌈best_fraction·G⌉ best and the
    /// ⌈worst_fraction·G⌉ worst; <c>best_random</c> = the ⌈best_fraction·G⌉ best and as many as <c>worst_fraction</c> asks
    /// drawn at random from the rest. With a task, every row logs the R² of reward vs. the verifier's outcome on the samples
    /// each filter keeps (<c>pf/r2_*</c>), measured on the iteration's rollouts before the update.
    /// </summary>
    public PolicyFilter Filter { get; init; } = PolicyFilter.None;
    /// <summary>PF-PPO: share of each prompt's samples kept from the top (by reward).</summary>
    public double FilterBestFraction { get; init; } = 0.25;
    /// <summary>PF-PPO: share kept from the bottom (<c>best_worst</c>) or at random from the rest (<c>best_random</c>).</summary>
    public double FilterWorstFraction { get; init; } = 0.25;
    /// <summary>
    /// NLPO's masked action space (Ramamurthy et al. 2022, arXiv:2210.01241, RL4LMs): a delayed copy of the policy (the
    /// masking policy) keeps, at each token, only its top-p set (this mass); the policy samples from, and its log-probs in
    /// the loss are taken over, its logits with the other tokens masked. 1 = off.
    /// </summary>
    public double ActionMaskTopP { get; init; } = 1.0;
    /// <summary>NLPO's μ: the masking policy is refreshed with the policy's weights every this many iterations.</summary>
    public int ActionMaskUpdateEvery { get; init; } = 20;
    /// <summary>Decay of the moving-average baseline (REINFORCE, TOPR).</summary>
    public double BaselineDecay { get; init; } = 0.9;
    /// <summary>Evaluate greedy accuracy every N iterations (0 = only at the end).</summary>
    public int EvalEvery { get; init; } = 10;
    /// <summary>Held-out problems per evaluation.</summary>
    public int EvalProblems { get; init; } = 200;
    /// <summary>Checkpoint every N iterations (0 = only the final model).</summary>
    public int CheckpointEvery { get; init; }
    /// <summary>Checkpoints kept.</summary>
    public int KeepCheckpoints { get; init; } = 2;
    /// <summary>Seed of prompt order and sampling.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>SCoRe (score_stage1, score_stage2): β₂, the KL weight of the first attempt's tokens (<see cref="Beta"/> = β₁
    /// weighs the later attempts'). Null = <see cref="Beta"/>. Stage I's preset: 0.1 against β₁ = 0.01 (the paper's
    /// β₂ = 10·β₁), so the first attempt stays the base model's; stage II's: null (β₁ on both attempts, the paper's Eq. 4).</summary>
    public double? FirstTurnBeta { get; init; }
    /// <summary>SCoRe stage II: α of the second attempt's shaped reward r₂ + α·(r₂ − r₁) (the paper: α &gt; 1; preset 10).</summary>
    public double ShapingAlpha { get; init; } = 10.0;
    /// <summary>REFUEL: η of the regression, (1/η)·[relative log-ratio] − [relative future return] (preset 1).</summary>
    public double Eta { get; init; } = 1.0;
    /// <summary>f-DPG: the f-divergence D_f(π_θ ‖ p) minimised (<c>reverse_kl | forward_kl | total_variation | jensen_shannon</c>;
    /// preset jensen_shannon, the paper's recommended balance, arXiv:2302.08215).</summary>
    public FDivergence Divergence { get; init; } = FDivergence.JensenShannon;
    /// <summary>f-DPG: the target EBM P(y) = a(y)·φ(y) over the reference a: <c>exp_reward</c> φ = exp(r/β), or <c>filter</c> φ = 1[r &gt; 0].</summary>
    public EbmTarget Target { get; init; } = EbmTarget.ExpReward;
    /// <summary>FGAIF fine-grained rewards (arXiv:2404.05046): <c>sentence</c> or <c>step</c> = the reward functions score each segment
    /// of a completion and each score is placed on the segment's last token (dense rewards for GAE; needs a critic, e.g. ppo);
    /// null = one reward per completion.</summary>
    public SegmentUnit? FineGrained { get; init; }
    /// <summary>PCPG pseudo-convolution (arXiv:1811.01874) of the fine-grained token rewards: half-width w of a uniform window of
    /// 2w+1 tokens (0 = off).</summary>
    public int SmoothWindow { get; init; }
    /// <summary>Stop after the iteration during which this much training time (evaluation excluded) has passed (0 = no limit; for fixed-budget comparisons).</summary>
    public double MaxSeconds { get; init; }

    /// <summary>The limit on new tokens of 0-based iteration <paramref name="iteration"/> under <see cref="MaxNewTokensSchedule"/>.</summary>
    public int MaxNewTokensAt(int iteration)
    {
        foreach (var s in MaxNewTokensSchedule ?? [])
            if (iteration + 1 <= s.UntilIteration) return s.MaxNewTokens;
        return MaxNewTokens;
    }

    /// <summary>The scale the estimators use: <see cref="ScaleRewards"/>, or none when <see cref="ScaleByStd"/> is false.</summary>
    public RewardScaling EffectiveScaleRewards => ScaleByStd ? ScaleRewards : RewardScaling.None;

    /// <summary>The preset of an algorithm, with its paper's defaults.</summary>
    public static RlOptions For(string algorithm) => RlAlgorithms.Get(algorithm).Defaults();

    /// <summary>GRPO (Shao et al. 2024, DeepSeekMath): group-normalised outcome advantages, clipped ratio, KL k3 in the loss, β = 0.04.</summary>
    public static RlOptions Grpo() => new() { Algorithm = "grpo", Beta = 0.04, KlEstimator = "k3", Aggregation = LossAggregation.SeqMeanTokenMean };
    /// <summary>GiGPO (Feng et al. 2025, arXiv:2505.10978): GRPO's episode advantage plus a step advantage, each turn's
    /// return-to-go relative to the other turns of the batch taken from the same state (multi-turn environments only); no KL,
    /// each trajectory's policy tokens summed.</summary>
    public static RlOptions Gigpo() => Grpo() with { Algorithm = "gigpo", Beta = 0.0, Aggregation = LossAggregation.SeqMeanTokenSum };
    /// <summary>Dr. GRPO (Liu et al. 2025): no std scaling, constant length normaliser (sum over tokens / max tokens), no KL.</summary>
    public static RlOptions DrGrpo() => Grpo() with { Algorithm = "dr_grpo", ScaleByStd = false, ScaleRewards = RewardScaling.None, Beta = 0.0, Aggregation = LossAggregation.SeqMeanTokenSumNorm };
    /// <summary>PPO with a critic, GAE(γ=1, λ=0.95), per-token KL penalty in the reward, value clipping, advantage whitening, 4 epochs.</summary>
    public static RlOptions Ppo() => new()
    {
        Algorithm = "ppo", Epochs = 4, Beta = 0.05, KlEstimator = "k1", Gamma = 1.0, Lambda = 0.95, ValueClip = 0.2,
        WhitenAdvantages = true, Aggregation = LossAggregation.TokenMean, SamplesPerPrompt = 1, PromptsPerIteration = 64,
    };
    /// <summary>
    /// PPO-max (Zheng et al. 2023, Secrets of RLHF I, arXiv:2307.04964): PPO with reward normalisation and clipping (δ = 5),
    /// advantage whitening over the whole batch, the per-token KL penalty in the reward, value clipping, global gradient
    /// clipping, the critic initialised from the reward model, and a short critic warm-up. PPO-ptx is off until a recipe
    /// names <c>ptx_data</c> and a <c>ptx_coefficient</c>.
    /// </summary>
    public static RlOptions PpoMax() => Ppo() with
    {
        Algorithm = "ppo_max", NormalizeRewards = true, RewardClip = 5.0, WhitenAdvantages = true, MaxGradNorm = 1.0,
        Critic = new CriticOptions { Init = CriticInit.RewardModel }, CriticWarmupIterations = 1,
    };
    /// <summary>PF-PPO (Zhang et al. 2024, arXiv:2409.06957): PPO over G = 4 samples per prompt of which the update sees the
    /// best and a random other one (BR, the paper's pick for code); R² of reward vs. outcome per filter logged.</summary>
    public static RlOptions PfPpo() => Ppo() with
    {
        Algorithm = "pf_ppo", SamplesPerPrompt = 4, PromptsPerIteration = 16, Filter = PolicyFilter.BestRandom, FilterBestFraction = 0.25, FilterWorstFraction = 0.25,
    };
    /// <summary>NLPO (Ramamurthy et al. 2022, arXiv:2210.01241): PPO whose action space at each token is the top-p (0.9) set
    /// of a masking policy, a copy of the policy refreshed every μ = 20 iterations (RL4LMs' defaults).</summary>
    public static RlOptions Nlpo() => Ppo() with { Algorithm = "nlpo", ActionMaskTopP = 0.9, ActionMaskUpdateEvery = 20 };
    /// <summary>ReMax (Li et al. 2023): REINFORCE with the greedy completion's reward as baseline; no critic; one epoch.</summary>
    public static RlOptions Remax() => new() { Algorithm = "remax", SamplesPerPrompt = 1, PromptsPerIteration = 64, Beta = 0.0, KlEstimator = "k1", Aggregation = LossAggregation.SeqMeanTokenSum };
    /// <summary>RLOO (Ahmadian et al. 2024): leave-one-out baseline over the G samples of a prompt; sequence-level KL in the reward.</summary>
    public static RlOptions Rloo() => new() { Algorithm = "rloo", SamplesPerPrompt = 4, ScaleRewards = RewardScaling.None, Beta = 0.0, KlEstimator = "k1", Aggregation = LossAggregation.SeqMeanTokenSum };
    /// <summary>REINFORCE with a moving-average baseline.</summary>
    public static RlOptions Reinforce() => new() { Algorithm = "reinforce", SamplesPerPrompt = 1, PromptsPerIteration = 64, Beta = 0.0, KlEstimator = "k1", Aggregation = LossAggregation.SeqMeanTokenSum };
    /// <summary>TOPR (Le Roux et al. 2025): tapered off-policy REINFORCE, no KL.</summary>
    public static RlOptions Topr() => new() { Algorithm = "topr", SamplesPerPrompt = 4, Beta = 0.0, Aggregation = LossAggregation.SeqMeanTokenSum };

    /// <summary>
    /// P3O (Wu et al. 2023, arXiv:2310.00212): two samples per prompt, the pairwise policy gradient on the trajectory-level
    /// ratio with joint clipping (P3O-V2, ε = 0.2), the KL to the reference subtracted from each sample's reward (k1 summed
    /// over the sequence, the paper's KL-regularised reward). β = 0.1 and two epochs per batch are Sharpen's choices (the
    /// paper sweeps β for its KL-reward frontier).
    /// </summary>
    public static RlOptions P3o() => new()
    {
        Algorithm = "p3o", SamplesPerPrompt = 2, Beta = 0.1, KlEstimator = "k1", ClipLow = 0.2, ClipHigh = 0.2, Epochs = 2,
        Aggregation = LossAggregation.SeqMeanTokenSum,
    };

    /// <summary>
    /// SCoRe stage I (Kumar et al. 2024, arXiv:2409.12917, §5.1) on two-attempt trajectories: the reward is the second
    /// attempt's only, the KL to the reference weighs β₂ = 0.1 on the first attempt's tokens (keeping it the base model's,
    /// against collapse) and β₁ = 0.01 on the second's; policy gradient with the leave-one-out baseline of the G
    /// trajectories of a problem (the paper: REINFORCE), KL in the loss (k1 summed per sequence).
    /// </summary>
    public static RlOptions ScoreStage1() => new()
    {
        Algorithm = "score_stage1", SamplesPerPrompt = 4, Beta = 0.01, FirstTurnBeta = 0.1, KlEstimator = "k1",
        ScaleRewards = RewardScaling.None, Aggregation = LossAggregation.SeqMeanTokenSum,
    };

    /// <summary>
    /// SCoRe stage II (§5.2): both attempts rewarded (r₁ on the first, r₂ + α·(r₂ − r₁) on the second, α = 10), β₁ = 0.01 on
    /// every attempt's tokens; run from stage I's checkpoint.
    /// </summary>
    public static RlOptions ScoreStage2() => ScoreStage1() with { Algorithm = "score_stage2", FirstTurnBeta = null, ShapingAlpha = 10.0 };

    /// <summary>
    /// REFUEL (Gao et al. 2024, arXiv:2410.04612): per episode seed, a trajectory of the current policy; at a turn h drawn
    /// uniformly two on-policy responses from the shared prefix, each played to the end; the squared regression of their
    /// relative log-ratio (÷η) on their relative future return. Two samples per prefix, η = 1, no reference model, 2 epochs
    /// (the regression takes several steps on one batch).
    /// </summary>
    public static RlOptions Refuel() => new()
    {
        Algorithm = "refuel", SamplesPerPrompt = 2, Beta = 0.0, Eta = 1.0, Epochs = 2, Aggregation = LossAggregation.SeqMeanTokenSum,
    };

    /// <summary>
    /// OREAL (Lyu et al. 2025, arXiv:2502.06781): binary outcome rewards; positives behaviour-cloned with weight 1, negatives
    /// with their leave-one-out reward × 0.5 (<see cref="Algorithms.AdvantageEstimators.Oreal"/>), on-policy (one epoch, no
    /// ratio clipping), KL to the reference in the loss with β = 0.01 (k3), the loss averaged over every token of the batch.
    /// The paper samples 16 per prompt; 8 here for CPU budgets. Each token's loss term is weighted by the token-level outcome
    /// reward model's weight (<see cref="OrealTokenModel"/>, <see cref="Algorithms.OrealTokenWeights"/>); <c>oreal_token_weights: false</c> turns it off.
    /// </summary>
    public static RlOptions Oreal() => new()
    {
        Algorithm = "oreal", SamplesPerPrompt = 8, Beta = 0.01, KlEstimator = "k3", Aggregation = LossAggregation.TokenMean,
        OrealTokenWeights = true,
    };

    /// <summary>
    /// f-DPG (Go et al. 2023, arXiv:2302.08215): policy gradient with the pseudo-reward −f′(π_θ/p) towards p ∝ reference × exp(r/β)
    /// (or × a filter), Jensen–Shannon by default; group-mean baseline over 4 samples; β = 0.1 (the target's temperature, which also
    /// loads the reference); one epoch (on-policy: log π of the pseudo-reward is the sampler's).
    /// </summary>
    public static RlOptions Fdpg() => new()
    {
        Algorithm = "fdpg", SamplesPerPrompt = 4, Beta = 0.1, KlEstimator = "k1", ScaleRewards = RewardScaling.None,
        Aggregation = LossAggregation.SeqMeanTokenSum,
    };

    /// <summary>
    /// Flow of Reasoning (Yu et al. 2024, arXiv:2406.05673): GFlowNet trajectory balance so that π(y) ∝ R(y) = exp(r(y)/β), with the
    /// log Z of each prompt set to its TB optimum over the prompt's samples (in place of a learned log Z, see docs); 8 samples per
    /// prompt, β = 0.2, no reference, one epoch.
    /// </summary>
    public static RlOptions FlowOfReasoning() => new()
    {
        Algorithm = "flow_of_reasoning", SamplesPerPrompt = 8, Beta = 0.2, KlEstimator = "k1", ScaleRewards = RewardScaling.None,
        Aggregation = LossAggregation.SeqMeanTokenSum,
    };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field (recipe key).</summary>
    public RlOptions Validate()
    {
        RlAlgorithms.Get(Algorithm);
        KlEstimators.Get(KlEstimator);
        static void Positive(double v, string key) => OptionChecks.Positive("rl", v, key);
        static void NonNegative(double v, string key) => OptionChecks.NonNegative("rl", v, key);
        Positive(Iterations, "iterations"); Positive(PromptsPerIteration, "prompts_per_iteration"); Positive(SamplesPerPrompt, "samples_per_prompt");
        Positive(MaxNewTokens, "max_new_tokens"); Positive(LearningRate, "learning_rate"); Positive(Epochs, "epochs");
        if (!(DatasetReset >= 0 && DatasetReset <= 1)) throw new ArgumentException($"rl.dataset_reset must be a fraction in [0, 1], got {DatasetReset}");
        NonNegative(MiniBatchSize, "mini_batch_size"); Positive(MicroBatchSize, "micro_batch_size"); NonNegative(MaxGradNorm, "max_grad_norm");
        NonNegative(Beta, "beta"); NonNegative(EntropyCoefficient, "entropy_coefficient"); NonNegative(ClipLow, "clip_low"); NonNegative(ClipHigh, "clip_high"); NonNegative(EvalEvery, "eval_every");
        NonNegative(CheckpointEvery, "checkpoint_every"); Positive(KeepCheckpoints, "keep_checkpoints"); Positive(MaxSamplingRounds, "max_sampling_rounds"); NonNegative(Temperature, "temperature");
        if (DualClip is { } c && c <= 1) throw new ArgumentException($"rl.dual_clip must be > 1, got {c}");
        var spec = RlAlgorithms.Get(Algorithm);
        if (spec.Estimator.GroupRelative && SamplesPerPrompt < 2)
            throw new ArgumentException($"rl.samples_per_prompt must be ≥ 2 for {Algorithm}, got {SamplesPerPrompt}");
        if (spec.PolicyLoss.RowsPerUnit == 2)
        {
            if (SamplesPerPrompt != 2) throw new ArgumentException($"rl.samples_per_prompt must be 2 for {Algorithm} (it compares two samples per prompt), got {SamplesPerPrompt}");
            if (MiniBatchSize % 2 != 0) throw new ArgumentException($"rl.mini_batch_size must be even for {Algorithm} (whole pairs), got {MiniBatchSize}");
            if (MicroBatchSize % 2 != 0) throw new ArgumentException($"rl.micro_batch_size must be even for {Algorithm} (whole pairs), got {MicroBatchSize}");
            if (ClipLow >= 1) throw new ArgumentException($"rl.clip_low must be < 1 for {Algorithm}, got {ClipLow}");
        }
        if (TargetKl is { } t && !(t > 0)) throw new ArgumentException($"rl.target_kl must be positive, got {t}");
        NonNegative(OverlongBuffer, "overlong_buffer"); NonNegative(OverlongPenalty, "overlong_penalty");
        if (OverlongBuffer > MaxNewTokens) throw new ArgumentException($"rl.overlong_buffer ({OverlongBuffer}) must not exceed rl.max_new_tokens ({MaxNewTokens})");
        if (!Enum.IsDefined(ScaleRewards)) throw new ArgumentException($"rl.scale_rewards must be group, batch or none, got {ScaleRewards}");
        if (Algorithm == "dr_grpo" && ScaleRewards != RewardScaling.None)
            throw new ArgumentException($"rl.scale_rewards must be none for dr_grpo (it never scales), got {ScaleRewards.ToString().ToLowerInvariant()}; use grpo to scale");
        if (!ScaleByStd && ScaleRewards == RewardScaling.Batch) throw new ArgumentException("rl.scale_by_std: false (no scaling) contradicts rl.scale_rewards: batch; drop scale_by_std");
        if (GroupBy is not null)
        {
            if (string.IsNullOrWhiteSpace(GroupBy)) throw new ArgumentException("rl.group_by must name a field of the prompt rows, got an empty string");
            if (!spec.Estimator.GroupRelative) throw new ArgumentException($"rl.group_by needs a group-relative algorithm (grpo, dr_grpo, rloo), got {Algorithm}");
            if (DynamicSampling || SkipZeroAdvantageGroups)
                throw new ArgumentException("rl.group_by does not work with rl.dynamic_sampling or rl.skip_zero_advantage_groups (they filter groups of G consecutive samples)");
        }
        if (MaxNewTokensSchedule is { } stages)
            for (int i = 0, last = 0; i < stages.Count; i++)
            {
                var st = stages[i] ?? throw new ArgumentException($"rl.max_new_tokens_schedule[{i}] is empty; expected {{until_iteration: N, max_new_tokens: M}}");
                if (st.UntilIteration <= last)
                    throw new ArgumentException($"rl.max_new_tokens_schedule[{i}].until_iteration must be greater than {last} (stages in increasing order), got {st.UntilIteration}");
                if (st.MaxNewTokens <= 0) throw new ArgumentException($"rl.max_new_tokens_schedule[{i}].max_new_tokens must be positive, got {st.MaxNewTokens}");
                if (OverlongBuffer > st.MaxNewTokens)
                    throw new ArgumentException($"rl.overlong_buffer ({OverlongBuffer}) must not exceed rl.max_new_tokens_schedule[{i}].max_new_tokens ({st.MaxNewTokens})");
                last = st.UntilIteration;
            }
        if (FirstTurnBeta is { } b2) NonNegative(b2, "first_turn_beta");
        if (!(ShapingAlpha >= 0) || double.IsInfinity(ShapingAlpha)) throw new ArgumentException($"rl.shaping_alpha must be a finite number ≥ 0, got {ShapingAlpha}");
        if (!(Eta > 0) || double.IsInfinity(Eta)) throw new ArgumentException($"rl.eta must be a finite positive number, got {Eta}");
        if (Algorithm == "fdpg" && !(Beta > 0))
            throw new ArgumentException($"rl.beta must be > 0 for fdpg (the target is the reference times exp(r/β) or a filter; β > 0 loads the reference), got {Beta}");
        if (Algorithm == "flow_of_reasoning" && !(Beta > 0))
            throw new ArgumentException($"rl.beta must be > 0 for flow_of_reasoning (the reward temperature of R = exp(r/β)), got {Beta}");
        if (Algorithm == "flow_of_reasoning" && SamplesPerPrompt < 2)
            throw new ArgumentException($"rl.samples_per_prompt must be ≥ 2 for flow_of_reasoning (log Z is set from a prompt's samples), got {SamplesPerPrompt}");
        if (!Enum.IsDefined(Divergence)) throw new ArgumentException($"rl.divergence must be reverse_kl, forward_kl, total_variation or jensen_shannon, got {Divergence}");
        NonNegative(SmoothWindow, "smooth_window");
        if (FineGrained is { } unit)
        {
            if (!Enum.IsDefined(unit)) throw new ArgumentException($"rl.fine_grained must be sentence or step, got {unit}");
            if (!spec.Estimator.NeedsCritic) throw new ArgumentException($"rl.fine_grained needs a token-level estimator with a critic (ppo), got {Algorithm}");
            if (spec.EnvironmentOnly) throw new ArgumentException($"rl.fine_grained does not work with {Algorithm} (environment episodes)");
        }
        else if (SmoothWindow > 0) throw new ArgumentException("rl.smooth_window smooths fine-grained token rewards: set rl.fine_grained (sentence or step) too");
        if (!Enum.IsDefined(Target)) throw new ArgumentException($"rl.target must be exp_reward or filter, got {Target}");
        if (spec.TurnKl && TargetKl is not null) throw new ArgumentException($"rl.target_kl does not work with {Algorithm}: its KL weights per attempt are fixed (beta, first_turn_beta)");
        if (MaskTruncatedCompletions && spec.PolicyLoss.RowsPerUnit > 1) throw new ArgumentException($"rl.mask_truncated_completions does not work with {Algorithm}: its loss needs both samples of every pair");
        if (!(PtxCoefficient >= 0) || double.IsInfinity(PtxCoefficient)) throw new ArgumentException($"rl.ptx_coefficient must be a finite number ≥ 0, got {PtxCoefficient}");
        if (PtxCoefficient > 0 && string.IsNullOrWhiteSpace(PtxData)) throw new ArgumentException("rl.ptx_coefficient > 0 needs rl.ptx_data (an SFT JSONL of prompt/completion rows)");
        Positive(PtxBatchSize, "ptx_batch_size");
        if (OrealTokenWeights && !ReferenceEquals(spec.Estimator, AdvantageEstimators.Registry.Get("oreal")))
            throw new ArgumentException($"rl.oreal_token_weights weights OREAL's positives and negatives; it needs rl.algorithm: oreal, got {Algorithm}");
        if (OrealTokenWeights && spec.PolicyLoss.RowsPerUnit != 1) throw new ArgumentException("rl.oreal_token_weights needs a token-level policy loss");
        if (!(OrealTokenRmLearningRate > 0) || double.IsInfinity(OrealTokenRmLearningRate)) throw new ArgumentException($"rl.oreal_token_rm_learning_rate must be a positive finite number, got {OrealTokenRmLearningRate}");
        Positive(OrealTokenRmSteps, "oreal_token_rm_steps");
        if (!Enum.IsDefined(Filter)) throw new ArgumentException($"rl.filter must be none, best_worst or best_random, got {Filter}");
        if (!(FilterBestFraction > 0 && FilterBestFraction <= 1)) throw new ArgumentException($"rl.filter_best_fraction must be in (0, 1], got {FilterBestFraction}");
        if (!(FilterWorstFraction >= 0 && FilterWorstFraction <= 1)) throw new ArgumentException($"rl.filter_worst_fraction must be in [0, 1], got {FilterWorstFraction}");
        if (Filter != PolicyFilter.None && SamplesPerPrompt < 2) throw new ArgumentException($"rl.filter ranks each prompt's samples; rl.samples_per_prompt must be ≥ 2, got {SamplesPerPrompt}");
        if (Filter != PolicyFilter.None && spec.Estimator.GroupRelative)
            throw new ArgumentException($"rl.filter (PF-PPO) keeps some of each prompt's samples, which breaks the groups of {Algorithm}'s estimator; use it with ppo, pf_ppo, reinforce or remax");
        if (Filter != PolicyFilter.None && GroupBy is not null) throw new ArgumentException("rl.filter ranks the G samples of each prompt; it does not work with rl.group_by");
        if (!(ActionMaskTopP > 0 && ActionMaskTopP <= 1)) throw new ArgumentException($"rl.action_mask_top_p must be in (0, 1], got {ActionMaskTopP}");
        Positive(ActionMaskUpdateEvery, "action_mask_update_every");
        if (Critic is null) throw new ArgumentException("rl.critic is empty; expected {init: policy|reward_model, path: DIR}");
        if (!Enum.IsDefined(Critic.Init)) throw new ArgumentException($"rl.critic.init must be policy or reward_model, got {Critic.Init}");
        if (Critic.Path is not null && Critic.Init != CriticInit.RewardModel) throw new ArgumentException("rl.critic.path names a reward model; set rl.critic.init: reward_model");
        return this;
    }
}

/// <summary>Where PPO's critic starts (<c>rl.critic</c>).</summary>
public sealed record CriticOptions
{
    /// <summary><c>policy</c> (a copy of the policy, zero value head) or <c>reward_model</c> (the reward model and its head).</summary>
    public CriticInit Init { get; init; } = CriticInit.Policy;
    /// <summary>The reward-model folder for <c>init: reward_model</c>; null = the recipe's first <c>rewards</c> entry with <c>model</c>.</summary>
    public string? Path { get; init; }
}

/// <summary>The starting point of PPO's critic.</summary>
public enum CriticInit
{
    /// <summary>A copy of the policy with a zero-initialised value head.</summary>
    Policy,
    /// <summary>A reward-model checkpoint, its scalar head as the value head (PPO-max).</summary>
    RewardModel,
}

/// <summary>One stage of <see cref="RlOptions.MaxNewTokensSchedule"/>: up to 1-based iteration <see cref="UntilIteration"/>
/// (inclusive), sample at most <see cref="MaxNewTokens"/> new tokens.</summary>
public sealed record MaxNewTokensStage
{
    /// <summary>Last 1-based iteration of the stage.</summary>
    public int UntilIteration { get; init; }
    /// <summary>The stage's limit on new tokens.</summary>
    public int MaxNewTokens { get; init; }
}

/// <summary>Where the KL term to the reference policy goes.</summary>
public enum KlPlacement
{
    /// <summary>No reference model.</summary>
    None,
    /// <summary>Subtracted from the reward: per token for PPO, summed per sequence for outcome methods.</summary>
    InReward,
    /// <summary>Added to the loss, aggregated like the policy loss (GRPO).</summary>
    InLoss,
}

/// <summary>
/// An algorithm as a named composition (DESIGN principle 2): an advantage estimator and a policy loss (delegates from the
/// <see cref="AdvantageEstimators"/> and <see cref="PolicyLosses"/> registries), where the KL to the reference goes, and the
/// paper's defaults. What the trainer must provide follows from the parts: a critic when the estimator needs values, a
/// greedy pass when it needs a greedy baseline, whole pairs per batch when the loss is pairwise.
/// </summary>
public sealed record AlgorithmSpec(string Name, AdvantageEstimator Estimator, PolicyLoss PolicyLoss, KlPlacement Kl, Func<RlOptions> Defaults, string Paper)
{
    /// <summary>The composition of the registered estimator and loss named <paramref name="estimator"/> and <paramref name="policyLoss"/>.</summary>
    public static AlgorithmSpec Of(string name, string estimator, string policyLoss, KlPlacement kl, Func<RlOptions> defaults, string paper) =>
        new(name, AdvantageEstimators.Registry.Get(estimator), PolicyLosses.Registry.Get(policyLoss), kl, defaults, paper);

    /// <summary>Runs on environment episodes only (<c>env:</c>); a prompt dataset is an error.</summary>
    public bool EnvironmentOnly { get; init; }
    /// <summary>The turn rewards trained on, from a played trajectory's (SCoRe's stages); null = the environment's.</summary>
    public Func<Environments.Trajectory, RlOptions, double[]>? ShapeTurnRewards { get; init; }
    /// <summary>The KL to the reference weighs <see cref="RlOptions.FirstTurnBeta"/> on the first turn's tokens and
    /// <see cref="RlOptions.Beta"/> on later turns' (SCoRe) instead of one β.</summary>
    public bool TurnKl { get; init; }
    /// <summary>Rows are pairs of responses branched from a shared prefix of an on-policy episode at a random turn, each
    /// played to the end, the row's reward its future return (REFUEL).</summary>
    public bool BranchedPairs { get; init; }

    /// <summary>Whether the trainer keeps and trains a critic (the estimator reads values).</summary>
    public bool UsesCritic => Estimator.NeedsCritic;
    /// <summary>Whether the trainer also generates a greedy completion per prompt (the estimator's baseline).</summary>
    public bool UsesGreedyBaseline => Estimator.NeedsGreedyBaseline;
}

/// <summary>The registry of RL algorithms; an unknown name fails at once and lists the known ones. Adding one is one
/// <see cref="Register"/> call (and a recipe): no trainer switches on a name.</summary>
public static class RlAlgorithms
{
    static readonly Registry<AlgorithmSpec> Specs = BuiltIns();

    static Registry<AlgorithmSpec> BuiltIns()
    {
        var r = new Registry<AlgorithmSpec>("RL algorithm");
        r.Register("ppo", AlgorithmSpec.Of("ppo", "gae", "ppo_clip", KlPlacement.InReward, RlOptions.Ppo, "Schulman et al. 2017; Zheng et al. 2023 (Secrets of RLHF, PPO-max)"));
        r.Register("ppo_max", AlgorithmSpec.Of("ppo_max", "gae", "ppo_clip", KlPlacement.InReward, RlOptions.PpoMax, "Zheng et al. 2023 (Secrets of RLHF I, PPO-max), arXiv:2307.04964"));
        r.Register("pf_ppo", AlgorithmSpec.Of("pf_ppo", "gae", "ppo_clip", KlPlacement.InReward, RlOptions.PfPpo, "Zhang et al. 2024 (PF-PPO), arXiv:2409.06957"));
        r.Register("nlpo", AlgorithmSpec.Of("nlpo", "gae", "ppo_clip", KlPlacement.InReward, RlOptions.Nlpo, "Ramamurthy et al. 2022 (RL4LMs, NLPO), arXiv:2210.01241"));
        r.Register("grpo", AlgorithmSpec.Of("grpo", "grpo", "ppo_clip", KlPlacement.InLoss, RlOptions.Grpo, "Shao et al. 2024 (DeepSeekMath), arXiv:2402.03300"));
        r.Register("gigpo", AlgorithmSpec.Of("gigpo", "gigpo", "ppo_clip", KlPlacement.InLoss, RlOptions.Gigpo, "Feng et al. 2025 (GiGPO), arXiv:2505.10978")
            with { EnvironmentOnly = true });
        r.Register("dr_grpo", AlgorithmSpec.Of("dr_grpo", "dr_grpo", "ppo_clip", KlPlacement.InLoss, RlOptions.DrGrpo, "Liu et al. 2025 (Dr. GRPO), arXiv:2503.20783"));
        r.Register("remax", AlgorithmSpec.Of("remax", "remax", "vanilla", KlPlacement.InReward, RlOptions.Remax, "Li et al. 2023 (ReMax), arXiv:2310.10505"));
        r.Register("rloo", AlgorithmSpec.Of("rloo", "rloo", "vanilla", KlPlacement.InReward, RlOptions.Rloo, "Ahmadian et al. 2024 (RLOO), arXiv:2402.14740"));
        r.Register("reinforce", AlgorithmSpec.Of("reinforce", "reinforce", "vanilla", KlPlacement.InReward, RlOptions.Reinforce, "Williams 1992, with a moving-average baseline"));
        r.Register("p3o", AlgorithmSpec.Of("p3o", "p3o", "p3o_clip", KlPlacement.InReward, RlOptions.P3o, "Wu et al. 2023 (P3O), arXiv:2310.00212"));
        r.Register("topr", AlgorithmSpec.Of("topr", "reinforce", "topr", KlPlacement.None, RlOptions.Topr, "Le Roux et al. 2025 (TOPR), arXiv:2503.14286"));
        r.Register("fdpg", AlgorithmSpec.Of("fdpg", "fdpg", "vanilla", KlPlacement.InReward, RlOptions.Fdpg, "Go et al. 2023 (f-DPG), arXiv:2302.08215"));
        r.Register("flow_of_reasoning", AlgorithmSpec.Of("flow_of_reasoning", "trajectory_balance", "vanilla", KlPlacement.None, RlOptions.FlowOfReasoning,
            "Yu et al. 2024 (Flow of Reasoning), arXiv:2406.05673; Malkin et al. 2022 (trajectory balance), arXiv:2201.13176"));
        r.Register("score_stage1", AlgorithmSpec.Of("score_stage1", "rloo", "vanilla", KlPlacement.InLoss, RlOptions.ScoreStage1, "Kumar et al. 2024 (SCoRe), arXiv:2409.12917")
            with { EnvironmentOnly = true, TurnKl = true, ShapeTurnRewards = (t, o) => ScoreRewards(t, o, stage: 1) });
        r.Register("score_stage2", AlgorithmSpec.Of("score_stage2", "rloo", "vanilla", KlPlacement.InLoss, RlOptions.ScoreStage2, "Kumar et al. 2024 (SCoRe), arXiv:2409.12917")
            with { EnvironmentOnly = true, TurnKl = true, ShapeTurnRewards = (t, o) => ScoreRewards(t, o, stage: 2) });
        r.Register("oreal", AlgorithmSpec.Of("oreal", "oreal", "vanilla", KlPlacement.InLoss, RlOptions.Oreal, "Lyu et al. 2025 (OREAL), arXiv:2502.06781"));
        r.Register("refuel", AlgorithmSpec.Of("refuel", "refuel", "refuel", KlPlacement.None, RlOptions.Refuel, "Gao et al. 2024 (REFUEL), arXiv:2410.04612")
            with { EnvironmentOnly = true, BranchedPairs = true });
        return r;
    }

    /// <summary>SCoRe's turn rewards of a trajectory: r₁ is the first turn's info <c>first_reward</c> (the self-correction
    /// environment reports it, scoring only the second attempt), else the first turn's own reward.</summary>
    internal static double[] ScoreRewards(Environments.Trajectory t, RlOptions o, int stage)
    {
        var rewards = t.Turns.Select(x => x.Reward).ToArray();
        if (rewards.Length == 0) throw new ArgumentException("a trajectory with no turn has no attempt to reward");
        double r1 = rewards[0];
        if (t.Turns[0].Info.TryGetValue("first_reward", out var text))
            r1 = double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) ? v
                : throw new ArgumentException($"environment '{t.Environment}': the first turn's info 'first_reward' is '{text}', expected a number");
        return MultiTurnReturns.ScoreTurnRewards(rewards, r1, stage, o.ShapingAlpha);
    }

    /// <summary>Adds an algorithm (e.g. one composed of a newly registered estimator or loss); its name is what recipes use.</summary>
    public static void Register(AlgorithmSpec spec) => Specs.Register(spec.Name, spec);

    /// <summary>Known algorithm names.</summary>
    public static IReadOnlyList<string> Names => Specs.Names;

    /// <summary>The algorithm named <paramref name="name"/>.</summary>
    public static AlgorithmSpec Get(string name) => Specs.Contains(name) ? Specs.Get(name)
        : throw new ArgumentException($"unknown RL algorithm '{name}'; known: {string.Join(", ", Specs.Names)}");
}
