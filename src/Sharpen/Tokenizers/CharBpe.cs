using System.Text;

namespace Sharpen.Tokenizers;

/// <summary>
/// The BPE model of a SentencePiece-style <c>tokenizer.json</c> (Llama 2, Mistral 7B, TinyLlama, Gemma): merges over
/// Unicode characters rather than bytes, with <c>byte_fallback</c> (a character missing from the vocab becomes its
/// UTF-8 bytes as <c>&lt;0xNN&gt;</c> tokens), an <c>unk_token</c> (consecutive unknowns fused into one when
/// <c>fuse_unk</c>) and <c>ignore_merges</c>. Merges are applied lowest rank first, leftmost first among equal ranks,
/// as Hugging Face's <c>Word::merge_all</c> does.
/// </summary>
internal sealed class CharBpe
{
    readonly Dictionary<string, int> _vocab;
    readonly Dictionary<(int, int), (int Rank, int NewId)> _merges;
    readonly int? _unk;
    readonly bool _fuseUnk, _byteFallback, _ignoreMerges;
    readonly int?[] _byteIds = new int?[256];

    public CharBpe(Dictionary<string, int> vocab, IReadOnlyList<string> merges, string? unkToken, bool fuseUnk, bool byteFallback, bool ignoreMerges)
    {
        _vocab = vocab;
        _merges = new Dictionary<(int, int), (int, int)>(merges.Count);
        for (var rank = 0; rank < merges.Count; rank++)
        {
            var space = merges[rank].IndexOf(' ');
            var (a, b) = (merges[rank][..space], merges[rank][(space + 1)..]);
            _merges[(vocab[a], vocab[b])] = (rank, vocab[a + b]); // a repeated pair keeps its last rank, as in the Rust HashMap
        }
        _unk = unkToken is not null && vocab.TryGetValue(unkToken, out var u) ? u : null;
        _fuseUnk = fuseUnk;
        _byteFallback = byteFallback;
        _ignoreMerges = ignoreMerges;
        for (var b = 0; b < 256; b++)
            if (vocab.TryGetValue(ByteToken((byte)b), out var id)) _byteIds[b] = id;
    }

    /// <summary>The vocab entry of a fallback byte, e.g. <c>&lt;0x0A&gt;</c>.</summary>
    public static string ByteToken(byte b) => $"<0x{b:X2}>";

    /// <summary>Parses <c>&lt;0xNN&gt;</c> back to its byte.</summary>
    public static bool TryParseByteToken(string token, out byte value)
    {
        value = 0;
        return token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
            && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out value);
    }

    /// <summary>Appends the ids of one pre-tokenized piece.</summary>
    public void Encode(string word, List<int> ids)
    {
        if (word.Length == 0) return;
        if (_ignoreMerges && _vocab.TryGetValue(word, out var whole)) { ids.Add(whole); return; }

        var symbols = new List<int>(word.Length);
        int? pendingUnk = null;
        Span<byte> utf8 = stackalloc byte[4];
        for (var i = 0; i < word.Length; i++)
        {
            var len = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            var ch = word.Substring(i, len);
            i += len - 1;
            if (_vocab.TryGetValue(ch, out var id))
            {
                if (pendingUnk is { } u) { symbols.Add(u); pendingUnk = null; }
                symbols.Add(id);
                continue;
            }
            if (_byteFallback)
            {
                var n = Encoding.UTF8.GetBytes(ch, utf8);
                var all = true;
                for (var k = 0; k < n; k++) all &= _byteIds[utf8[k]] is not null;
                if (all)
                {
                    // Like Hugging Face, a pending unknown is not flushed before fallback bytes.
                    for (var k = 0; k < n; k++) symbols.Add(_byteIds[utf8[k]]!.Value);
                    continue;
                }
            }
            if (_unk is { } unk)
            {
                if (pendingUnk is not null && !_fuseUnk) symbols.Add(unk);
                pendingUnk = unk;
            }
        }
        if (pendingUnk is { } last) symbols.Add(last);
        MergeAll(symbols);
        ids.AddRange(symbols);
    }

    /// <summary>Lowest-rank merge first (leftmost among equals), over a linked list with a priority queue.</summary>
    void MergeAll(List<int> symbols)
    {
        var n = symbols.Count;
        if (n < 2) return;
        var id = symbols.ToArray();
        var prev = new int[n];
        var next = new int[n];
        var alive = new bool[n];
        for (var i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; alive[i] = true; }
        var queue = new PriorityQueue<(int Pos, int NewId), (int Rank, int Pos)>();
        for (var i = 0; i + 1 < n; i++)
            if (_merges.TryGetValue((id[i], id[i + 1]), out var m)) queue.Enqueue((i, m.NewId), (m.Rank, i));
        while (queue.TryDequeue(out var top, out _))
        {
            var pos = top.Pos;
            if (!alive[pos] || next[pos] == -1) continue;
            var right = next[pos];
            if (!_merges.TryGetValue((id[pos], id[right]), out var current) || current.NewId != top.NewId) continue;
            id[pos] = top.NewId;
            alive[right] = false;
            next[pos] = next[right];
            if (next[right] != -1) prev[next[right]] = pos;
            if (prev[pos] != -1 && _merges.TryGetValue((id[prev[pos]], id[pos]), out var left))
                queue.Enqueue((prev[pos], left.NewId), (left.Rank, prev[pos]));
            if (next[pos] != -1 && _merges.TryGetValue((id[pos], id[next[pos]]), out var after))
                queue.Enqueue((pos, after.NewId), (after.Rank, pos));
        }
        symbols.Clear();
        for (var i = 0; i != -1; i = next[i]) symbols.Add(id[i]);
    }
}
