using Sharpen.Models;
using static TorchSharp.torch;

namespace Sharpen.Generation;

/// <summary>Teacher-forced log-probabilities of given completions (reference and old-policy passes).</summary>
public static class Scoring
{
    /// <summary>
    /// log π(completion token | prefix) for every completion position, with gradients if the
    /// caller has them enabled. Returns (N, A); padded positions hold 0.
    /// </summary>
    public static Tensor CompletionLogProbs(CausalLM model, SequenceBatch batch, Tensor? hiddenOut = null)
    {
        long p = batch.PromptLength, a = batch.CompletionIds.shape[1];
        // Only positions P-1 … P+A-2 predict completion tokens; skip the LM head elsewhere.
        var output = model.Forward(batch.InputIds, batch.AttentionMask);
        var logits = output.Logits.narrow(1, p - 1, a);                             // (N, A, V)
        return TokenLogProbs(logits, batch.CompletionIds) * batch.CompletionMask;   // (N, A)
    }

    /// <summary>log_softmax(logits)[target] without materialising more than one (N, A, V) tensor.</summary>
    public static Tensor TokenLogProbs(Tensor logits, Tensor targets)
    {
        var l = logits.to(ScalarType.Float32);                                      // (N, A, V)
        var picked = l.gather(-1, targets.unsqueeze(-1)).squeeze(-1);               // (N, A)
        return picked - l.logsumexp(-1);                                            // (N, A)
    }

    /// <summary>
    /// Batched, gradient-free scoring of many sequences in micro-batches. Returns per sequence the
    /// log-probs of its completion tokens (length = completion length).
    /// </summary>
    public static float[][] Score(CausalLM model, IReadOnlyList<IReadOnlyList<int>> prompts,
        IReadOnlyList<IReadOnlyList<int>> completions, int padId, int microBatch = 64)
    {
        var result = new float[prompts.Count][];
        using var _ = no_grad();
        for (int start = 0; start < prompts.Count; start += microBatch)
        {
            using var scope = NewDisposeScope();
            int n = Math.Min(microBatch, prompts.Count - start);
            var batch = SequenceBatch.Build(prompts.Skip(start).Take(n).ToList(), completions.Skip(start).Take(n).ToList(), padId);
            var lp = CompletionLogProbs(model, batch);                              // (n, A)
            long a = lp.shape[1];
            var flat = lp.contiguous().data<float>().ToArray();
            for (int i = 0; i < n; i++)
            {
                int len = completions[start + i].Count;
                result[start + i] = flat.AsSpan(i * (int)a, len).ToArray();
            }
        }
        return result;
    }

    /// <summary>
    /// <see cref="Score"/> summed per sequence: log π(completion | prompt) for each pair, accumulated in double precision.
    /// </summary>
    public static float[] SummedScores(CausalLM model, IReadOnlyList<IReadOnlyList<int>> prompts,
        IReadOnlyList<IReadOnlyList<int>> completions, int padId, int microBatch = 64) =>
        Score(model, prompts, completions, padId, microBatch).Select(Sum).ToArray();

    static float Sum(float[] xs) { double s = 0; foreach (var x in xs) s += x; return (float)s; }
}
