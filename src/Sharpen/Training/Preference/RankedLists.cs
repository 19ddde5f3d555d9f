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
internal sealed record RankedList(int[] Prompt, int[][] Completions, double[] Scores);

/// <summary>
/// Turns a preference dataset back into ranked lists and computes TPO's listwise loss on a batch of them. Rows from the
/// ranked format (<c>{"prompt", "completions", "ranks"}</c>, which the loader expands to pairs carrying <c>rank_chosen</c> and
/// <c>rank_rejected</c>) are regrouped per prompt into one list of their distinct completions with ψ = maxRank − rank; a plain
/// pair without ranks is a list of two with ψ = [1, 0].
/// </summary>
internal static class RankedLists
{
    /// <summary>Regroups <paramref name="pairs"/> into lists (first-appearance order of prompts and completions).</summary>
    public static List<RankedList> Group(IReadOnlyList<PreferenceExample> pairs, ITokenizer tokenizer, int eos)
    {
        var lists = new List<RankedList>();
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
            else lists.Add(new RankedList(Prompt(tokenizer, e.Prompt), [CompletionTokens.Ids(tokenizer, eos, e.Chosen), CompletionTokens.Ids(tokenizer, eos, e.Rejected)], [1, 0]));
        }
        foreach (var prompt in order)
        {
            var (unordered, ranks) = ranked[prompt];
            var texts = unordered.OrderBy(t => ranks[t]).ToList();                              // best first (stable)
            int max = texts.Max(t => ranks[t]);
            lists.Add(new RankedList(Prompt(tokenizer, prompt), [.. texts.Select(t => CompletionTokens.Ids(tokenizer, eos, t))],
                [.. texts.Select(t => (double)(max - ranks[t]))]));
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
        var index = new long[b * k];
        var refs = new float[b * k];
        var scores = new float[b * k];
        var mask = new float[b * k];
        int at = 0;
        for (int i = 0; i < b; i++)
            for (int j = 0; j < k; j++)
            {
                bool real = j < lists[i].Completions.Length;
                index[i * k + j] = real ? at + j : at;                                           // padding points at a real row; masked out
                refs[i * k + j] = real ? reference[i][j] : 0;
                scores[i * k + j] = real ? (float)lists[i].Scores[j] : 0;
                mask[i * k + j] = real ? 1 : 0;
                if (j == k - 1) at += lists[i].Completions.Length;
            }
        var policyLp = summed.index_select(0, tensor(index)).reshape(b, k);                   // (B, K)
        var rewards = policyLp - tensor(refs).reshape(b, k).to_type(policyLp.dtype);          // (B, K)  log π_θ/π_ref
        return ListwisePreferenceLosses.Tpo(rewards, tensor(scores).reshape(b, k), tensor(mask).reshape(b, k), beta);
    }

    static int[] Prompt(ITokenizer tokenizer, string prompt)
    {
        var p = tokenizer.Encode(prompt).ToArray();
        if (p.Length == 0) throw new ArgumentException($"a pair's prompt encodes to no tokens: \"{prompt}\"");
        return p;
    }
}
