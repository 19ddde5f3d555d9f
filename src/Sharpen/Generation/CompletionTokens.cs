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

    /// <summary>A prompt's ids as trainers and scorers lay them out (with special tokens); throws
    /// <see cref="ArgumentException"/> "<paramref name="what"/> encodes to no tokens" with the prompt when there are none.</summary>
    public static int[] PromptIds(ITokenizer tokenizer, string prompt, string what = "a prompt")
    {
        var p = tokenizer.Encode(prompt).ToArray();
        if (p.Length == 0) throw new ArgumentException($"{what} encodes to no tokens: \"{prompt}\"");
        return p;
    }

    /// <summary>A (prompt, completion) row as trainers score it: <see cref="PromptIds"/> and <see cref="Ids"/>.</summary>
    public static (int[] Prompt, int[] Completion) Row(ITokenizer tokenizer, int eos, string prompt, string completion, string what = "a prompt") =>
        (PromptIds(tokenizer, prompt, what), Ids(tokenizer, eos, completion));
}
