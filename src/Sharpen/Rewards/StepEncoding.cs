using Sharpen.Generation;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Rewards;

/// <summary>A prompt and its steps as token ids: <see cref="StepEnds"/>[t] is the index in <see cref="Completion"/> of step t's last token.</summary>
/// <param name="Prompt">Prompt ids with the tokenizer's special tokens.</param>
/// <param name="Completion">The steps' ids, concatenated (plus EOS when asked for).</param>
/// <param name="StepEnds">Per step, the completion index of its last token.</param>
public sealed record EncodedSteps(int[] Prompt, int[] Completion, int[] StepEnds);

/// <summary>
/// How process reward models tokenise a solution: the prompt once (with special tokens), then each step on its own
/// (without special tokens), the ids concatenated. Encoding step by step, rather than the whole text once and mapping
/// character offsets back, works for every <see cref="ITokenizer"/> (neither tokenizer here exposes offsets) and makes the
/// last token of a step exact: a BPE merge can never straddle a step boundary. The price is that for BPE tokenizers the
/// ids at a boundary may differ from tokenising the whole text; training and scoring both use this rule, so they agree.
/// </summary>
public static class StepEncoding
{
    /// <summary>Encodes one item; throws <see cref="ArgumentException"/> naming the step that encodes to no tokens.</summary>
    public static EncodedSteps Encode(ITokenizer tokenizer, string prompt, IReadOnlyList<string> steps, int? eos = null)
    {
        var p = CompletionTokens.PromptIds(tokenizer, prompt);
        if (steps.Count == 0) throw new ArgumentException($"a solution of \"{prompt}\" has no steps");
        var ids = new List<int>();
        var ends = new int[steps.Count];
        for (int t = 0; t < steps.Count; t++)
        {
            var s = tokenizer.Encode(steps[t], addSpecialTokens: false);
            if (s.Count == 0) throw new ArgumentException($"step {t} (\"{steps[t]}\") of a solution of \"{prompt}\" encodes to no tokens");
            ids.AddRange(s);
            ends[t] = ids.Count - 1;
        }
        if (eos is { } e) ids.Add(e);
        return new EncodedSteps(p, ids.ToArray(), ends);
    }

    /// <summary>
    /// The <see cref="SequenceBatch"/> of <paramref name="items"/> plus, per row, the input column of each step's last token
    /// <c>(N, S)</c> int64 (P + completion index; padded steps point at the row's first step) and the step mask <c>(N, S)</c>
    /// float32. Tensors belong to the current dispose scope.
    /// </summary>
    public static (SequenceBatch Batch, Tensor Columns, Tensor CompletionColumns, Tensor StepMask) Build(IReadOnlyList<EncodedSteps> items, int padId)
    {
        var sb = SequenceBatch.Build(items.Select(e => (IReadOnlyList<int>)e.Prompt).ToList(),
            items.Select(e => (IReadOnlyList<int>)e.Completion).ToList(), padId);
        int n = items.Count, s = Math.Max(1, items.Max(e => e.StepEnds.Length));
        var cols = new long[n * s];
        var mask = new float[n * s];
        for (int i = 0; i < n; i++)
            for (int t = 0; t < s; t++)
            {
                bool real = t < items[i].StepEnds.Length;
                cols[i * s + t] = real ? items[i].StepEnds[t] : items[i].StepEnds[0];
                mask[i * s + t] = real ? 1f : 0f;
            }
        var completionCols = tensor(cols).view(n, s);
        return (sb, completionCols + sb.PromptLength, completionCols, tensor(mask).view(n, s));
    }

    /// <summary>A (N, S) float32 tensor of per-step values (labels), 0 on padding.</summary>
    public static Tensor Values(IReadOnlyList<IReadOnlyList<double>> values)
    {
        int n = values.Count, s = Math.Max(1, values.Max(v => v.Count));
        var a = new float[n * s];
        for (int i = 0; i < n; i++) for (int t = 0; t < values[i].Count; t++) a[i * s + t] = (float)values[i][t];
        return tensor(a).view(n, s);
    }

    /// <summary>Rows of a (N, S) tensor cut to each item's step count.</summary>
    public static double[][] Rows(Tensor values, IReadOnlyList<EncodedSteps> items)
    {
        var v = values.to(ScalarType.Float64).contiguous().data<double>().ToArray();
        long s = values.shape[1];
        return items.Select((e, i) => Enumerable.Range(0, e.StepEnds.Length).Select(t => v[i * s + t]).ToArray()).ToArray();
    }
}
