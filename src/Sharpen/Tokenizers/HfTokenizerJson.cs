using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Sharpen.Tokenizers;

/// <summary>An entry of <c>added_tokens</c> in <c>tokenizer.json</c>.</summary>
internal sealed record AddedToken(int Id, string Content, bool Special, bool LStrip, bool RStrip, bool SingleWord);

/// <summary>Everything <see cref="HfTokenizer"/> needs from <c>tokenizer.json</c> and <c>tokenizer_config.json</c>.</summary>
internal sealed record HfTokenizerDefinition(
    Dictionary<string, int> Vocab,
    List<string> Merges,
    bool IgnoreMerges,
    List<AddedToken> AddedTokens,
    TextNormalizer? Normalizer,
    PreTokenizerSteps PreTokenizer,
    bool ByteLevel,
    CharBpeOptions CharBpe,
    TokenDecoder Decoder,
    List<int> Prefix,
    List<int> Suffix,
    int? Bos,
    int? Eos,
    int? Pad);

/// <summary>The model options only SentencePiece-style (character-level) BPE uses.</summary>
internal sealed record CharBpeOptions(string? UnkToken, bool FuseUnk, bool ByteFallback);

/// <summary>
/// Parses a Hugging Face <c>tokenizer.json</c> (BPE: byte-level, or SentencePiece-style over characters with byte
/// fallback) and an optional <c>tokenizer_config.json</c>.
/// Every problem becomes a <see cref="TokenizerFileException"/> naming the file and the key.
/// </summary>
internal static class HfTokenizerJson
{
    public static HfTokenizerDefinition Parse(string tokenizerJson, string tokenizerPath, string? configJson, string configPath)
    {
        var file = new JsonFile(tokenizerPath);
        using var doc = file.Parse(tokenizerJson);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw file.Error("(root)", "expected a JSON object");

        var model = file.RequireObject(root, "", "model", "an object with type \"BPE\", vocab and merges");
        var type = file.OptionalString(model, "model", "type") ?? (model.TryGetProperty("merges", out _) ? "BPE" : null);
        if (type is null) throw file.Error("model.type", "is missing; expected \"BPE\"");
        if (type != "BPE")
            throw file.Error("model.type", $"is \"{type}\"; expected \"BPE\" (byte-level BPE such as GPT-2, Llama 3 and Qwen2, or SentencePiece-style BPE such as Llama 2, Mistral and Gemma; {type} models are not supported)");
        CheckUnsupportedModelOptions(file, model);

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in file.RequireObject(model, "model", "vocab", "an object mapping token strings to ids").EnumerateObject())
            vocab[p.Name] = p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetInt32(out var id) && id >= 0
                ? id : throw file.Error($"model.vocab.{p.Name}", $"is {p.Value.GetRawText()}; expected a non-negative integer id");
        if (vocab.Count == 0) throw file.Error("model.vocab", "is empty; expected token → id entries");

        var merges = ParseMerges(file, file.RequireArray(model, "model", "merges"), vocab);
        var ignoreMerges = file.OptionalBool(model, "model", "ignore_merges", false);
        var added = ParseAddedTokens(file, root);
        var normalizer = JsonFile.Optional(root, "normalizer") is { } n ? ParseNormalizer(file, n, "normalizer") : null;

        var steps = new List<IPreTokenizerStep>();
        var byteLevel = false;
        if (JsonFile.Optional(root, "pre_tokenizer") is { } pre) ParsePreTokenizer(file, pre, "pre_tokenizer", steps, ref byteLevel);

        // Without a ByteLevel step the model works on characters (SentencePiece-style): unknown characters become
        // <0xNN> byte tokens (byte_fallback) or the unk token.
        var unkToken = file.OptionalString(model, "model", "unk_token");
        if (unkToken is not null && !vocab.ContainsKey(unkToken))
            throw file.Error("model.unk_token", $"is \"{unkToken}\", which is not in model.vocab; expected a token of the vocabulary or null");
        var charOptions = new CharBpeOptions(unkToken, file.OptionalBool(model, "model", "fuse_unk", false), file.OptionalBool(model, "model", "byte_fallback", false));
        if (byteLevel && charOptions.ByteFallback)
            throw file.Error("model.byte_fallback", "is true with a ByteLevel pre-tokenizer; expected one of the two (byte-level BPE needs no byte fallback)");
        if (charOptions.ByteFallback)
            for (var b = 0; b < 256; b++)
                if (!vocab.ContainsKey(CharBpe.ByteToken((byte)b)))
                    throw file.Error("model.vocab", $"has no \"{CharBpe.ByteToken((byte)b)}\" although model.byte_fallback is true; expected all 256 byte tokens <0x00>..<0xFF>");
        var decoder = byteLevel || JsonFile.Optional(root, "decoder") is not { } dec ? TokenDecoder.None : ParseDecoder(file, dec, "decoder");

        var prefix = new List<int>();
        var suffix = new List<int>();
        if (JsonFile.Optional(root, "post_processor") is { } post) ParsePostProcessor(file, post, "post_processor", prefix, suffix);

        int? bos = prefix.Count > 0 ? prefix[0] : null, eos = suffix.Count > 0 ? suffix[^1] : null, pad = null;
        if (configJson is not null)
        {
            var cfgFile = new JsonFile(configPath);
            using var cfgDoc = cfgFile.Parse(configJson);
            var cfg = cfgDoc.RootElement;
            if (cfg.ValueKind != JsonValueKind.Object) throw cfgFile.Error("(root)", "expected a JSON object");
            bos = ConfigToken(cfgFile, cfg, "bos_token", vocab, added) ?? bos;
            eos = ConfigToken(cfgFile, cfg, "eos_token", vocab, added) ?? eos;
            pad = ConfigToken(cfgFile, cfg, "pad_token", vocab, added);
            ApplyAddFlag(cfgFile, cfg, "add_bos_token", bos, prefix, atStart: true);
            ApplyAddFlag(cfgFile, cfg, "add_eos_token", eos, suffix, atStart: false);
        }
        return new HfTokenizerDefinition(vocab, merges, ignoreMerges, added, normalizer, new PreTokenizerSteps(steps), byteLevel, charOptions, decoder,
            prefix, suffix, bos, eos, pad);
    }

    static void CheckUnsupportedModelOptions(JsonFile file, JsonElement model)
    {
        if (JsonFile.Optional(model, "dropout") is { } d && !(d.ValueKind == JsonValueKind.Number && d.GetDouble() == 0))
            throw file.Error("model.dropout", $"is {d.GetRawText()}; expected null (BPE dropout is a training-time option and is not supported)");
        foreach (var key in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (file.OptionalString(model, "model", key) is { Length: > 0 } s)
                throw file.Error($"model.{key}", $"is \"{s}\"; expected null or \"\" (not used by byte-level BPE)");
    }

    static List<string> ParseMerges(JsonFile file, JsonElement array, Dictionary<string, int> vocab)
    {
        var merges = new List<string>(array.GetArrayLength());
        var i = 0;
        foreach (var m in array.EnumerateArray())
        {
            var key = $"model.merges[{i++}]";
            string a, b;
            if (m.ValueKind == JsonValueKind.String)
            {
                var parts = m.GetString()!.Split(' ');
                if (parts.Length != 2) throw file.Error(key, $"is {m.GetRawText()}; expected two tokens separated by one space, e.g. \"Ġ t\"");
                (a, b) = (parts[0], parts[1]);
            }
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2 && m.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String))
            {
                (a, b) = (m[0].GetString()!, m[1].GetString()!);
                if (a.Contains(' ') || b.Contains(' '))
                    throw file.Error(key, $"is {m.GetRawText()}; expected tokens without a plain space (byte-level tokens write space as Ġ, SentencePiece ones as ▁)");
            }
            else throw file.Error(key, $"is {m.GetRawText()}; expected \"a b\" or [\"a\", \"b\"]");
            foreach (var t in new[] { a, b, a + b })
                if (!vocab.ContainsKey(t)) throw file.Error(key, $"uses \"{t}\", which is not in model.vocab; expected both parts and their concatenation in the vocabulary");
            merges.Add(a + " " + b);
        }
        return merges;
    }

    static List<AddedToken> ParseAddedTokens(JsonFile file, JsonElement root)
    {
        var list = new List<AddedToken>();
        if (JsonFile.Optional(root, "added_tokens") is not { } arr) return list;
        if (arr.ValueKind != JsonValueKind.Array) throw file.Error("added_tokens", "expected an array");
        var i = 0;
        foreach (var t in arr.EnumerateArray())
        {
            var key = $"added_tokens[{i++}]";
            if (t.ValueKind != JsonValueKind.Object) throw file.Error(key, "expected an object with id and content");
            var content = file.RequireString(t, key, "content");
            if (content.Length == 0) throw file.Error($"{key}.content", "is empty; expected the token text");
            list.Add(new AddedToken(file.RequireInt(t, key, "id"), content,
                file.OptionalBool(t, key, "special", false), file.OptionalBool(t, key, "lstrip", false),
                file.OptionalBool(t, key, "rstrip", false), file.OptionalBool(t, key, "single_word", false)));
        }
        return list;
    }

    static TextNormalizer ParseNormalizer(JsonFile file, JsonElement n, string key)
    {
        var steps = new List<Func<string, string>>();
        Add(n, key);
        return new TextNormalizer(steps);

        void Add(JsonElement e, string k)
        {
            var type = file.RequireString(e, k, "type");
            switch (type)
            {
                case "NFC": steps.Add(TextNormalizer.Unicode(NormalizationForm.FormC)); break;
                case "NFD": steps.Add(TextNormalizer.Unicode(NormalizationForm.FormD)); break;
                case "NFKC": steps.Add(TextNormalizer.Unicode(NormalizationForm.FormKC)); break;
                case "NFKD": steps.Add(TextNormalizer.Unicode(NormalizationForm.FormKD)); break;
                case "Prepend":
                    steps.Add(TextNormalizer.Prepend(file.RequireString(e, k, "prepend")));
                    break;
                case "Replace":
                {
                    var content = file.RequireString(e, k, "content");
                    var (literal, regex) = ParsePattern(file, e, k);
                    steps.Add(literal is not null ? TextNormalizer.ReplaceString(literal, content) : TextNormalizer.ReplaceRegex(regex!, content));
                    break;
                }
                case "Sequence":
                    var i = 0;
                    foreach (var child in file.RequireArray(e, k, "normalizers").EnumerateArray()) Add(child, $"{k}.normalizers[{i++}]");
                    break;
                default:
                    throw file.Error($"{k}.type", $"is \"{type}\"; expected NFC, NFD, NFKC, NFKD, Prepend, Replace or a Sequence of them");
            }
        }
    }

    /// <summary>The <c>pattern</c> of a Replace or Split: <c>{"String": ...}</c> (non-empty) or <c>{"Regex": ...}</c>.</summary>
    static (string? Literal, Regex? Regex) ParsePattern(JsonFile file, JsonElement e, string key)
    {
        var pattern = file.RequireObject(e, key, "pattern");
        var literal = file.OptionalString(pattern, $"{key}.pattern", "String");
        var regex = file.OptionalString(pattern, $"{key}.pattern", "Regex");
        if (literal is { Length: > 0 }) return (literal, null);
        if (literal is not null) throw file.Error($"{key}.pattern.String", "is empty; expected the text to match");
        if (regex is null) throw file.Error($"{key}.pattern", "has neither \"Regex\" nor \"String\"; expected one of them");
        try
        {
            return (null, RegexSplit.Create(regex));
        }
        catch (ArgumentException ex)
        {
            throw file.Error($"{key}.pattern.Regex", $"is not a regex .NET can compile: {ex.Message}", ex);
        }
    }

    /// <summary>A decoder of a SentencePiece-style tokenizer: Replace, ByteFallback, Fuse, Strip, Metaspace or a Sequence.</summary>
    static TokenDecoder ParseDecoder(JsonFile file, JsonElement d, string key)
    {
        var steps = new List<Func<List<string>, List<string>>>();
        Add(d, key);
        return new TokenDecoder(steps);

        void Add(JsonElement e, string k)
        {
            var type = file.RequireString(e, k, "type");
            switch (type)
            {
                case "Replace":
                {
                    var content = file.RequireString(e, k, "content");
                    var (literal, _) = ParsePattern(file, e, k);
                    if (literal is null) throw file.Error($"{k}.pattern", "is a Regex; expected {\"String\": ...} (regex Replace decoders are not supported)");
                    steps.Add(TokenDecoder.Replace(literal, content));
                    break;
                }
                case "ByteFallback": steps.Add(TokenDecoder.ByteFallback()); break;
                case "Fuse": steps.Add(TokenDecoder.Fuse()); break;
                case "Strip":
                {
                    var content = file.RequireString(e, k, "content");
                    if (content.Length != 1) throw file.Error($"{k}.content", $"is \"{content}\"; expected one character");
                    steps.Add(TokenDecoder.Strip(content[0], file.RequireInt(e, k, "start"), file.RequireInt(e, k, "stop")));
                    break;
                }
                case "Metaspace":
                {
                    var (replacement, scheme, _) = ParseMetaspace(file, e, k);
                    steps.Add(TokenDecoder.Metaspace(replacement, scheme));
                    break;
                }
                case "Sequence":
                    var i = 0;
                    foreach (var child in file.RequireArray(e, k, "decoders").EnumerateArray()) Add(child, $"{k}.decoders[{i++}]");
                    break;
                case "ByteLevel":
                    throw file.Error($"{k}.type", "is \"ByteLevel\" but the pre-tokenizer has no ByteLevel step; expected a ByteLevel pre-tokenizer for a byte-level vocabulary, " +
                        "or a SentencePiece-style decoder (Replace, ByteFallback, Fuse, Strip, Metaspace)");
                default:
                    throw file.Error($"{k}.type", $"is \"{type}\"; expected Replace, ByteFallback, Fuse, Strip, Metaspace or a Sequence of them (with a non-ByteLevel pre-tokenizer)");
            }
        }
    }

    /// <summary><c>replacement</c>, <c>prepend_scheme</c> (or the older <c>add_prefix_space</c>) and <c>split</c> of Metaspace.</summary>
    static (char Replacement, PrependScheme Scheme, bool Split) ParseMetaspace(JsonFile file, JsonElement e, string key)
    {
        var replacement = file.OptionalString(e, key, "replacement") ?? "\u2581";
        if (replacement.Length != 1) throw file.Error($"{key}.replacement", $"is \"{replacement}\"; expected one character such as \"▁\"");
        var schemeName = file.OptionalString(e, key, "prepend_scheme");
        var scheme = schemeName switch
        {
            "always" => PrependScheme.Always,
            "first" => PrependScheme.First,
            "never" => PrependScheme.Never,
            null => file.OptionalBool(e, key, "add_prefix_space", true) ? PrependScheme.Always : PrependScheme.Never,
            _ => throw file.Error($"{key}.prepend_scheme", $"is \"{schemeName}\"; expected \"always\", \"first\" or \"never\""),
        };
        return (replacement[0], scheme, file.OptionalBool(e, key, "split", true));
    }

    static void ParsePreTokenizer(JsonFile file, JsonElement e, string key, List<IPreTokenizerStep> steps, ref bool byteLevel)
    {
        var type = file.RequireString(e, key, "type");
        if (byteLevel && type != "Sequence")
            throw file.Error($"{key}.type", $"is \"{type}\" after a ByteLevel step; expected ByteLevel to be the last step");
        switch (type)
        {
            case "ByteLevel":
                steps.Add(new ByteLevelStep(file.OptionalBool(e, key, "add_prefix_space", false), file.OptionalBool(e, key, "use_regex", true)));
                byteLevel = true;
                break;
            case "Split":
                steps.Add(ParseSplit(file, e, key));
                break;
            case "Metaspace":
            {
                var (replacement, scheme, split) = ParseMetaspace(file, e, key);
                steps.Add(new MetaspaceStep(replacement, scheme, split));
                break;
            }
            case "Sequence":
                var i = 0;
                foreach (var child in file.RequireArray(e, key, "pretokenizers").EnumerateArray())
                    ParsePreTokenizer(file, child, $"{key}.pretokenizers[{i++}]", steps, ref byteLevel);
                break;
            default:
                throw file.Error($"{key}.type", $"is \"{type}\"; expected ByteLevel, Split, Metaspace or Sequence");
        }
    }

    static RegexSplit ParseSplit(JsonFile file, JsonElement e, string key)
    {
        var (literal, regex) = ParsePattern(file, e, key);
        var behaviorName = file.RequireString(e, key, "behavior");
        var behavior = behaviorName switch
        {
            "Isolated" => SplitBehavior.Isolated,
            "Removed" => SplitBehavior.Removed,
            "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
            "MergedWithNext" => SplitBehavior.MergedWithNext,
            _ => throw file.Error($"{key}.behavior", $"is \"{behaviorName}\"; expected \"Isolated\", \"Removed\", \"MergedWithPrevious\" or \"MergedWithNext\" (\"Contiguous\" is not supported)"),
        };
        var compiled = regex ?? RegexSplit.Create(Regex.Escape(literal!));
        return new RegexSplit(compiled, behavior, file.OptionalBool(e, key, "invert", false), file.Path, $"{key}.pattern.Regex");
    }

    /// <summary>Turns a post-processor into the ids put before and after a single sequence.</summary>
    static void ParsePostProcessor(JsonFile file, JsonElement e, string key, List<int> prefix, List<int> suffix)
    {
        var type = file.RequireString(e, key, "type");
        switch (type)
        {
            case "ByteLevel":
                break;
            case "TemplateProcessing":
            {
                var specials = JsonFile.Optional(e, "special_tokens");
                var before = new List<int>();
                var after = new List<int>();
                var seenSequence = false;
                var i = 0;
                foreach (var item in file.RequireArray(e, key, "single").EnumerateArray())
                {
                    var itemKey = $"{key}.single[{i++}]";
                    if (JsonFile.Optional(item, "Sequence") is not null) { seenSequence = true; continue; }
                    if (JsonFile.Optional(item, "SpecialToken") is not { } st)
                        throw file.Error(itemKey, $"is {item.GetRawText()}; expected {{\"SpecialToken\": ...}} or {{\"Sequence\": ...}}");
                    var name = file.RequireString(st, $"{itemKey}.SpecialToken", "id");
                    if (specials is not { } sp || JsonFile.Optional(sp, name) is not { } entry)
                        throw file.Error($"{key}.special_tokens.{name}", "is missing; expected an entry for every special token used by the template");
                    var ids = file.RequireArray(entry, $"{key}.special_tokens.{name}", "ids");
                    foreach (var id in ids.EnumerateArray())
                        (seenSequence ? after : before).Add(id.TryGetInt32(out var v) ? v : throw file.Error($"{key}.special_tokens.{name}.ids", "expected integer ids"));
                }
                Wrap(before, after);
                break;
            }
            case "RobertaProcessing":
            case "BertProcessing":
                Wrap([SpecialPair(file, e, key, "cls")], [SpecialPair(file, e, key, "sep")]);
                break;
            case "Sequence":
                var j = 0;
                foreach (var child in file.RequireArray(e, key, "processors").EnumerateArray())
                    ParsePostProcessor(file, child, $"{key}.processors[{j++}]", prefix, suffix);
                break;
            default:
                throw file.Error($"{key}.type", $"is \"{type}\"; expected TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing or Sequence");
        }

        // A later processor wraps what the earlier ones produced.
        void Wrap(List<int> before, List<int> after)
        {
            prefix.InsertRange(0, before);
            suffix.AddRange(after);
        }
    }

    static int SpecialPair(JsonFile file, JsonElement e, string key, string name)
    {
        var pair = file.RequireArray(e, key, name);
        return pair.GetArrayLength() == 2 && pair[1].TryGetInt32(out var id)
            ? id : throw file.Error($"{key}.{name}", $"is {pair.GetRawText()}; expected [\"token\", id]");
    }

    /// <summary>Reads a special token of tokenizer_config.json: a string, an AddedToken object with "content", or null.</summary>
    static int? ConfigToken(JsonFile file, JsonElement cfg, string name, Dictionary<string, int> vocab, List<AddedToken> added)
    {
        if (JsonFile.Optional(cfg, name) is not { } e) return null;
        var content = e.ValueKind switch
        {
            JsonValueKind.String => e.GetString()!,
            JsonValueKind.Object => file.RequireString(e, name, "content"),
            _ => throw file.Error(name, $"is {e.GetRawText()}; expected a token string, an object with \"content\", or null"),
        };
        var match = added.FirstOrDefault(t => t.Content == content);
        if (match is not null) return match.Id;
        return vocab.TryGetValue(content, out var id)
            ? id : throw file.Error(name, $"is \"{content}\", which is neither in added_tokens nor in model.vocab of tokenizer.json");
    }

    /// <summary><c>add_bos_token</c> / <c>add_eos_token</c>, when present, decide whether the token is added.</summary>
    static void ApplyAddFlag(JsonFile file, JsonElement cfg, string name, int? token, List<int> ids, bool atStart)
    {
        if (JsonFile.Optional(cfg, name) is null) return;
        var add = file.OptionalBool(cfg, "", name, false);
        var present = ids.Count > 0 && token is { } t && (atStart ? ids[0] : ids[^1]) == t;
        if (add && !present)
        {
            if (token is not { } id) throw file.Error(name, $"is true but the tokenizer has no {name[4..7]} token; expected {name[4..]} to be set");
            if (atStart) ids.Insert(0, id);
            else ids.Add(id);
        }
        else if (!add && present) ids.RemoveAt(atStart ? 0 : ids.Count - 1);
    }
}
