using Sharpen.Rewards;
using Sharpen.Tokenizers;

namespace Sharpen.Training.Rl;

/// <summary>
/// Dataset Reset Policy Optimization (DR-PO; Chang et al. 2024, "Dataset Reset Policy Optimization for RLHF",
/// arXiv:2404.08495): online RL may start a rollout not only from the prompt (the initial state) but from a state of the
/// offline data. For text a state is the prompt plus a prefix of a dataset response, so a reset rollout continues a
/// demonstration from a point drawn uniformly among its token boundaries. <see cref="Reset"/> builds such a start
/// (the policy is prompted with prompt + prefix and trained on its own continuation only); <see cref="RlPrompt.Contexts"/>
/// gives the rewards the whole answer (prefix + continuation) under the original prompt. Which prompts are reset is
/// <c>rl.dataset_reset</c> (a fraction per iteration; the rest start from the prompt, the paper's mixture).
/// </summary>
public static class DatasetReset
{
    /// <summary>The field of a training prompt that holds its dataset response (the row's completion).</summary>
    public const string ResponseField = "dataset_response";
    /// <summary>Set on a reset prompt: the response prefix the rollout continues.</summary>
    public const string PrefixField = "reset_prefix";
    /// <summary>Set on a reset prompt: the original prompt (what the rewards see as the prompt).</summary>
    public const string PromptField = "reset_prompt";

    /// <summary>
    /// A reset of <paramref name="prompt"/> to a prefix of its <see cref="ResponseField"/>: the response is tokenised, a cut
    /// h is drawn uniformly from 1 … n−1 (n its token count; at least one token given, at least one left to generate), and
    /// the prompt becomes prompt + decode(response[..h]). Null when the prompt has no response of 2 tokens or more.
    /// </summary>
    public static RlPrompt? Reset(RlPrompt prompt, ITokenizer tokenizer, Random rng)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(rng);
        if (!prompt.Fields.TryGetValue(ResponseField, out var response) || response.Length == 0) return null;
        var ids = tokenizer.Encode(response, addSpecialTokens: false);
        if (ids.Count < 2) return null;
        int h = rng.Next(1, ids.Count);                                           // uniform in 1 … n−1
        var prefix = tokenizer.Decode(ids.Take(h).ToList());
        var fields = new Dictionary<string, string>(prompt.Fields) { [PrefixField] = prefix, [PromptField] = prompt.Prompt };
        return new RlPrompt(prompt.Prompt + prefix, fields);
    }
}
