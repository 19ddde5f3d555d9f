using Sharpen.Algorithms;
using Sharpen.Generation;
using Sharpen.Rewards;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Training.Rl;

/// <summary>
/// <c>rl.fine_grained</c> (FGAIF, arXiv:2404.05046): the recipe's reward functions score every segment (sentence or step) of each
/// completion on its own; the weighted sum of their scores goes on the segment's last token, so PPO's GAE sees dense rewards.
/// </summary>
internal static class SegmentRewardScoring
{
    /// <summary>Per rollout, its segments' (last response-token index, weighted score); a completion with no segment gets none.</summary>
    public static List<(int Token, double Reward)[]> Score(IReadOnlyList<WeightedReward> rewards, IReadOnlyList<RlPrompt> prompts,
        IReadOnlyList<Rollout> rollouts, ITokenizer tokenizer, SegmentUnit unit, CancellationToken cancel)
    {
        var contexts = new List<RewardContext>();
        var owners = new List<(int Row, int Token)>();
        for (int i = 0; i < rollouts.Count; i++)
        {
            var r = rollouts[i];
            if (r.CompletionIds.Length == 0) continue;
            var charEnds = new int[r.CompletionIds.Length];                                  // decoded length of each token prefix
            for (int t = 0; t < charEnds.Length; t++) charEnds[t] = tokenizer.Decode(r.CompletionIds[..(t + 1)]).Length;
            var text = tokenizer.Decode(r.CompletionIds);
            var prompt = prompts[r.PromptIndex];
            int previousEnd = -1;
            foreach (var (start, end) in TextSegments.Split(text, unit))
            {
                int token = FineGrainedRewards.TokenIndexOfCharEnd(charEnds, end);
                contexts.Add(new RewardContext(prompt.Prompt, text[start..end], prompt.Fields, token - previousEnd));
                owners.Add((i, token));
                previousEnd = token;
            }
        }
        var result = rollouts.Select(_ => Array.Empty<(int, double)>()).ToList();
        if (contexts.Count == 0) return result;
        var total = RewardCombiner.ScoreAsync(rewards, contexts, cancel).AsTask().GetAwaiter().GetResult().Total;
        foreach (var g in owners.Select((o, k) => (o.Row, o.Token, Reward: total[k])).GroupBy(x => x.Row))
            result[g.Key] = g.Select(x => (x.Token, x.Reward)).ToArray();
        return result;
    }

    /// <summary>The segment rewards placed on their tokens <c>(B, A)</c> (then PCPG-smoothed with a uniform window of half-width
    /// <paramref name="smoothHalfWidth"/> when it is positive).</summary>
    public static Tensor Place(IReadOnlyList<(int Token, double Reward)[]> segments, Tensor responseMask, int smoothHalfWidth)
    {
        using var scope = NewDisposeScope();
        int b = segments.Count, s = Math.Max(1, segments.Max(x => x.Length));
        var ends = new long[b * s];
        var values = new float[b * s];
        var mask = new float[b * s];
        for (int i = 0; i < b; i++)
            for (int k = 0; k < segments[i].Length; k++)
                (ends[i * s + k], values[i * s + k], mask[i * s + k]) = (segments[i][k].Token, (float)segments[i][k].Reward, 1f);
        var placed = FineGrainedRewards.PlaceSegmentRewards(tensor(values).view(b, s), tensor(ends).view(b, s), tensor(mask).view(b, s), responseMask);   // (B, A)
        if (smoothHalfWidth > 0) placed = FineGrainedRewards.Smooth(placed, responseMask, FineGrainedRewards.UniformKernel(smoothHalfWidth));
        return placed.MoveToOuterDisposeScope();
    }
}
