using Sharpen.Environments;

namespace Sharpen.Training.Rl;

/// <summary>
/// What turns an <see cref="RlTrainer"/> run into multi-turn RL in an environment (<c>kind: rl</c> with <c>env:</c>):
/// each iteration plays <c>prompts_per_iteration</c> episodes (seeds) × <c>samples_per_prompt</c> trajectories (a group
/// shares its seed) in lock-step through the rollout engine; one trajectory is one training row whose loss mask covers
/// the policy's tokens only. Group estimators (GRPO, RLOO, REINFORCE, ...) use the trajectory's return; GAE (PPO) puts
/// each turn's reward at the turn's last token and runs over the policy's tokens across turns.
/// </summary>
/// <param name="Create">A new environment instance (one per concurrent trajectory).</param>
/// <param name="Rollout">Turn limit and token budget of a trajectory. Its sampling is replaced by the RL options'
/// (temperature, top-p, <c>max_new_tokens</c> per turn), keeping its stop strings.</param>
public sealed record RlEnvironment(Func<IEnvironment> Create, MultiTurnOptions Rollout)
{
    /// <summary>Training episodes use seeds from here on (iteration i, round r, group k: offset + (i·rounds + r)·P + k), so
    /// they never meet the evaluation seeds below it. Default 1,000,000.</summary>
    public int TrainSeedOffset { get; init; } = 1_000_000;

    /// <summary>Seeds of the greedy held-out evaluation (every <c>eval_every</c> and at the end). Default: 0 … eval_problems − 1.</summary>
    public IReadOnlyList<int>? EvalSeeds { get; init; }

    /// <summary>How transcripts become prompts (default <see cref="TranscriptRenderer.Plain"/>).</summary>
    public ChatRenderer? Renderer { get; init; }

    /// <summary>Counters of the environment since the previous call, added to every metrics row (e.g. a frozen model's
    /// <c>frozen/calls</c>, <c>frozen/requests</c>, <c>frozen/tokens</c>: <see cref="FrozenModel.TakeMetrics"/>).</summary>
    public Func<IReadOnlyDictionary<string, double>>? Metrics { get; init; }
}
