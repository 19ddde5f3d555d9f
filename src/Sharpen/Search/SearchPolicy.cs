using Sharpen.Data;
using Sharpen.Generation;

namespace Sharpen.Search;

/// <summary>A request for <paramref name="Count"/> continuations of <c>prompt + prefix</c>.</summary>
/// <param name="Prompt">The problem's prompt.</param>
/// <param name="Prefix">The partial completion so far (concatenated steps; empty at the root).</param>
/// <param name="Count">Continuations wanted.</param>
/// <param name="OneStep">True: stop each continuation at the next step boundary; false: continue to the end.</param>
/// <param name="MaxTokens">Most tokens generated per continuation (the strategy keeps Count × MaxTokens within its budget).</param>
/// <param name="Temperature">Sampling temperature; null for the policy's own; 0 is greedy.</param>
public sealed record ContinuationRequest(string Prompt, string Prefix, int Count, bool OneStep, int MaxTokens, double? Temperature = null);

/// <summary>One sampled continuation.</summary>
/// <param name="Text">The kept text (one step, or the rest of the solution).</param>
/// <param name="Tokens">Tokens generated for it, including any part cut off after the step boundary.</param>
/// <param name="KeptTokens">Tokens covering <paramref name="Text"/> (what the log-probability sums over).</param>
/// <param name="LogProb">Sum of per-token log-probabilities (untempered) of the kept tokens.</param>
/// <param name="Finished">Whether the solution ends here: end-of-sequence, the completion length limit, or (to the end)
/// the token limit. Strategies also treat a prefix with an extractable final answer as finished.</param>
public sealed record Continuation(string Text, int Tokens, int KeptTokens, double LogProb, bool Finished)
{
    /// <summary>exp(mean token log-probability): a length-normalised probability, the prior MCTS uses.</summary>
    public double MeanTokenProbability => KeptTokens == 0 ? 1.0 : Math.Exp(LogProb / KeptTokens);
}

/// <summary>What search needs from a policy: sampled continuations of partial solutions, with their cost.</summary>
public interface ISearchPolicy
{
    /// <summary>Most tokens of one step.</summary>
    int MaxStepTokens { get; }

    /// <summary>Most tokens of a whole completion.</summary>
    int MaxTotalTokens { get; }

    /// <summary>Samples every request's continuations (results request by request, <c>Count</c> each, in order),
    /// adding generated tokens and forward passes to <paramref name="meter"/>. Same seed, same continuations.</summary>
    IReadOnlyList<IReadOnlyList<Continuation>> Sample(IReadOnlyList<ContinuationRequest> requests, long seed, SearchMeter meter);
}

/// <summary>
/// A language model as a search policy. Requests that share (one-step, token limit, temperature) go to the
/// <see cref="RolloutEngine"/> in one <c>Generate</c> call, one row per continuation, prompt text = prompt + prefix.
/// One-step requests stop at the splitter's stop strings; the kept step is the text up to the first boundary
/// (<see cref="StepSplitter.FirstStep"/>), so a regex splitter (no stop strings) cuts after generation and the
/// tokens past the boundary still count. Forward passes per chunk of <see cref="SamplingOptions.MaxBatchSequences"/>
/// rows = the longest completion's token count (one prefill + one pass per further decode step).
/// </summary>
public sealed class LmSearchPolicy : ISearchPolicy
{
    readonly RolloutEngine _engine;
    readonly StepSplitter _steps;
    readonly double _temperature;

    /// <summary>Creates the policy.</summary>
    public LmSearchPolicy(RolloutEngine engine, StepSplitter steps, double temperature = 1.0, int maxStepTokens = 32, int maxTotalTokens = 64)
    {
        if (!(temperature >= 0)) throw new ArgumentException($"temperature must be ≥ 0, got {temperature}");
        if (maxStepTokens < 1) throw new ArgumentException($"max_step_tokens must be ≥ 1, got {maxStepTokens}");
        if (maxTotalTokens < 1) throw new ArgumentException($"max_total_tokens must be ≥ 1, got {maxTotalTokens}");
        (_engine, _steps, _temperature) = (engine, steps.Validate(), temperature);
        (MaxStepTokens, MaxTotalTokens) = (maxStepTokens, maxTotalTokens);
    }

    /// <inheritdoc />
    public int MaxStepTokens { get; }
    /// <inheritdoc />
    public int MaxTotalTokens { get; }

    /// <summary>Rows per batched model call (<see cref="SamplingOptions.MaxBatchSequences"/>).</summary>
    public int MaxBatchSequences { get; init; } = 256;

    /// <inheritdoc />
    public IReadOnlyList<IReadOnlyList<Continuation>> Sample(IReadOnlyList<ContinuationRequest> requests, long seed, SearchMeter meter)
    {
        var results = new Continuation[requests.Count][];
        var tok = _engine.Tokenizer;
        // Each request's encoded prompt + prefix, and the prefix's own token count (for the completion length limit).
        var rows = new List<(int Request, int Slot, IReadOnlyList<int> Ids, int MaxNew, int PrefixTokens)>();
        for (int r = 0; r < requests.Count; r++)
        {
            var q = requests[r];
            if (q.Count < 1) throw new ArgumentException($"a continuation request needs Count ≥ 1, got {q.Count}");
            results[r] = new Continuation[q.Count];
            var ids = tok.Encode(q.Prompt + q.Prefix);
            int prefixTokens = q.Prefix.Length == 0 ? 0 : Math.Max(0, ids.Count - tok.Encode(q.Prompt).Count);
            int maxNew = Math.Min(q.MaxTokens, MaxTotalTokens - prefixTokens);
            if (q.OneStep) maxNew = Math.Min(maxNew, MaxStepTokens);
            for (int s = 0; s < q.Count; s++)
            {
                if (maxNew < 1) results[r][s] = new Continuation("", 0, 0, 0, Finished: MaxTotalTokens - prefixTokens < 1);
                else rows.Add((r, s, ids, maxNew, prefixTokens));
            }
        }
        int call = 0;
        foreach (var group in rows.GroupBy(x => (requests[x.Request].OneStep, x.MaxNew, requests[x.Request].Temperature ?? _temperature)))
        {
            var (oneStep, maxNew, temperature) = group.Key;
            var members = group.ToList();
            var o = new SamplingOptions
            {
                Temperature = temperature, MaxNewTokens = maxNew, Seed = unchecked(seed * 1_000_003 + call++),
                StopStrings = oneStep ? _steps.StopStrings : [], MaxBatchSequences = MaxBatchSequences,
            };
            var outs = _engine.Generate(members.Select(m => m.Ids).ToList(), o);
            long passes = 0;
            for (int start = 0; start < outs.Count; start += MaxBatchSequences)
                passes += outs.Skip(start).Take(MaxBatchSequences).Max(x => x.CompletionIds.Length);
            meter.AddGeneration(outs.Sum(x => (long)x.CompletionIds.Length), passes);
            for (int i = 0; i < outs.Count; i++)
            {
                var (r, s, _, _, prefixTokens) = members[i];
                results[r][s] = ToContinuation(outs[i], oneStep, prefixTokens);
            }
        }
        return results;
    }

    Continuation ToContinuation(Rollout x, bool oneStep, int prefixTokens)
    {
        string text = x.CompletionText;
        int kept = x.CompletionIds.Length;
        bool cut = false;
        if (oneStep)
        {
            var first = _steps.FirstStep(text);
            if (first.Length < text.Length)
            {
                text = first;
                cut = true;
                kept = KeptTokens(x.CompletionIds, first.Length);
            }
        }
        double logProb = 0;
        for (int t = 0; t < kept; t++) logProb += x.LogProbs[t];
        bool atLimit = prefixTokens + x.CompletionIds.Length >= MaxTotalTokens;
        bool finished = !cut && (x.Stop == StopReason.Eos || atLimit || (!oneStep && x.Stop == StopReason.MaxTokens));
        return new Continuation(text, x.CompletionIds.Length, kept, logProb, finished);
    }

    // The fewest leading tokens whose decoded text covers the first `chars` characters.
    int KeptTokens(int[] ids, int chars)
    {
        for (int m = 1; m <= ids.Length; m++)
            if (_engine.Tokenizer.Decode(ids.AsSpan(0, m).ToArray(), skipSpecialTokens: true).Length >= chars) return m;
        return ids.Length;
    }
}
