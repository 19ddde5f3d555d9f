using Sharpen.Generation;

namespace Sharpen.Environments;

/// <summary>Options of <see cref="MultiTurnRollout"/>.</summary>
public sealed record MultiTurnOptions
{
    /// <summary>How each turn is sampled. <see cref="SamplingOptions.MaxNewTokens"/> bounds one turn; the stop strings
    /// end a turn (default a newline, the end of an assistant line in <see cref="TranscriptRenderer.Plain"/>);
    /// <see cref="SamplingOptions.Seed"/> + the turn index seeds each turn's sampling. Samples per prompt must be 1:
    /// for a group of G trajectories of one episode, pass G environments with the same seed.</summary>
    public SamplingOptions Sampling { get; init; } = new() { MaxNewTokens = 32, StopStrings = ["\n"] };

    /// <summary>Most assistant turns per trajectory; a trajectory still running after them ends as
    /// <see cref="TrajectoryEnd.TurnLimit"/>. Default 8.</summary>
    public int MaxTurns { get; init; } = 8;

    /// <summary>Token budget of a whole trajectory (prompt, environment text and the policy's tokens). A turn that
    /// would pass it is cut at the budget and the trajectory ends as <see cref="TrajectoryEnd.TokenBudget"/>; so does
    /// one whose next context would reach it. The model's context must hold this plus one turn's
    /// <see cref="SamplingOptions.MaxNewTokens"/>. Default 512.</summary>
    public int MaxTrajectoryTokens { get; init; } = 512;

    /// <summary>When true (default) the stop string that ended a turn is not part of the action given to the
    /// environment nor of the assistant message (it stays in the turn's token ids, which the policy did write).</summary>
    public bool StripStopString { get; init; } = true;

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad option.</summary>
    public MultiTurnOptions Validate()
    {
        Sampling.Validate();
        if (Sampling.SamplesPerPrompt != 1)
            throw new ArgumentException($"multi-turn rollouts sample one continuation per environment (samples per prompt 1, got {Sampling.SamplesPerPrompt}); for G samples of an episode pass G environments with the same seed");
        if (MaxTurns < 1) throw new ArgumentException($"max turns must be ≥ 1, got {MaxTurns}");
        if (MaxTrajectoryTokens < 2) throw new ArgumentException($"max trajectory tokens must be ≥ 2, got {MaxTrajectoryTokens}");
        return this;
    }
}
