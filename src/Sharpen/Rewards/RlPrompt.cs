using Sharpen.Generation;
using Sharpen.Tasks;

namespace Sharpen.Rewards;

/// <summary>A prompt for online RL and the dataset fields its rewards may read (ground truth and so on).</summary>
public sealed record RlPrompt(string Prompt, IReadOnlyDictionary<string, string> Fields)
{
    /// <summary>A task problem as an RL prompt (fields include id and answer, as <c>data make</c> writes them).</summary>
    public static RlPrompt From(Problem p)
    {
        var fields = new Dictionary<string, string>(p.Fields) { ["id"] = p.Id, ["answer"] = p.Answer };
        return new RlPrompt(p.Prompt, fields);
    }

    /// <summary>What the reward functions see of each rollout: its prompt (<see cref="Rollout.PromptIndex"/> into
    /// <paramref name="prompts"/>) with that prompt's fields, the completion and its length in tokens.</summary>
    /// <remarks>A rollout from a dataset reset (DR-PO: the prompt carries <c>reset_prompt</c> and <c>reset_prefix</c>) is
    /// scored as the whole answer: the original prompt, and the response prefix followed by the generated text.</remarks>
    public static List<RewardContext> Contexts(IReadOnlyList<RlPrompt> prompts, IEnumerable<Rollout> rollouts) =>
        rollouts.Select(r =>
        {
            var p = prompts[r.PromptIndex];
            return p.Fields.TryGetValue("reset_prefix", out var prefix) && p.Fields.TryGetValue("reset_prompt", out var original)
                ? new RewardContext(original, prefix + r.CompletionText, p.Fields, r.CompletionIds.Length)
                : new RewardContext(p.Prompt, r.CompletionText, p.Fields, r.CompletionIds.Length);
        }).ToList();
}
