using static TorchSharp.torch;

namespace Sharpen.Generation;

/// <summary>
/// Prompts and completions laid out as the rollout engine and the trainers use them:
/// <c>[pad … prompt | completion … pad]</c>. Prompts are left-padded to a common length P, so
/// every completion starts at column P; completions are right-padded to A.
/// </summary>
/// <param name="InputIds">(N, P+A) int64.</param>
/// <param name="AttentionMask">(N, P+A) int64, 1 for real tokens.</param>
/// <param name="CompletionIds">(N, A) int64.</param>
/// <param name="CompletionMask">(N, A) float32, 1 for real completion tokens.</param>
/// <param name="PromptLength">P.</param>
public sealed record SequenceBatch(Tensor InputIds, Tensor AttentionMask, Tensor CompletionIds, Tensor CompletionMask, long PromptLength)
{
    /// <summary>The rows <paramref name="idx"/> <c>(b)</c> of this batch (same prompt length).</summary>
    public SequenceBatch Rows(Tensor idx) => new(InputIds.index_select(0, idx), AttentionMask.index_select(0, idx),
        CompletionIds.index_select(0, idx), CompletionMask.index_select(0, idx), PromptLength);

    /// <summary>Builds the layout; tensors belong to the current dispose scope.</summary>
    public static SequenceBatch Build(IReadOnlyList<IReadOnlyList<int>> prompts, IReadOnlyList<IReadOnlyList<int>> completions, int padId)
    {
        if (prompts.Count != completions.Count) throw new ArgumentException($"{prompts.Count} prompts but {completions.Count} completions");
        if (prompts.Count == 0) throw new ArgumentException("empty batch");
        int n = prompts.Count;
        int p = prompts.Max(x => x.Count), a = Math.Max(1, completions.Max(x => x.Count));
        if (prompts.Any(x => x.Count == 0)) throw new ArgumentException("a prompt has no tokens");
        var ids = new long[n * (p + a)];
        var mask = new long[n * (p + a)];
        var cids = new long[n * a];
        var cmask = new float[n * a];
        for (int i = 0; i < n; i++)
        {
            var pr = prompts[i];
            int off = i * (p + a) + (p - pr.Count);
            for (int j = 0; j < pr.Count; j++) { ids[off + j] = pr[j]; mask[off + j] = 1; }
            for (int j = 0; j < p - pr.Count; j++) ids[i * (p + a) + j] = padId;
            var c = completions[i];
            for (int j = 0; j < a; j++)
            {
                long tok = j < c.Count ? c[j] : padId;
                ids[i * (p + a) + p + j] = tok;
                cids[i * a + j] = tok;
                if (j < c.Count) { mask[i * (p + a) + p + j] = 1; cmask[i * a + j] = 1; }
            }
        }
        return new SequenceBatch(
            tensor(ids).view(n, p + a), tensor(mask).view(n, p + a),
            tensor(cids).view(n, a), tensor(cmask).view(n, a), p);
    }
}
