using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Tokenizers;

namespace Sharpen.Training.Rl;

/// <summary>
/// PPO-ptx's data: the SFT rows of <see cref="RlOptions.PtxData"/>, encoded once (prompt with the tokenizer's specials,
/// completion + EOS), handed out <see cref="RlOptions.PtxBatchSize"/> at a time in a seeded shuffled order that
/// continues across iterations (and from a checkpoint's position on resume).
/// </summary>
sealed class PtxSource
{
    readonly List<(int[] Prompt, int[] Completion)> _rows;
    readonly int _batch, _padId;
    DataCursor _cursor;

    public PtxSource(string path, ITokenizer tokenizer, int batchSize, int seed)
    {
        var loaded = JsonlDataset.LoadSft(path).Items;
        if (loaded.Count == 0) throw new ArgumentException($"{path}: rl.ptx_data has no rows");
        int? eos = tokenizer.EosTokenId;
        _rows = loaded.Select(e => (tokenizer.Encode(e.Prompt).ToArray(),
            tokenizer.Encode(e.Completion, addSpecialTokens: false).Concat(eos is { } id ? [id] : []).ToArray())).ToList();
        for (int i = 0; i < _rows.Count; i++)
            if (_rows[i].Prompt.Length == 0 || _rows[i].Completion.Length == 0)
                throw new ArgumentException($"{path}: line {i + 1}: rl.ptx_data rows need a non-empty prompt and completion");
        (_batch, _padId) = (batchSize, tokenizer.PadTokenId ?? 0);
        _cursor = new DataCursor(_rows.Count, seed);
    }

    public (int Epoch, int Position) State => (_cursor.Epoch, _cursor.Position);

    public void Restore(int seed, int epoch, int position) => _cursor = new DataCursor(_rows.Count, seed, epoch, position);

    /// <summary>The next rows as one padded batch (the loss reads its completion mask).</summary>
    public SequenceBatch Next()
    {
        var rows = _cursor.Next(_batch).Select(i => _rows[i]).ToList();
        return SequenceBatch.Build(rows.Select(r => (IReadOnlyList<int>)r.Prompt).ToList(), rows.Select(r => (IReadOnlyList<int>)r.Completion).ToList(), _padId);
    }
}
