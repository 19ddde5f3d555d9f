namespace Sharpen.Tasks;

/// <summary>
/// One generated or loaded problem.
/// </summary>
/// <param name="Id">Canonical key of the problem: two problems with the same <paramref name="Id"/> are the
/// same problem (e.g. <c>countdown:3,5,7->22</c>, numbers sorted). Dataset splits deduplicate on it.</param>
/// <param name="Prompt">The text the policy sees.</param>
/// <param name="Answer">Reference final answer (a number or an expression).</param>
/// <param name="Fields">Ground truth for rewards, as strings (e.g. <c>numbers</c> = <c>"3 5 7"</c>, <c>target</c> = <c>"22"</c>).</param>
public sealed record Problem(string Id, string Prompt, string Answer, IReadOnlyDictionary<string, string> Fields);
