using Sharpen.Models;
using Sharpen.Tokenizers;

namespace Sharpen.Generation;

/// <summary>
/// What generates rollouts: the built-in torch engine (<see cref="RolloutEngine"/>), llama.cpp in process, or a remote
/// OpenAI-compatible server. Every engine returns the same <see cref="Rollout"/> records (token ids, the engine's per-token
/// log-probs at temperature 1, stop reason), ordered prompt by prompt with the samples of one prompt together.
/// </summary>
public interface IRolloutEngine
{
    /// <summary>The tokenizer that turns prompts into ids and completions into text.</summary>
    ITokenizer Tokenizer { get; }

    /// <summary>Ids that end a sequence.</summary>
    IReadOnlySet<int> EosIds { get; }

    /// <summary>Generates <see cref="SamplingOptions.SamplesPerPrompt"/> completions for every prompt (token ids).</summary>
    IReadOnlyList<Rollout> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingOptions options);

    /// <summary>Encodes each prompt with the engine's tokenizer and generates.</summary>
    IReadOnlyList<Rollout> Generate(IReadOnlyList<string> prompts, SamplingOptions options) =>
        Generate(prompts.Select(p => (IReadOnlyList<int>)Tokenizer.Encode(p)).ToList(), options);

    /// <summary>
    /// Called by a trainer after it changed <paramref name="policy"/>'s weights, so that the next rollouts come from them.
    /// The torch engine samples the policy object itself and does nothing; engines that hold their own copy of the
    /// weights (llama.cpp, a remote server) re-export and reload here.
    /// </summary>
    void SyncWeights(CausalLM policy);

    /// <summary>True when the engine samples the trainer's own policy object with the trainer's code (the torch engine), so
    /// its log-probs are the trainer's up to float rounding; trainers then leave truncated importance sampling off by default.</summary>
    bool SamplesTrainerPolicy => false;
}
