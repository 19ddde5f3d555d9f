using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Rewards;

/// <summary>How a Bradley–Terry reward model (backbone + <see cref="ScalarHead"/>) encodes and scores a completion; the trainer and <see cref="ModelReward"/> share it.</summary>
public static class RewardModelScoring
{
    /// <summary>Rewards (N) of a batch: the head's value at each row's last real token.</summary>
    public static Tensor Rewards(CausalLM model, ScalarHead head, SequenceBatch batch)
    {
        var hidden = model.Forward(batch.InputIds, batch.AttentionMask, returnHidden: true).Hidden!;
        return ScalarHead.AtLastToken(head.forward(hidden), batch.AttentionMask);
    }

    /// <summary>Prompt tokens (with special tokens) and completion tokens followed by EOS, as the trainer and <see cref="ModelReward"/> encode them.</summary>
    public static (int[] Prompt, int[] Completion) Encode(ITokenizer tokenizer, ModelConfig config, string prompt, string completion)
        => CompletionTokens.Row(tokenizer, CompletionTokens.EosId(tokenizer, config), prompt, completion);
}
