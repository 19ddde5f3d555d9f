using Sharpen.Data;

namespace Sharpen.Environments;

/// <summary>What an environment answers to one assistant message.</summary>
/// <param name="Observation">The next messages the policy sees (role <c>user</c>, or <c>tool</c> for a tool's result);
/// may be empty when the episode is over.</param>
/// <param name="Reward">The turn's reward.</param>
/// <param name="Done">True when the episode is over (won, lost, out of the game's own moves).</param>
/// <param name="Info">Diagnostics as strings, e.g. <c>outcome</c> = <c>won</c>, <c>valid</c> = <c>false</c>.</param>
public sealed record EnvironmentStep(IReadOnlyList<ChatMessage> Observation, double Reward, bool Done,
    IReadOnlyDictionary<string, string> Info);
