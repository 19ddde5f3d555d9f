using Sharpen.Environments;
using Sharpen.Generation;
using static TorchSharp.torch;
using Sharpen.Rewards;

namespace Sharpen.Training.Rl;

/// <summary>
/// One RL iteration's data as it moves through the phases of <see cref="RlTrainer"/>: filled by rollout and scoring
/// (plain lists), then by the tensor phases. Per-token tensors are <c>(B, A)</c>, per-sequence ones <c>(B)</c>, with B the
/// kept rollouts (prompt by prompt, G samples each) and A the longest completion.
/// </summary>
sealed class RlBatch
{
    // ---- rollout and score (every generated group counts in the reward metrics; only kept groups are trained on)
    /// <summary>The prompts whose groups were kept, in order.</summary>
    public List<RlPrompt> Prompts { get; } = [];
    /// <summary>Prompts of this batch started from a dataset reset (DR-PO), over all sampling rounds.</summary>
    public int ResetPrompts { get; set; }
    /// <summary>The kept rollouts, their <see cref="Rollout.PromptIndex"/> into <see cref="Prompts"/>.</summary>
    public List<Rollout> Rollouts { get; } = [];
    /// <summary>Total reward of each kept rollout.</summary>
    public List<double> Rewards { get; } = [];
    /// <summary>Total reward of every generated rollout (all sampling rounds).</summary>
    public List<double> AllRewards { get; } = [];
    /// <summary>Per reward function: (sum of round means, rounds), for <c>reward/NAME</c>.</summary>
    public Dictionary<string, (double Sum, int Rounds)> FunctionSums { get; } = [];
    /// <summary>Greedy completions' rewards of the last round (estimators with a greedy baseline).</summary>
    public double[]? GreedyRewards { get; set; }
    /// <summary>Sampling rounds drawn (more than one with dynamic sampling).</summary>
    public int Rounds { get; set; }
    /// <summary>Rollouts the task's verifier accepted (all rounds).</summary>
    public int Correct { get; set; }
    /// <summary>The iteration's limit on new tokens (<c>rl.max_new_tokens</c> or its schedule's stage).</summary>
    public int MaxNewTokens { get; set; }
    /// <summary>How many updates behind the trained policy the rollouts' weights are: 0, or 1 for a batch collected
    /// asynchronously during the previous update (<c>rollout.async</c>).</summary>
    public int PolicyLag { get; set; }
    /// <summary>Tokens generated (samples and greedy completions).</summary>
    public double GeneratedTokens { get; set; }
    /// <summary>Multi-turn only: the kept rows' trajectories.</summary>
    public List<Trajectory>? Trajectories { get; init; }
    /// <summary>Multi-turn only: every played trajectory (all sampling rounds), for success rate and turns.</summary>
    public List<Trajectory> AllTrajectories { get; } = [];
    /// <summary>REFUEL: the rows are branched response pairs (prompt = the shared prefix, completion = the turn-h response),
    /// trained as single-turn rows; <see cref="Trajectories"/> holds the on-policy episodes they branched from.</summary>
    public bool Branched { get; init; }
    /// <summary>Two-attempt episodes whose info reports both verdicts (<c>first_correct</c>, <c>second_correct</c>): count,
    /// first attempts right, second attempts right.</summary>
    public (int N, int First, int Second) Attempts { get; set; }
    /// <summary>Further metrics of the iteration's row (PF-PPO's R² per filter, kept fraction).</summary>
    public Dictionary<string, double> Extra { get; } = [];
    /// <summary>Seconds per phase.</summary>
    public Dictionary<string, double> Timing { get; } = [];

    // ---- tensors
    /// <summary>The kept rollouts as one left/right-padded batch.</summary>
    public SequenceBatch Seq { get; set; } = null!;
    /// <summary>Completion mask <c>(B, A)</c>.</summary>
    public Tensor Mask => Seq.CompletionMask;
    /// <summary>Old log-probs of the loss <c>(B, A)</c>: the engine's, or the trainer's own recomputation when it recomputes.</summary>
    public Tensor OldLogProbs { get; set; } = null!;
    /// <summary>The engine's log-probs as it returned them <c>(B, A)</c>.</summary>
    public Tensor EngineLogProbs { get; set; } = null!;
    /// <summary>Mean |Δ log-prob| and KL(engine ‖ trainer) when the trainer recomputed the old log-probs.</summary>
    public (double MeanAbsDiff, double Kl)? Mismatch { get; set; }
    /// <summary>Truncated importance weights min(π_trainer_old / π_engine, C) <c>(B, A)</c>, or null when TIS is off.</summary>
    public Tensor? TisWeights { get; set; }
    /// <summary>Set when the old log-probs come from the update's first forward pass (then <see cref="OldLogProbs"/>,
    /// <see cref="TisWeights"/> and <see cref="Mismatch"/> are filled by the update).</summary>
    internal FoldedOldLogProbs? Folded { get; set; }
    /// <summary>Reference log-probs <c>(B, A)</c>, or null without a reference.</summary>
    public Tensor? RefLogProbs { get; set; }
    /// <summary>Critic values <c>(B, A)</c>, or null without a critic.</summary>
    public Tensor? OldValues { get; set; }
    /// <summary>k1 KL to the reference per token <c>(B, A)</c> (zeros without a reference).</summary>
    public Tensor TokenKl { get; set; } = null!;
    /// <summary>β of this iteration.</summary>
    public double Beta { get; set; }
    /// <summary>Token advantages <c>(B, A)</c>.</summary>
    public Tensor Advantages { get; set; } = null!;
    /// <summary>Sequence advantages (or KL-regularised rewards) <c>(B)</c>.</summary>
    public Tensor SequenceAdvantages { get; set; } = null!;
    /// <summary>Multi-turn: each turn's reward at its last policy token; <c>rl.fine_grained</c>: each segment's score at its last
    /// token (PCPG-smoothed with <c>rl.smooth_window</c>) <c>(B, A)</c>; else null.</summary>
    public Tensor? TokenRewards { get; set; }
    /// <summary>Multi-turn: each policy token's state id (<see cref="Algorithms.AdvantageContext.TurnStates"/>), −1 elsewhere <c>(B, A)</c>.</summary>
    public Tensor? TurnStates { get; set; }
    /// <summary><c>rl.fine_grained</c>: per kept rollout, its segments' (last token, weighted score); else null.</summary>
    public List<(int Token, double Reward)[]>? Segments { get; set; }
    /// <summary>Per-token KL weights <c>(B, A)</c> replacing β (SCoRe's per-attempt β), or null.</summary>
    public Tensor? KlWeights { get; set; }
    /// <summary>Value targets <c>(B, A)</c> (critic).</summary>
    public Tensor? Returns { get; set; }
    /// <summary>Share of generated groups whose rewards are all equal (NaN for G = 1).</summary>
    public double ZeroAdvantageGroups { get; set; } = double.NaN;
}
