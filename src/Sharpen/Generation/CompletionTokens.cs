using Sharpen.Models;
using Sharpen.Tokenizers;

namespace Sharpen.Generation;

/// <summary>How trainers and scorers lay out a completion's tokens: its text without special tokens, then EOS.</summary>
public static class CompletionTokens
{
    /// <summary>The end-of-sequence id that closes trained completions: the tokenizer's, else the model config's first.</summary>
    public static int EosId(ITokenizer tokenizer, ModelConfig config) =>
        tokenizer.EosTokenId ?? config.EosTokenIds.FirstOrDefault();

    /// <summary>A completion's ids as trainers score them: the text without special tokens, then EOS.</summary>
    public static int[] Ids(ITokenizer tokenizer, int eos, string completion) =>
        tokenizer.Encode(completion, addSpecialTokens: false).Append(eos).ToArray();
}
