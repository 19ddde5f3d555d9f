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
        bool policyTraining = _policy.training, referenceTraining = _reference.training;
        _policy.eval(); _reference.eval();
        using var generator = new Generator((ulong)options.Seed);
        try
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            int count = prompts.Count, g = options.SamplesPerPrompt, n = count * g, maxNew = options.MaxNewTokens;
            int p = prompts.Max(x => x.Count), total = p + maxNew;
            if (total > _policy.Config.MaxPositionEmbeddings)
                throw new ArgumentException($"prompt ({p} tokens) + max new tokens ({maxNew}) exceed max_position_embeddings ({_policy.Config.MaxPositionEmbeddings})");
            var ids = new long[count * p];
            var mask = new long[count * p];
            for (int i = 0; i < count; i++)
            {
                int pad = p - prompts[i].Count;
                for (int j = 0; j < p; j++) { ids[i * p + j] = j < pad ? _padId : prompts[i][j - pad]; mask[i * p + j] = j < pad ? 0 : 1; }
            }
            var promptIds = tensor(ids).view(count, p);
            var promptMask = tensor(mask).view(count, p);
            var repeat = arange(count, dtype: ScalarType.Int64).repeat_interleave(g);   // (n)
            using var policySession = _policy.StartDecoding(count, total);
            using var referenceSession = _reference.StartDecoding(count, total);
            var policyLogits = policySession.Prefill(promptIds, promptMask).index_select(0, repeat);
            var referenceLogits = referenceSession.Prefill(promptIds, promptMask).index_select(0, repeat);
            if (g > 1) { policySession.SelectRows(repeat); referenceSession.SelectRows(repeat); }

            var tokens = Enumerable.Range(0, n).Select(_ => new List<int>(maxNew)).ToArray();
            var logps = Enumerable.Range(0, n).Select(_ => new List<float>(maxNew)).ToArray();
            var stop = new StopReason?[n];
            for (int step = 0; step < maxNew; step++)
            {
                using var stepScope = NewDisposeScope();
                var mixed = Mix(policyLogits, referenceLogits, _beta);                        // (n, V) normalised log-probs
                var next = RolloutEngine.Sample(mixed, options, generator);                   // (n)
                var lp = mixed.gather(1, next.view(n, 1)).view(n);                            // log-prob under the mixture
                var nextArr = next.data<long>().ToArray();
                var lpArr = lp.to_type(ScalarType.Float32).data<float>().ToArray();
                bool allDone = true;
                for (int i = 0; i < n; i++)
                {
                    if (stop[i] is not null) { nextArr[i] = _padId; continue; }
                    int tok = (int)nextArr[i];
                    tokens[i].Add(tok);
                    logps[i].Add(lpArr[i]);
                    if (options.StopAtEos && EosIds.Contains(tok)) stop[i] = StopReason.Eos;
                    else allDone = false;
                }
                if (allDone || step == maxNew - 1) break;
                var fed = tensor(nextArr).view(n, 1);
                policyLogits = policySession.Step(fed).MoveToOuterDisposeScope();
                referenceLogits = referenceSession.Step(fed).MoveToOuterDisposeScope();
            }
            var results = new List<Rollout>(n);
            for (int i = 0; i < n; i++)
            {
                int promptIndex = i / g;
                var comp = tokens[i].ToArray();
                results.Add(new Rollout(promptIndex, i % g, prompts[promptIndex].ToArray(), comp, Tokenizer.Decode(comp, skipSpecialTokens: true),
                    logps[i].ToArray(), stop[i] ?? StopReason.MaxTokens));
            }
            return results;
        }
        finally
        {
            if (policyTraining) _policy.train();
            if (referenceTraining) _reference.train();
        }
    }

    /// <summary>log_softmax((1 − β)·log_softmax(a) + β·log_softmax(b)) over the last dimension: the normalised log-probs of the mixture.</summary>
    public static Tensor Mix(Tensor policyLogits, Tensor referenceLogits, double beta)
    {
        var a = policyLogits.to_type(ScalarType.Float32).log_softmax(-1);
        var b = referenceLogits.to_type(ScalarType.Float32).log_softmax(-1);
        return ((1 - beta) * a + beta * b).log_softmax(-1);
    }
}
