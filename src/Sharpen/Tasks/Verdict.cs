namespace Sharpen.Tasks;

/// <summary>
/// The result of checking one completion against one problem.
/// </summary>
/// <param name="Reward">1 when correct, else 0, plus <paramref name="FormatReward"/>.</param>
/// <param name="Correct">Whether the final answer is right.</param>
/// <param name="Reason">Why: one of the constants in <see cref="VerdictReasons"/>.</param>
/// <param name="FormatReward">The part of <paramref name="Reward"/> given for the expected output format
/// (0 unless the task's <see cref="TaskOptions.FormatReward"/> is set).</param>
/// <param name="ExtractedAnswer">The final answer found in the completion, or null when there is none.</param>
public sealed record Verdict(double Reward, bool Correct, string Reason, double FormatReward, string? ExtractedAnswer);
