namespace Sharpen.Environments;

/// <summary>
/// One assistant turn of a <see cref="Trajectory"/>.
/// </summary>
/// <param name="MessageIndex">Index of the assistant message in <see cref="Trajectory.Messages"/>.</param>
/// <param name="Reward">The reward the environment gave for this turn.</param>
/// <param name="Info">The environment's diagnostics for this turn.</param>
public sealed record TrajectoryTurn(int MessageIndex, double Reward, IReadOnlyDictionary<string, string> Info)
{
    /// <summary>Token ids of the context that precedes this turn and follows the previous one: the whole rendered prompt
    /// for the first turn, the rendered environment messages (and the next assistant header) after that. Null when
    /// the trajectory carries text only.</summary>
    public int[]? ContextIds { get; init; }

    /// <summary>The policy's own token ids for this turn, as the engine generated them (a final EOS or stop string
    /// included). Null when the trajectory carries text only.</summary>
    public int[]? TokenIds { get; init; }

    /// <summary>Per token of <see cref="TokenIds"/>: the engine's log π(token | everything before it) at temperature 1.
    /// Null when unknown.</summary>
    public float[]? LogProbs { get; init; }
}
