using System.Text;
using System.Text.Json.Nodes;

namespace Sharpen.Tests.Tokenizers;

/// <summary>
/// Writes SentencePiece-style <c>tokenizer.json</c> files in the layouts of real checkpoints (Llama 2 / TinyLlama,
/// Mistral 7B, Gemma), each with a small BPE vocabulary trained here on a fixed corpus (greedy most-frequent-pair
/// merges over ▁-prefixed words), so merges, vocab and byte tokens are consistent the way a real file's are.
/// Characters outside the corpus (most CJK, emoji, many accents) are left to byte fallback or the unk token.
/// </summary>
public static class SentencePieceTokenizerJson
{
    const string Corpus = """
        The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away quickly!
        Hello, world! Hello there, how are you today? I'm fine, thanks. We'll see what they've done.
        def main(args):
            for i in range(10):
                print(i * 2)  # double it
            return None
        int x = 0; if (x == 1) { return -1; } else { x += 42; }
        Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14 2024.
        café résumé naïve élève über straße
        日本語の文章です。
        """;

    /// <summary>Trains <paramref name="merges"/> merges; returns the merges in rank order and the symbols they started from.</summary>
    public static (List<string> Chars, List<(string A, string B)> Merges) Train(int merges)
    {
        var words = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var line in Corpus.Split('\n'))
        {
            var text = "▁" + line.Replace(' ', '▁');
            var from = 0;
            for (var i = 1; i <= text.Length; i++)
                if (i == text.Length || text[i] == '▁')
                {
                    var w = text[from..i];
                    words[w] = words.GetValueOrDefault(w) + 1;
                    from = i;
                }
        }
        var split = words.Select(kv => (Symbols: Chars(kv.Key), Count: kv.Value)).OrderBy(x => string.Concat(x.Symbols), StringComparer.Ordinal).ToList();
        var chars = split.SelectMany(w => w.Symbols).Distinct().OrderBy(c => c, StringComparer.Ordinal).ToList();
        var result = new List<(string, string)>();
        for (var m = 0; m < merges; m++)
        {
            var counts = new Dictionary<(string, string), int>();
            foreach (var (symbols, count) in split)
                for (var i = 0; i + 1 < symbols.Count; i++)
                    counts[(symbols[i], symbols[i + 1])] = counts.GetValueOrDefault((symbols[i], symbols[i + 1])) + count;
            if (counts.Count == 0) break;
            var best = counts.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key.Item1 + "\u0001" + kv.Key.Item2, StringComparer.Ordinal).First().Key;
            result.Add(best);
            foreach (var (symbols, _) in split)
                for (var i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] == best.Item1 && symbols[i + 1] == best.Item2)
                    {
                        symbols[i] += symbols[i + 1];
                        symbols.RemoveAt(i + 1);
                    }
        }
        return (chars, result);
    }

    static List<string> Chars(string s)
    {
        var list = new List<string>();
        for (var i = 0; i < s.Length; i++)
        {
            var len = char.IsHighSurrogate(s[i]) ? 2 : 1;
            list.Add(s.Substring(i, len));
            i += len - 1;
        }
        return list;
    }

    /// <summary>Token strings in id order: <paramref name="specials"/>, then the 256 byte tokens, then characters and merges.</summary>
    public static List<string> VocabList(string[] specials, int merges, string[]? extra = null)
    {
        var (chars, m) = Train(merges);
        var list = new List<string>(specials);
        for (var b = 0; b < 256; b++) list.Add($"<0x{b:X2}>");
        foreach (var c in chars) if (!list.Contains(c)) list.Add(c);
        foreach (var (a, b) in m) if (!list.Contains(a + b)) list.Add(a + b);
        foreach (var e in extra ?? []) if (!list.Contains(e)) list.Add(e);
        return list;
    }

    /// <summary>Llama 2 / TinyLlama (the legacy converter): Prepend ▁ and Replace space → ▁ normalizers, no
    /// pre-tokenizer, byte fallback, fuse_unk, BOS added by the post-processor, Replace/ByteFallback/Fuse/Strip decoder.</summary>
    public static string Llama2(bool byteFallback = true) => Build(
        specials: ["<unk>", "<s>", "</s>"], unk: "<unk>", bos: "<s>", byteFallback: byteFallback, ignoreMerges: false, arrayMerges: false,
        normalizer: Seq("normalizers", Prepend(), ReplaceSpace()),
        preTokenizer: null,
        decoder: Seq("decoders", ReplaceBack(), new JsonObject { ["type"] = "ByteFallback" }, new JsonObject { ["type"] = "Fuse" },
            new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 }));

    /// <summary>Mistral 7B as converted by current transformers (legacy: false): no normalizer, a Metaspace
    /// pre-tokenizer with prepend_scheme "first" and no split, merges as pairs, ignore_merges, Metaspace decoder.</summary>
    public static string Mistral() => Build(
        specials: ["<unk>", "<s>", "</s>"], unk: "<unk>", bos: "<s>", byteFallback: true, ignoreMerges: true, arrayMerges: true,
        normalizer: null,
        preTokenizer: Metaspace("first", split: false),
        decoder: Metaspace("first", split: false),
        extra: ["▁zzyzx"]);

    /// <summary>Metaspace with prepend_scheme "always" and split (the pre-tokenizer older SentencePiece BPE files use).</summary>
    public static string MetaspaceAlwaysSplit() => Build(
        specials: ["<unk>", "<s>", "</s>"], unk: "<unk>", bos: "<s>", byteFallback: true, ignoreMerges: false, arrayMerges: false,
        normalizer: null,
        preTokenizer: Metaspace("always", split: true),
        decoder: Metaspace("always", split: true));

    /// <summary>Gemma: Replace space → ▁ only (no dummy prefix), no pre-tokenizer, byte fallback, &lt;bos&gt; at id 2,
    /// chat-turn added tokens, Replace/ByteFallback/Fuse decoder.</summary>
    public static string Gemma() => Build(
        specials: ["<pad>", "<eos>", "<bos>", "<unk>"], unk: "<unk>", bos: "<bos>", byteFallback: true, ignoreMerges: false, arrayMerges: false,
        normalizer: ReplaceSpace(),
        preTokenizer: null,
        decoder: Seq("decoders", ReplaceBack(), new JsonObject { ["type"] = "ByteFallback" }, new JsonObject { ["type"] = "Fuse" }),
        addedExtra: ["<start_of_turn>", "<end_of_turn>"]);

    static JsonObject Prepend() => new() { ["type"] = "Prepend", ["prepend"] = "▁" };
    static JsonObject ReplaceSpace() => new() { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = " " }, ["content"] = "▁" };
    static JsonObject ReplaceBack() => new() { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = "▁" }, ["content"] = " " };
    static JsonObject Metaspace(string scheme, bool split) => new() { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = scheme, ["split"] = split };
    static JsonObject Seq(string key, params JsonObject[] items) => new() { ["type"] = "Sequence", [key] = new JsonArray(items) };

    static string Build(string[] specials, string unk, string bos, bool byteFallback, bool ignoreMerges, bool arrayMerges,
        JsonObject? normalizer, JsonObject? preTokenizer, JsonObject decoder, string[]? extra = null, string[]? addedExtra = null)
    {
        const int Merges = 220;
        var vocabList = VocabList(specials, Merges, extra);
        var (_, merges) = Train(Merges);
        var vocab = new JsonObject();
        for (var i = 0; i < vocabList.Count; i++) vocab[vocabList[i]] = i;
        var added = new JsonArray();
        foreach (var s in specials) added.Add(AddedToken(vocabList.IndexOf(s), s));
        foreach (var s in addedExtra ?? [])
        {
            vocab[s] = vocabList.Count;
            added.Add(AddedToken(vocabList.Count, s));
            vocabList.Add(s);
        }
        var bosId = vocabList.IndexOf(bos);
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = normalizer,
            ["pre_tokenizer"] = preTokenizer,
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(
                    new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 0 } },
                    new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
                ["pair"] = new JsonArray(
                    new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 0 } },
                    new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } },
                    new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 1 } },
                    new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "B", ["type_id"] = 1 } }),
                ["special_tokens"] = new JsonObject { [bos] = new JsonObject { ["id"] = bos, ["ids"] = new JsonArray(bosId), ["tokens"] = new JsonArray(bos) } },
            },
            ["decoder"] = decoder,
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = unk,
                ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null,
                ["fuse_unk"] = true,
                ["byte_fallback"] = byteFallback,
                ["ignore_merges"] = ignoreMerges,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray(merges.Select(m => arrayMerges ? (JsonNode)new JsonArray(m.A, m.B) : JsonValue.Create(m.A + " " + m.B)!).ToArray()),
            },
        };
        return root.ToJsonString(new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    static JsonObject AddedToken(int id, string content) => new()
    {
        ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
    };

    /// <summary>Writes <paramref name="json"/> as <c>tokenizer.json</c> in a new folder under <paramref name="root"/>.</summary>
    public static string WriteFolder(string root, string name, string json)
    {
        var dir = Path.Combine(root, name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), json, new UTF8Encoding(false));
        return dir;
    }
}
