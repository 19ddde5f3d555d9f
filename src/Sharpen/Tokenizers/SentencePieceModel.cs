using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sharpen.Tokenizers;

/// <summary>
/// Reads a SentencePiece <c>tokenizer.model</c> (the ModelProto protobuf) with a BPE model and turns it into the
/// <c>tokenizer.json</c> transformers' converter makes for it (Llama 2 layout): pieces as the vocab, merges from every
/// split of every piece into two pieces, ordered by the piece's score; Prepend <c>▁</c> (the dummy prefix) and Replace
/// space → <c>▁</c>; byte fallback and the unk piece from the trainer spec; BOS added by the post-processor; control
/// and unknown pieces as special added tokens, user-defined pieces as plain added tokens.
/// </summary>
/// <remarks>
/// Why not Microsoft.ML.Tokenizers' <c>SentencePieceTokenizer</c>: in 3.0.0 it breaks ties between equal-score
/// merges rightmost first ("000" with the piece "00" becomes "0" "00"), while SentencePiece and Hugging Face merge
/// leftmost first ("00" "0"); the converted file gives the same ids as both.
/// Rejected with an error naming the file: Unigram/word/char models, normalizers other than identity, and
/// <c>remove_extra_whitespaces</c> (none of Llama 2, Mistral 7B, TinyLlama or Gemma uses them).
/// </remarks>
internal static class SentencePieceModel
{
    sealed record Piece(string Text, float Score, int Type);

    /// <returns>The tokenizer.json text and the eos piece.</returns>
    public static (string Json, string EosPiece) ToTokenizerJson(byte[] model, string path)
    {
        var pieces = new List<Piece>();
        int modelType = 1, unkId = 0, bosId = 1, eosId = 2;
        bool byteFallback = false, addDummyPrefix = true, removeExtraWhitespaces = true, escapeWhitespaces = true;
        string normalizerName = "nmt_nfkc";
        var hasCharsMap = false;
        try
        {
            foreach (var (field, _, bytes) in Fields(model, 0, model.Length))
                switch (field)
                {
                    case 1:
                    {
                        string text = ""; float score = 0; var type = 1;
                        foreach (var (f, v, b) in Fields(model, bytes.Start, bytes.End))
                            if (f == 1) text = Encoding.UTF8.GetString(model, b.Start, b.End - b.Start);
                            else if (f == 2) score = BitConverter.Int32BitsToSingle((int)v);
                            else if (f == 3) type = (int)v;
                        pieces.Add(new Piece(text, score, type));
                        break;
                    }
                    case 2:
                        foreach (var (f, v, _) in Fields(model, bytes.Start, bytes.End))
                            switch (f)
                            {
                                case 3: modelType = (int)v; break;
                                case 35: byteFallback = v != 0; break;
                                case 40: unkId = (int)v; break;
                                case 41: bosId = (int)v; break;
                                case 42: eosId = (int)v; break;
                            }
                        break;
                    case 3:
                        foreach (var (f, v, b) in Fields(model, bytes.Start, bytes.End))
                            switch (f)
                            {
                                case 1: normalizerName = Encoding.UTF8.GetString(model, b.Start, b.End - b.Start); break;
                                case 2: hasCharsMap = b.End > b.Start; break;
                                case 3: addDummyPrefix = v != 0; break;
                                case 4: removeExtraWhitespaces = v != 0; break;
                                case 5: escapeWhitespaces = v != 0; break;
                            }
                        break;
                }
        }
        catch (FormatException e)
        {
            throw new TokenizerFileException(path, "(protobuf)", $"is not a SentencePiece model: {e.Message}" +
                (model.Take(64).All(c => c is (byte)'\n' or (byte)'\r' or >= 0x20 and < 0x7F) ? " (it looks like text: Llama 3's tokenizer.model is in tiktoken format; use its tokenizer.json)" : ""), e);
        }
        if (pieces.Count == 0) throw new TokenizerFileException(path, "pieces", "is empty; expected the vocabulary of a SentencePiece model");
        if (modelType != 2)
            throw new TokenizerFileException(path, "trainer_spec.model_type", $"is {modelType} ({(modelType switch { 1 => "unigram", 3 => "word", 4 => "char", _ => "unknown" })}); expected 2 (BPE): only SentencePiece BPE models are supported");
        if (hasCharsMap && normalizerName != "identity")
            throw new TokenizerFileException(path, "normalizer_spec.name", $"is \"{normalizerName}\"; expected \"identity\" (precompiled normalization rules are not supported)");
        if (removeExtraWhitespaces)
            throw new TokenizerFileException(path, "normalizer_spec.remove_extra_whitespaces", "is true; expected false (collapsing whitespace is not supported)");
        if (!escapeWhitespaces)
            throw new TokenizerFileException(path, "normalizer_spec.escape_whitespaces", "is false; expected true (spaces written as ▁)");
        foreach (var (id, name) in new[] { (unkId, "unk_id"), (bosId, "bos_id"), (eosId, "eos_id") })
            if (id < 0 || id >= pieces.Count) throw new TokenizerFileException(path, $"trainer_spec.{name}", $"is {id}; expected an id below the {pieces.Count} pieces");

        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < pieces.Count; i++) index.TryAdd(pieces[i].Text, i);

        // Merges as transformers' converter makes them: every split of a piece into two pieces, best score first.
        var merges = new List<(string A, string B, float Score)>();
        foreach (var p in pieces)
        {
            var local = new List<(string, string, float)>();
            for (var k = 1; k < p.Text.Length; k++)
            {
                if (char.IsLowSurrogate(p.Text[k])) continue;
                if (index.ContainsKey(p.Text[..k]) && index.ContainsKey(p.Text[k..])) local.Add((p.Text[..k], p.Text[k..], p.Score));
            }
            merges.AddRange(local.OrderBy(m => index[m.Item1]).ThenBy(m => index[m.Item2]));
        }
        var ordered = merges.OrderByDescending(m => m.Score).ThenByDescending(m => m.A.Length).ThenByDescending(m => m.B.Length);

        var vocab = new JsonObject();
        foreach (var (text, id) in index) vocab[text] = id;
        var added = new JsonArray();
        for (var i = 0; i < pieces.Count; i++)
            if (pieces[i].Type is 2 or 3 or 4)
                added.Add(new JsonObject
                {
                    ["id"] = i, ["content"] = pieces[i].Text, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                    ["normalized"] = false, ["special"] = pieces[i].Type != 4,
                });
        var replace = new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = " " }, ["content"] = "▁" };
        var decoders = new JsonArray(
            new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = "▁" }, ["content"] = " " },
            new JsonObject { ["type"] = "ByteFallback" }, new JsonObject { ["type"] = "Fuse" });
        if (addDummyPrefix) decoders.Add(new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 });
        var bos = pieces[bosId].Text;
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = added,
            ["normalizer"] = addDummyPrefix
                ? new JsonObject { ["type"] = "Sequence", ["normalizers"] = new JsonArray(new JsonObject { ["type"] = "Prepend", ["prepend"] = "▁" }, replace) }
                : replace,
            ["pre_tokenizer"] = null,
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(
                    new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 0 } },
                    new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
                ["special_tokens"] = new JsonObject { [bos] = new JsonObject { ["id"] = bos, ["ids"] = new JsonArray(bosId), ["tokens"] = new JsonArray(bos) } },
            },
            ["decoder"] = new JsonObject { ["type"] = "Sequence", ["decoders"] = decoders },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = pieces[unkId].Text, ["fuse_unk"] = true, ["byte_fallback"] = byteFallback,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray(ordered.Select(m => (JsonNode)new JsonArray(m.A, m.B)).ToArray()),
            },
        };
        return (root.ToJsonString(new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }), pieces[eosId].Text);
    }

    /// <summary>Protobuf fields of one message: number, varint/fixed value, and the byte range of length-delimited ones.</summary>
    static IEnumerable<(int Field, ulong Value, (int Start, int End) Bytes)> Fields(byte[] data, int start, int end)
    {
        var at = start;
        while (at < end)
        {
            var tag = ReadVarint(data, ref at, end);
            var field = (int)(tag >> 3);
            switch ((int)(tag & 7))
            {
                case 0: yield return (field, ReadVarint(data, ref at, end), (0, 0)); break;
                case 1:
                    if (at + 8 > end) throw new FormatException($"a 64-bit field {field} runs past the end at byte {at}");
                    yield return (field, BitConverter.ToUInt64(data, at), (0, 0)); at += 8; break;
                case 2:
                {
                    var len = ReadVarint(data, ref at, end);
                    if (len > (ulong)(end - at)) throw new FormatException($"field {field} claims {len} bytes at byte {at}, past the end");
                    yield return (field, 0, (at, at + (int)len));
                    at += (int)len;
                    break;
                }
                case 5:
                    if (at + 4 > end) throw new FormatException($"a 32-bit field {field} runs past the end at byte {at}");
                    yield return (field, BitConverter.ToUInt32(data, at), (0, 0)); at += 4; break;
                default: throw new FormatException($"wire type {tag & 7} of field {field} at byte {at} is not valid protobuf");
            }
        }
    }

    static ulong ReadVarint(byte[] data, ref int at, int end)
    {
        ulong v = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (at >= end) throw new FormatException($"a varint runs past the end at byte {at}");
            var b = data[at++];
            v |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return v;
        }
        throw new FormatException($"a varint longer than 10 bytes ends at byte {at}");
    }
}
