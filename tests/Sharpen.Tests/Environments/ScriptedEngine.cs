using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Environments;

/// <summary>
/// A test double of <see cref="IRolloutEngine"/> for environment logic only: a scripted policy reads each prompt's text
/// and returns a fixed reply (no model; log-probs 0). The engine path itself is tested with the torch engine.
/// </summary>
sealed class ScriptedEngine(ITokenizer tokenizer, Func<string, string> policy) : IRolloutEngine
{
    public ITokenizer Tokenizer { get; } = tokenizer;
    public IReadOnlySet<int> EosIds { get; } = new HashSet<int> { CharTokenizer.EosId };
    public List<int> Calls { get; } = [];

    public IReadOnlyList<Rollout> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingOptions options)
    {
        Calls.Add(prompts.Count);
        return prompts.Select((p, i) =>
        {
            var text = policy(Tokenizer.Decode(p)) + "\n";
            var ids = Tokenizer.Encode(text, addSpecialTokens: false).ToArray();
            return new Rollout(i, 0, p.ToArray(), ids, text, new float[ids.Length], StopReason.StopString);
        }).ToList();
    }

    public void SyncWeights(CausalLM policy) { }
}
