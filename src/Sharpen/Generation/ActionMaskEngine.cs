using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Generation;

/// <summary>
/// NLPO's masked action space (Ramamurthy et al. 2022, arXiv:2210.01241, RL4LMs): at every position a masking policy keeps
/// only its top-p set of next tokens, and the policy's distribution is renormalised over that set. The mask is a pure
/// function of the masking policy's logits; the engine samples the masked policy token by token, both models decoding in
/// lock-step through their own KV caches. The returned log-probs are the masked policy's at temperature 1, as the
/// trainer computes them (<see cref="Apply"/> on its own logits). Stop strings are not supported (EOS and the token limit are).
/// </summary>
public sealed class ActionMaskEngine : IRolloutEngine
{
    /// <summary>The logit given to masked tokens: finite, so entropies and log-softmax stay finite, and exp underflows to 0.</summary>
    public const double MaskedLogit = -1e9;

    readonly CausalLM _policy;
    readonly Func<CausalLM> _mask;
    readonly double _topP;
    readonly int _padId;

    /// <summary>Samples <paramref name="policy"/> restricted to the top-<paramref name="topP"/> set of the model
    /// <paramref name="maskingPolicy"/> returns at each call (the trainer swaps it when it refreshes the copy).</summary>
    public ActionMaskEngine(CausalLM policy, Func<CausalLM> maskingPolicy, ITokenizer tokenizer, double topP)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(maskingPolicy);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (!(topP > 0 && topP <= 1)) throw new ArgumentOutOfRangeException(nameof(topP), topP, "the mask's top-p must be in (0, 1]");
        (_policy, _mask, _topP, Tokenizer) = (policy, maskingPolicy, topP, tokenizer);
        EosIds = policy.Config.EosTokenIds.Concat(tokenizer.EosTokenId is { } e ? [e] : []).ToHashSet();
        _padId = tokenizer.PadTokenId ?? policy.Config.PadTokenId ?? EosIds.DefaultIfEmpty(0).First();
    }

    /// <inheritdoc />
    public ITokenizer Tokenizer { get; }

    /// <inheritdoc />
    public IReadOnlySet<int> EosIds { get; }

    /// <inheritdoc />
    public void SyncWeights(CausalLM policy) { }   // samples the policy object itself

    /// <inheritdoc />
    public bool SamplesTrainerPolicy => true;

    /// <summary>
    /// The top-p set of <paramref name="maskLogits"/> <c>(..., V)</c>: true for the most probable tokens whose cumulative
    /// probability before them is below <paramref name="topP"/> (the smallest set reaching p; the top token always stays).
    /// </summary>
    public static Tensor TopPKeep(Tensor maskLogits, double topP)
    {
        var (sorted, idx) = maskLogits.to_type(ScalarType.Float32).sort(-1, descending: true);
        var probs = sorted.softmax(-1);
        var before = probs.cumsum(-1) - probs;                                     // mass strictly before each token
        var keepSorted = before < topP;
        return zeros_like(keepSorted).scatter(-1, idx, keepSorted);                // back to vocabulary order
    }

    /// <summary>The policy's logits with the tokens outside <paramref name="keep"/> set to <see cref="MaskedLogit"/>.</summary>
    public static Tensor Apply(Tensor policyLogits, Tensor keep) => policyLogits.to_type(ScalarType.Float32).masked_fill(keep.logical_not(), MaskedLogit);

    /// <inheritdoc />
    public IReadOnlyList<Rollout> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingOptions options)
    {
        options.Validate();
        if (options.StopStrings.Count > 0) throw new ArgumentException("the action-mask engine does not support stop strings");
        if (prompts.Count == 0) return [];
        if (prompts.Any(p => p.Count == 0)) throw new ArgumentException("a prompt encodes to no tokens");
        var mask = _mask();
        if (mask.Config.VocabSize != _policy.Config.VocabSize)
            throw new ArgumentException($"policy and masking policy vocabularies differ ({_policy.Config.VocabSize} vs {mask.Config.VocabSize})");
        return LockstepDecoder.Generate(_policy, mask, Tokenizer, EosIds, _padId, prompts, options, (policyLogits, maskLogits) =>
        {
            var masked = Apply(policyLogits, TopPKeep(maskLogits, _topP));              // (n, V)
            return (masked, masked.log_softmax(-1));                                    // log-probs under the masked policy
        });
    }
}
