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

/// <summary>
/// A walk through <c>count</c> items in the seeded epoch orders of <see cref="DataOrder.Permutation"/>, batch after batch,
/// wrapping into the next epoch mid-batch. (<see cref="Epoch"/>, <see cref="Position"/>) is what a checkpoint stores: a cursor
/// made from them continues with exactly the batches the uninterrupted walk would have given.
/// </summary>
sealed class DataCursor(int count, int seed, int epoch = 0, int position = 0)
{
    int[] _order = DataOrder.Permutation(count, seed, epoch);

    /// <summary>The epoch the next index comes from.</summary>
    public int Epoch { get; private set; } = epoch;

    /// <summary>How many indices of the current epoch's order have been handed out.</summary>
    public int Position { get; private set; } = position;

    /// <summary>The trainer state a checkpoint stores for this walk (read back by <see cref="TrainingCheckpoint.Resume"/>).</summary>
    public System.Text.Json.Nodes.JsonObject CheckpointState() => new() { ["epoch"] = Epoch, ["position"] = Position, ["seed"] = seed };

    /// <summary>The next <paramref name="size"/> indices.</summary>
    public List<int> Next(int size)
    {
        var batch = new List<int>(size);
        while (batch.Count < size)
        {
            if (Position == count) { Epoch++; Position = 0; _order = DataOrder.Permutation(count, seed, Epoch); }
            batch.Add(_order[Position++]);
        }
        return batch;
    }
}
