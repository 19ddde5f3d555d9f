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
    public static List<RewardContext> Contexts(IReadOnlyList<RlPrompt> prompts, IEnumerable<Rollout> rollouts) =>
        rollouts.Select(r => new RewardContext(prompts[r.PromptIndex].Prompt, r.CompletionText, prompts[r.PromptIndex].Fields, r.CompletionIds.Length)).ToList();
}
