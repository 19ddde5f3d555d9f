namespace Sharpen.Training;

/// <summary>The seeded order in which every trainer walks its data, and the token layout of a completion.</summary>
static class DataOrder
{
    /// <summary>
    /// The order of an epoch: a Fisher–Yates shuffle seeded by (seed, epoch), so a resumed run that
    /// knows (epoch, position) replays exactly the batches an uninterrupted run would have seen.
    /// </summary>
    public static int[] Permutation(int n, int seed, int epoch)
    {
        var rng = new Random(unchecked(seed * 1_000_003 + epoch) & int.MaxValue);   // not HashCode: that is randomised per process
        var idx = Enumerable.Range(0, n).ToArray();
        for (int i = n - 1; i > 0; i--) { int j = rng.Next(i + 1); (idx[i], idx[j]) = (idx[j], idx[i]); }
        return idx;
    }

    /// <summary>The end-of-sequence id that closes trained completions: the tokenizer's, else the model config's first.</summary>
    public static int EosId(Tokenizers.ITokenizer tokenizer, Models.ModelConfig config) =>
        tokenizer.EosTokenId ?? config.EosTokenIds.FirstOrDefault();

    /// <summary>A completion's ids as trainers score them: the text without special tokens, then EOS.</summary>
    public static int[] CompletionIds(Tokenizers.ITokenizer tokenizer, int eos, string completion) =>
        tokenizer.Encode(completion, addSpecialTokens: false).Append(eos).ToArray();
}
