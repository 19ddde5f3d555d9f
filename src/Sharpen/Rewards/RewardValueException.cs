namespace Sharpen.Rewards;

/// <summary>A reward function returned a score the trainer must not use (NaN, ±Infinity, or beyond the allowed range);
/// the message names the function (and a reward server's URL) and the completion.</summary>
public sealed class RewardValueException(string message) : Exception(message);
