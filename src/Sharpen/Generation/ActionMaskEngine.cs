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
        bool policyTraining = _policy.training, maskTraining = mask.training;
        _policy.eval(); mask.eval();
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
            var am = new long[count * p];
            for (int i = 0; i < count; i++)
            {
                int pad = p - prompts[i].Count;
                for (int j = 0; j < p; j++) { ids[i * p + j] = j < pad ? _padId : prompts[i][j - pad]; am[i * p + j] = j < pad ? 0 : 1; }
            }
            var promptIds = tensor(ids).view(count, p);
            var promptMask = tensor(am).view(count, p);
            var repeat = arange(count, dtype: ScalarType.Int64).repeat_interleave(g);   // (n)
            using var policySession = _policy.StartDecoding(count, total);
            using var maskSession = mask.StartDecoding(count, total);
            var policyLogits = policySession.Prefill(promptIds, promptMask).index_select(0, repeat);
            var maskLogits = maskSession.Prefill(promptIds, promptMask).index_select(0, repeat);
            if (g > 1) { policySession.SelectRows(repeat); maskSession.SelectRows(repeat); }

            var tokens = Enumerable.Range(0, n).Select(_ => new List<int>(maxNew)).ToArray();
            var logps = Enumerable.Range(0, n).Select(_ => new List<float>(maxNew)).ToArray();
            var stop = new StopReason?[n];
            for (int step = 0; step < maxNew; step++)
            {
                using var stepScope = NewDisposeScope();
                var masked = Apply(policyLogits, TopPKeep(maskLogits, _topP));              // (n, V)
                var next = RolloutEngine.Sample(masked, options, generator);                 // (n)
                var lp = masked.log_softmax(-1).gather(1, next.view(n, 1)).view(n);         // log-prob under the masked policy
                var nextArr = next.data<long>().ToArray();
                var lpArr = lp.data<float>().ToArray();
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
                maskLogits = maskSession.Step(fed).MoveToOuterDisposeScope();
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
            if (maskTraining) mask.train();
        }
    }
}
