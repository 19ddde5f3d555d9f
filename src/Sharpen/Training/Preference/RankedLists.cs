using System.Globalization;
using Sharpen.Algorithms;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Training.Preference;

/// <summary>A tokenized ranked list of completions of one prompt, for a listwise loss (TPO).</summary>
/// <param name="Prompt">The prompt's token ids.</param>
/// <param name="Completions">Each completion's token ids (ending with EOS), K ≥ 2.</param>
/// <param name="Scores">Each completion's label ψ (higher is better): maxRank − rank for ranked rows, [1, 0] for a plain pair.</param>
/// <param name="StepOf">With TPO's Adaptive Step Reward: per completion, the step index of each of its tokens (EOS belongs to
/// the last step); null otherwise.</param>
internal sealed record RankedList(int[] Prompt, int[][] Completions, double[] Scores, int[][]? StepOf = null);

/// <summary>
/// Turns a preference dataset back into ranked lists and computes TPO's listwise loss on a batch of them. Rows from the
/// ranked format (<c>{"prompt", "completions", "ranks"}</c>, which the loader expands to pairs carrying <c>rank_chosen</c> and
/// <c>rank_rejected</c>) are regrouped per prompt into one list of their distinct completions with ψ = maxRank − rank; a plain
/// pair without ranks is a list of two with ψ = [1, 0]. With a step splitter (TPO's Adaptive Step Reward) each completion is
/// cut into steps and encoded step by step (<see cref="Sharpen.Rewards.StepEncoding"/>'s rule: a token never straddles two steps).
/// </summary>
internal static class RankedLists
{
    /// <summary>Regroups <paramref name="pairs"/> into lists (first-appearance order of prompts and completions).</summary>
    public static List<RankedList> Group(IReadOnlyList<PreferenceExample> pairs, ITokenizer tokenizer, int eos, StepSplitter? steps = null)
    {
        var lists = GroupTexts(pairs, tokenizer, eos);
        if (steps is null) return lists.Select(l => new RankedList(l.Prompt, [.. l.Texts.Select(t => CompletionTokens.Ids(tokenizer, eos, t))], l.Scores)).ToList();
        return lists.Select(l =>
        {
            var encoded = l.Texts.Select(t => EncodeSteps(tokenizer, eos, steps, t)).ToArray();
            return new RankedList(l.Prompt, [.. encoded.Select(e => e.Ids)], l.Scores, [.. encoded.Select(e => e.StepOf)]);
        }).ToList();
    }

    /// <summary>A completion encoded step by step plus EOS, and the step index of each token (EOS in the last step). Steps that
    /// encode to no tokens are left out; an empty completion is one step holding EOS.</summary>
    internal static (int[] Ids, int[] StepOf) EncodeSteps(ITokenizer tokenizer, int eos, StepSplitter steps, string completion)
    {
        var ids = new List<int>();
        var stepOf = new List<int>();
        int step = 0;
        foreach (var s in steps.Split(completion))
        {
            var t = tokenizer.Encode(s, addSpecialTokens: false);
            if (t.Count == 0) continue;
            ids.AddRange(t);
            stepOf.AddRange(Enumerable.Repeat(step++, t.Count));
        }
        ids.Add(eos);
        stepOf.Add(Math.Max(0, step - 1));
        return ([.. ids], [.. stepOf]);
    }

    /// <summary>The lists as texts, before tokenizing the completions.</summary>
    static List<(int[] Prompt, List<string> Texts, double[] Scores)> GroupTexts(IReadOnlyList<PreferenceExample> pairs, ITokenizer tokenizer, int eos)
    {
        var lists = new List<(int[] Prompt, List<string> Texts, double[] Scores)>();
        var ranked = new Dictionary<string, (List<string> Texts, Dictionary<string, int> Ranks)>(StringComparer.Ordinal);
        var order = new List<string>();
        for (int i = 0; i < pairs.Count; i++)
        {
            var e = pairs[i];
            if (e.Fields.TryGetValue("rank_chosen", out var rc) && e.Fields.TryGetValue("rank_rejected", out var rr))
            {
                if (!ranked.TryGetValue(e.Prompt, out var g)) { ranked[e.Prompt] = g = ([], new(StringComparer.Ordinal)); order.Add(e.Prompt); }
                foreach (var (text, rank) in new[] { (e.Chosen, rc), (e.Rejected, rr) })
                {
                    int r = int.Parse(rank, CultureInfo.InvariantCulture);
                    if (g.Ranks.TryGetValue(text, out var seen) && seen != r)
                        throw new ArgumentException($"pair {i + 1}: the completion \"{text}\" of prompt \"{e.Prompt}\" has ranks {seen} and {r}");
                    if (g.Ranks.TryAdd(text, r)) g.Texts.Add(text);
                }
            }
            else lists.Add((Prompt(tokenizer, e.Prompt), [e.Chosen, e.Rejected], [1, 0]));
        }
        foreach (var prompt in order)
        {
            var (unordered, ranks) = ranked[prompt];
            var texts = unordered.OrderBy(t => ranks[t]).ToList();                              // best first (stable)
            int max = texts.Max(t => ranks[t]);
            lists.Add((Prompt(tokenizer, prompt), texts, [.. texts.Select(t => (double)(max - ranks[t]))]));
        }
        return lists;
    }

    /// <summary>Summed log-probs (no gradients) of every completion of every list under <paramref name="model"/>.</summary>
    public static float[][] SummedLogProbs(CausalLM model, IReadOnlyList<RankedList> lists, int padId)
    {
        var flat = Scoring.SummedScores(model, [.. lists.SelectMany(l => l.Completions.Select(_ => (IReadOnlyList<int>)l.Prompt))],
            [.. lists.SelectMany(l => l.Completions.Select(c => (IReadOnlyList<int>)c))], padId);
        var result = new float[lists.Count][];
        int at = 0;
        for (int i = 0; i < lists.Count; i++) { result[i] = flat.AsSpan(at, lists[i].Completions.Length).ToArray(); at += lists[i].Completions.Length; }
        return result;
    }

    /// <summary>Per-token log-probs (no gradients) of every completion of every list under <paramref name="model"/>:
    /// [list][completion][token].</summary>
    public static float[][][] TokenLogProbs(CausalLM model, IReadOnlyList<RankedList> lists, int padId)
    {
        var flat = Scoring.Score(model, [.. lists.SelectMany(l => l.Completions.Select(_ => (IReadOnlyList<int>)l.Prompt))],
            [.. lists.SelectMany(l => l.Completions.Select(c => (IReadOnlyList<int>)c))], padId);
        var result = new float[lists.Count][][];
        int at = 0;
        for (int i = 0; i < lists.Count; i++) { result[i] = flat.AsSpan(at, lists[i].Completions.Length).ToArray(); at += lists[i].Completions.Length; }
        return result;
    }

    /// <summary>
    /// TPO with its Adaptive Step Reward on a batch: one policy pass over every completion with the final hidden states;
    /// per step, the summed log-ratio Σ (log π_θ − log π_ref) over its tokens, its token count and the mean hidden state of
    /// its tokens (each token's state at its own input position); then
    /// <see cref="ListwisePreferenceLosses.AdaptiveStepRewards"/> (weights 1 + cos with the top-ranked response's same step)
    /// and <see cref="ListwisePreferenceLosses.Tpo"/> on the resulting (B, K) rewards. The lists need <see cref="RankedList.StepOf"/>.
    /// </summary>
    public static (Tensor Loss, PreferenceMetrics Metrics) AdaptiveLoss(CausalLM policy, IReadOnlyList<RankedList> lists, IReadOnlyList<float[][]> reference,
        double beta, int padId)
    {
        if (lists.Any(l => l.StepOf is null)) throw new ArgumentException("the adaptive step reward needs lists grouped with a step splitter");
        int b = lists.Count, k = lists.Max(l => l.Completions.Length);
        var prompts = lists.SelectMany(l => l.Completions.Select(_ => (IReadOnlyList<int>)l.Prompt)).ToList();
        var completions = lists.SelectMany(l => l.Completions.Select(c => (IReadOnlyList<int>)c)).ToList();
        var stepOf = lists.SelectMany(l => l.StepOf!).ToList();
        var refs = lists.SelectMany((l, i) => reference[i]).ToList();
        var sb = SequenceBatch.Build(prompts, completions, padId);
        long p = sb.PromptLength, a = sb.CompletionIds.shape[1];
        int n = completions.Count, s = stepOf.Max(x => x[^1]) + 1;
        var output = policy.Forward(sb.InputIds, sb.AttentionMask, returnHidden: true);
        var lp = Scoring.TokenLogProbs(output.Logits.narrow(1, p - 1, a), sb.CompletionIds) * sb.CompletionMask;   // (N, A)
        var hidden = output.Hidden!.narrow(1, p, a).to_type(ScalarType.Float32);             // (N, A, D)  state at each completion token
        var refTok = new float[n * a];
        var member = new float[n * s * a];                                                   // one-hot step of each token
        for (int r = 0; r < n; r++)
            for (int t = 0; t < completions[r].Count; t++)
            {
                refTok[r * a + t] = refs[r][t];
                member[(r * s + stepOf[r][t]) * a + t] = 1;
            }
        var m = tensor(member).view(n, s, a);                                                 // (N, S, A)
        var ratio = lp - tensor(refTok).view(n, a);                                          // (N, A)  log π_θ − log π_ref
        var stepRatio = m.bmm(ratio.unsqueeze(2)).squeeze(2);                                // (N, S)
        var stepLen = m.sum(2);                                                              // (N, S)
        var stepEmb = m.bmm(hidden) / stepLen.clamp_min(1).unsqueeze(2);                    // (N, S, D)
        var (index, scores, mask) = Padded(lists, k);
        var idx = tensor(index);
        var listMask = tensor(mask).view(b, k);                                              // (B, K)
        var rewards = ListwisePreferenceLosses.AdaptiveStepRewards(
            stepRatio.index_select(0, idx).view(b, k, s),                                    // (B, K, S)
            stepLen.index_select(0, idx).view(b, k, s) * listMask.unsqueeze(2),              // (B, K, S)  padding responses have no steps
            stepEmb.index_select(0, idx).view(b, k, s, -1));                                 // (B, K, S, D)
        return ListwisePreferenceLosses.Tpo(rewards, tensor(scores).view(b, k), listMask, beta);
    }

    /// <summary>
    /// TPO on a batch: one policy pass over every completion, rewards r = Σ log π_θ − Σ log π_ref as a padded <c>(B, K)</c>
    /// matrix with a list mask, then <see cref="ListwisePreferenceLosses.Tpo"/> with LiPO-λ weights.
    /// </summary>
    public static (Tensor Loss, PreferenceMetrics Metrics) Loss(CausalLM policy, IReadOnlyList<RankedList> lists, IReadOnlyList<float[]> reference,
        double beta, int padId)
    {
        int b = lists.Count, k = lists.Max(l => l.Completions.Length);
        var sb = SequenceBatch.Build([.. lists.SelectMany(l => l.Completions.Select(_ => (IReadOnlyList<int>)l.Prompt))],
            [.. lists.SelectMany(l => l.Completions.Select(c => (IReadOnlyList<int>)c))], padId);
        var summed = Scoring.CompletionLogProbs(policy, sb).sum(1);                            // (N) all completions
        var (index, scores, mask) = Padded(lists, k);
        var refs = new float[b * k];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < lists[i].Completions.Length; j++) refs[i * k + j] = reference[i][j];
        var policyLp = summed.index_select(0, tensor(index)).reshape(b, k);                   // (B, K)
        var rewards = policyLp - tensor(refs).reshape(b, k).to_type(policyLp.dtype);          // (B, K)  log π_θ/π_ref
        return ListwisePreferenceLosses.Tpo(rewards, tensor(scores).reshape(b, k), tensor(mask).reshape(b, k), beta);
    }

    /// <summary>The padded <c>(B, K)</c> layout of a batch of lists whose completions were scored as one flat batch: for
    /// each slot the flat row to read (padding points at a real row of its list and is masked out), the slot's rank score
    /// (0 for padding) and the list mask.</summary>
    static (long[] Index, float[] Scores, float[] Mask) Padded(IReadOnlyList<RankedList> lists, int k)
    {
        int b = lists.Count;
        var index = new long[b * k];
        var scores = new float[b * k];
        var mask = new float[b * k];
        int at = 0;
        for (int i = 0; i < b; i++)
        {
            for (int j = 0; j < k; j++)
            {
                bool real = j < lists[i].Completions.Length;
                index[i * k + j] = real ? at + j : at;
                scores[i * k + j] = real ? (float)lists[i].Scores[j] : 0;
                mask[i * k + j] = real ? 1 : 0;
            }
            at += lists[i].Completions.Length;
        }
        return (index, scores, mask);
    }

    static int[] Prompt(ITokenizer tokenizer, string prompt) => CompletionTokens.PromptIds(tokenizer, prompt, "a pair's prompt");
}
