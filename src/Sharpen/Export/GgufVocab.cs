using System.Text;
using System.Text.Json;
using Sharpen.Models;
using Sharpen.Tokenizers;

namespace Sharpen.Export;

/// <summary>
/// A tokenizer as llama.cpp's <c>gpt2</c> (byte-level BPE) vocabulary: one token string and type per model row, the merges,
/// the pre-tokenizer name and the special ids. Token types are llama.cpp's: 1 normal, 3 control (special added tokens),
/// 4 user-defined (other added tokens), 5 unused (rows of the embedding that no token uses, named <c>[PAD{id}]</c>).
/// </summary>
internal sealed record GgufVocab(string Pre, IReadOnlyList<string> Tokens, IReadOnlyList<int> Types, IReadOnlyList<string> Merges,
    int Bos, int Eos, int? Pad, int? Unk, bool AddBos, bool AddEos)
{
    const int Normal = 1, Control = 3, UserDefined = 4, Unused = 5;

    /// <summary>The Hugging Face pre-tokenizer regexes llama.cpp has a named pre-tokenizer for.</summary>
    static readonly Dictionary<string, string> KnownSplits = new(StringComparer.Ordinal)
    {
        [@"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"] = "qwen2",
        [@"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"] = "llama-bpe",
    };

    public static GgufVocab From(ITokenizer tokenizer, ModelConfig config) => tokenizer switch
    {
        CharTokenizer c => FromChars(c, config.VocabSize),
        HfTokenizer h => FromHf(h, config),
        _ => throw new GgufExportException($"cannot export a {tokenizer.GetType().Name} to GGUF; supported: byte-level BPE tokenizer.json and the character tokenizer"),
    };

    /// <summary>
    /// The character tokenizer as a byte-level BPE vocabulary: each character becomes the token spelled by its UTF-8 bytes in
    /// GPT-2's byte alphabet (an ASCII character is itself, a space is <c>Ġ</c>); a character of several bytes gets the merge
    /// chain (b0 b1), (b0b1 b2), ... that rebuilds it. A merge's left side always starts with a UTF-8 lead byte and its right
    /// side is a continuation byte, so no merge can join two characters: llama.cpp splits text into exactly the alphabet's
    /// characters. Departure: a character outside the alphabet is <c>&lt;unk&gt;</c> for Sharpen but has no token in
    /// llama.cpp, which drops it.
    /// </summary>
    static GgufVocab FromChars(CharTokenizer tokenizer, int vocabSize)
    {
        var tokens = new List<string>();
        var types = new List<int>();
        var merges = new List<string>();
        var seenMerges = new HashSet<string>(StringComparer.Ordinal);
        for (int id = 0; id < tokenizer.VocabSize; id++)
        {
            if (tokenizer.IsSpecial(id)) { tokens.Add(tokenizer.TokenToString(id)!); types.Add(Control); continue; }
            var spelled = ByteLevel.Encode(tokenizer.TokenToString(id)!);
            tokens.Add(spelled);
            types.Add(Normal);
            for (int k = 2; k <= spelled.Length; k++)
            {
                var merge = spelled[..(k - 1)] + " " + spelled[k - 1];
                if (seenMerges.Add(merge)) merges.Add(merge);
            }
        }
        PadRows(tokens, types, vocabSize, tokenizer.VocabSize, "character tokenizer");
        return new GgufVocab("default", tokens, types, merges, CharTokenizer.BosId, CharTokenizer.EosId, CharTokenizer.PadId,
            CharTokenizer.UnkId, AddBos: true, AddEos: false);
    }

    static GgufVocab FromHf(HfTokenizer tokenizer, ModelConfig config)
    {
        // The tokenizer's own files, as it saves them, are the source of vocab, merges and pre-tokenizer.
        var dir = Path.Combine(Path.GetTempPath(), "sharpen-gguf-" + Guid.NewGuid().ToString("N"));
        string json;
        string? configJson;
        try
        {
            tokenizer.Save(dir);
            json = File.ReadAllText(Path.Combine(dir, HfTokenizer.TokenizerFileName));
            var cfgPath = Path.Combine(dir, HfTokenizer.ConfigFileName);
            configJson = File.Exists(cfgPath) ? File.ReadAllText(cfgPath) : null;
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
        var def = HfTokenizerJson.Parse(json, HfTokenizer.TokenizerFileName, configJson, HfTokenizer.ConfigFileName);
        if (!def.ByteLevel)
            throw new GgufExportException("the tokenizer is SentencePiece-style BPE (Llama 2/Mistral/Gemma layout); the GGUF exporter only writes byte-level BPE vocabularies so far");
        var pre = PreTokenizerName(json);

        int size = tokenizer.VocabSize;
        var tokens = new string?[size];
        var types = new int[size];
        foreach (var (token, id) in def.Vocab) { tokens[id] = token; types[id] = Normal; }
        foreach (var t in def.AddedTokens) { tokens[t.Id] = t.Content; types[t.Id] = t.Special ? Control : UserDefined; }
        var tokenList = new List<string>(size);
        var typeList = new List<int>(size);
        for (int id = 0; id < size; id++)
        {
            tokenList.Add(tokens[id] ?? $"[PAD{id}]");
            typeList.Add(tokens[id] is null ? Unused : types[id]);
        }
        PadRows(tokenList, typeList, config.VocabSize, size, "tokenizer.json");

        int? eos = tokenizer.EosTokenId ?? (config.EosTokenIds.Count > 0 ? config.EosTokenIds[0] : null);
        int? bos = tokenizer.BosTokenId ?? config.BosTokenId ?? eos;
        if (eos is null || bos is null)
            throw new GgufExportException("the tokenizer names no EOS token and config.json has no eos_token_id; llama.cpp needs one (set eos_token in tokenizer_config.json)");
        bool addBos = tokenizer.SpecialPrefix.SequenceEqual([bos.Value]);
        bool addEos = tokenizer.SpecialSuffix.SequenceEqual([eos.Value]);
        if (tokenizer.SpecialPrefix.Count > 0 && !addBos || tokenizer.SpecialSuffix.Count > 0 && !addEos)
            throw new GgufExportException($"the tokenizer adds [{string.Join(", ", tokenizer.SpecialPrefix)}] before and [{string.Join(", ", tokenizer.SpecialSuffix)}] after the text; " +
                "GGUF can only say 'add BOS' and 'add EOS'");
        return new GgufVocab(pre, tokenList, typeList, def.Merges, bos.Value, eos.Value, tokenizer.PadTokenId ?? config.PadTokenId, null, addBos, addEos);
    }

    /// <summary>Rows of the embedding past the tokenizer's ids become unused <c>[PAD{id}]</c> tokens (as llama.cpp's converter does).</summary>
    static void PadRows(List<string> tokens, List<int> types, int vocabSize, int tokenizerSize, string what)
    {
        if (tokenizerSize > vocabSize)
            throw new GgufExportException($"the {what} has {tokenizerSize} tokens but the model's vocab_size is {vocabSize}; llama.cpp needs one embedding row per token");
        for (int id = tokenizerSize; id < vocabSize; id++) { tokens.Add($"[PAD{id}]"); types.Add(Unused); }
    }

    /// <summary>
    /// llama.cpp's name for the tokenizer.json pre-tokenizer: GPT-2's (a ByteLevel step with its regex) is <c>gpt-2</c>; a
    /// Split with Qwen2's or Llama 3's regex before a regex-free ByteLevel is <c>qwen2</c> or <c>llama-bpe</c>. Others are
    /// rejected, since llama.cpp would split text differently.
    /// </summary>
    internal static string PreTokenizerName(string tokenizerJson)
    {
        using var doc = JsonDocument.Parse(tokenizerJson);
        var splits = new List<string>();
        bool? byteLevelRegex = null, prefixSpace = null;
        void Walk(JsonElement e)
        {
            if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("type", out var type)) return;
            switch (type.GetString())
            {
                case "Sequence":
                    if (e.TryGetProperty("pretokenizers", out var list)) foreach (var c in list.EnumerateArray()) Walk(c);
                    break;
                case "Split":
                    splits.Add(e.TryGetProperty("pattern", out var p) && p.TryGetProperty("Regex", out var r) ? r.GetString() ?? "" : "(string pattern)");
                    break;
                case "ByteLevel":
                    byteLevelRegex = !e.TryGetProperty("use_regex", out var u) || u.ValueKind != JsonValueKind.False;
                    prefixSpace = e.TryGetProperty("add_prefix_space", out var a) && a.ValueKind == JsonValueKind.True;
                    break;
            }
        }
        if (doc.RootElement.TryGetProperty("pre_tokenizer", out var pre)) Walk(pre);
        if (prefixSpace == true)
            throw new GgufExportException("tokenizer.json: pre_tokenizer ByteLevel has add_prefix_space true, which llama.cpp's gpt2 tokenizer does not do");
        if (splits.Count == 0 && byteLevelRegex == true) return "gpt-2";
        if (splits.Count == 1 && byteLevelRegex == false && KnownSplits.TryGetValue(splits[0], out var name)) return name;
        var described = new StringBuilder();
        foreach (var s in splits) described.Append($" Split '{s}'");
        described.Append($" ByteLevel(use_regex: {byteLevelRegex?.ToString().ToLowerInvariant() ?? "absent"})");
        throw new GgufExportException($"tokenizer.json: pre_tokenizer ({described.ToString().Trim()}) has no llama.cpp equivalent; " +
            "supported: ByteLevel with GPT-2's regex, or Split with Qwen2's or Llama 3's regex then ByteLevel without regex");
    }
}

/// <summary>A model or tokenizer that cannot be written as GGUF; the message says what and why.</summary>
public sealed class GgufExportException(string message) : Exception(message);
