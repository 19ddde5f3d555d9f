using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Rewards;

/// <summary>How a process reward model (backbone + <see cref="ScalarHead"/> read at step ends) scores steps; its trainer and <see cref="ProcessRewardModel"/> share it.</summary>
public static class PrmScoring
{
    /// <summary>The head's logits at each step end (N, S) of a built batch.</summary>
    public static Tensor StepLogits(CausalLM model, ScalarHead head, SequenceBatch batch, Tensor columns)
    {
        var hidden = model.Forward(batch.InputIds, batch.AttentionMask, returnHidden: true).Hidden!;
        return head.forward(hidden).gather(1, columns);                                // (N, S)
    }

    /// <summary>σ(head logit) at every step end of each item, without gradients, in micro-batches (leaves the modules in eval mode).</summary>
    public static double[][] ScoreSteps(CausalLM model, ScalarHead head, ITokenizer tokenizer,
        IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)> items, int microBatch, int padId)
    {
        model.eval();
        head.eval();
        var result = new double[items.Count][];
        using var _ = no_grad();
        for (int start = 0; start < items.Count; start += microBatch)
        {
            using var scope = NewDisposeScope();
            var enc = items.Skip(start).Take(microBatch).Select(x => StepEncoding.Encode(tokenizer, x.Prompt, x.Steps)).ToList();
            var (sb, cols, _, _) = StepEncoding.Build(enc, padId);
            var rows = StepEncoding.Rows(StepLogits(model, head, sb, cols).sigmoid(), enc);
            for (int i = 0; i < rows.Length; i++) result[start + i] = rows[i];
        }
        return result;
    }
}
