namespace Sharpen.Environments;

/// <summary>Why a trajectory ended.</summary>
public enum TrajectoryEnd
{
    /// <summary>The environment said done (won, lost, or out of the game's own moves).</summary>
    Done,
    /// <summary>Truncated: the rollout's turn limit was reached before the environment was done.</summary>
    TurnLimit,
    /// <summary>Truncated: the token sequence reached the rollout's token budget.</summary>
    TokenBudget,
}
