using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Generation;

/// <summary>
/// Samples from the geometric mixture of a policy and a reference, token by token: at every position the next-token
/// distribution is ∝ π(·)^(1−β)·π_ref(·)^β, i.e. the logits are (1 − β)·log_softmax(policy) + β·log_softmax(reference)
/// (Nash-MD, Munos et al. 2023, arXiv:2312.00886 §7, which approximates the sequence-level mixture this way; IPO-MD, Calandriello et al.
/// 2024, arXiv:2403.08635, samples its pairs from it). β = 0 is the policy, β = 1 the reference. Both models decode in
/// lock-step through their own KV caches. The returned log-probs are those of the mixture at temperature 1 (what the
/// engine sampled from). Stop strings are not supported (EOS and the token limit are).
/// </summary>
public sealed class GeometricMixtureEngine : IRolloutEngine
{
    readonly CausalLM _policy, _reference;
    readonly double _beta;
    readonly int _padId;

    /// <summary>Mixes <paramref name="policy"/> and <paramref name="reference"/> (same vocabulary) with weight <paramref name="beta"/> on the reference.</summary>
    public GeometricMixtureEngine(CausalLM policy, CausalLM reference, ITokenizer tokenizer, double beta)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (!(beta >= 0 && beta <= 1)) throw new ArgumentOutOfRangeException(nameof(beta), beta, "the mixture weight β must be in [0, 1]");
        if (policy.Config.VocabSize != reference.Config.VocabSize)
            throw new ArgumentException($"policy and reference vocabularies differ ({policy.Config.VocabSize} vs {reference.Config.VocabSize})");
        (_policy, _reference, _beta, Tokenizer) = (policy, reference, beta, tokenizer);
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
    public IReadOnlyList<Rollout> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingOptions options)
    {
        options.Validate();
        if (options.StopStrings.Count > 0) throw new ArgumentException("the geometric-mixture engine does not support stop strings");
        if (prompts.Count == 0) return [];
        if (prompts.Any(p => p.Count == 0)) throw new ArgumentException("a prompt encodes to no tokens");
        return LockstepDecoder.Generate(_policy, _reference, Tokenizer, EosIds, _padId, prompts, options, (policyLogits, referenceLogits) =>
        {
            var mixed = Mix(policyLogits, referenceLogits, _beta);                      // (n, V) normalised log-probs
            return (mixed, mixed);
        });
    }

    /// <summary>log_softmax((1 − β)·log_softmax(a) + β·log_softmax(b)) over the last dimension: the normalised log-probs of the mixture.</summary>
    public static Tensor Mix(Tensor policyLogits, Tensor referenceLogits, double beta)
    {
        var a = policyLogits.to_type(ScalarType.Float32).log_softmax(-1);
        var b = referenceLogits.to_type(ScalarType.Float32).log_softmax(-1);
        return ((1 - beta) * a + beta * b).log_softmax(-1);
    }
}
