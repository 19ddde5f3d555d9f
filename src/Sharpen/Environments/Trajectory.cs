using Sharpen.Data;

namespace Sharpen.Environments;

/// <summary>
/// One episode: the chat transcript (environment messages and the policy's messages, in order) and, per assistant
/// turn, its reward and (when it came from a rollout) its token ids and engine log-probs. The policy's tokens are what
/// a trainer learns from; everything else is context (see <see cref="TrajectorySequence"/>).
/// </summary>
public sealed record Trajectory
{
    /// <summary>The environment's name, when known.</summary>
    public string? Environment { get; init; }

    /// <summary>The seed the environment was reset with, when known.</summary>
    public int? Seed { get; init; }

    /// <summary>The whole transcript, the environment's last observation included.</summary>
    public required IReadOnlyList<ChatMessage> Messages { get; init; }

    /// <summary>One entry per assistant message, in order.</summary>
    public required IReadOnlyList<TrajectoryTurn> Turns { get; init; }

    /// <summary>Why it ended.</summary>
    public TrajectoryEnd End { get; init; }

    /// <summary>True when it was cut short by the rollout (turn limit or token budget) rather than ended by the environment.</summary>
    public bool Truncated => End != TrajectoryEnd.Done;

    /// <summary>The return: the undiscounted sum of the turns' rewards.</summary>
    public double Return => Turns.Sum(t => t.Reward);

    /// <summary>The environment's diagnostics of the last turn (empty when no turn was played).</summary>
    public IReadOnlyDictionary<string, string> FinalInfo => Turns.Count == 0 ? new Dictionary<string, string>() : Turns[^1].Info;

    /// <summary>Whether the episode was won: the last turn's info says <c>outcome</c> = <c>won</c> (every built-in
    /// environment reports it); for an environment that reports no <c>outcome</c>, a positive return.</summary>
    public bool Succeeded => FinalInfo.TryGetValue("outcome", out var outcome) ? outcome == "won" : Return > 0;

    /// <summary>True when every turn carries its context and token ids (a <see cref="TrajectorySequence"/> can be built without a tokenizer).</summary>
    public bool HasTokens => Turns.Count > 0 && Turns.All(t => t.TokenIds is not null && t.ContextIds is not null);
}
