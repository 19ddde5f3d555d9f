using System.Text;
using Microsoft.ML.Tokenizers;

namespace Sharpen.Tokenizers;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> with a BPE model, producing the same ids as Hugging Face's Rust <c>tokenizers</c>:
/// byte-level BPE (GPT-2, Llama 3, Qwen2 style) or SentencePiece-style BPE over characters with byte fallback
/// (Llama 2, Mistral 7B, TinyLlama, Gemma). Pipeline: added tokens are cut out of the raw text first; each remaining
/// stretch is normalized (NFC, Prepend <c>▁</c>, Replace space → <c>▁</c>, ...), split by the pre-tokenizer (<c>Split</c>
/// regexes, ByteLevel's GPT-2 regex, Metaspace) and merged: byte-level pieces by Microsoft.ML.Tokenizers'
/// <see cref="BpeTokenizer"/>, character pieces by <see cref="CharBpe"/>. The post-processor (and
/// <c>add_bos_token</c>/<c>add_eos_token</c> of <c>tokenizer_config.json</c>) decides what <see cref="Encode"/> adds
/// around the text.
/// </summary>
/// <remarks>
/// Supported: <c>model.type</c> BPE with <c>ignore_merges</c>, <c>byte_fallback</c>, <c>unk_token</c>, <c>fuse_unk</c>;
/// merges as <c>"a b"</c> or <c>["a", "b"]</c>; <c>added_tokens</c> with <c>lstrip</c>/<c>rstrip</c>/<c>single_word</c>;
/// normalizers NFC/NFD/NFKC/NFKD/Prepend/Replace/Sequence; pre-tokenizers ByteLevel, Split (Isolated, Removed,
/// MergedWithPrevious, MergedWithNext), Metaspace (<c>prepend_scheme</c> always/first/never, <c>split</c>) and
/// Sequence; decoders ByteLevel, or Replace/ByteFallback/Fuse/Strip/Metaspace/Sequence for character BPE;
/// post-processors TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing and Sequence. Anything else
/// (Unigram and WordPiece models among them) is rejected with a <see cref="TokenizerFileException"/> naming the key.
/// Departures from Hugging Face: added tokens marked <c>normalized: true</c> are matched in the raw text, like the
/// others (identical unless the normalizer changes the token's own characters); an added token's <c>id</c> field is
/// used as given, whereas the Rust library renumbers added tokens that are missing from the vocab from the vocab
/// size on (the two agree for real files, where added tokens follow the vocab without gaps).
/// </remarks>
public sealed class HfTokenizer : ITokenizer
{
    /// <summary>The tokenizer file name inside a checkpoint folder.</summary>
    public const string TokenizerFileName = "tokenizer.json";

    /// <summary>The optional configuration file name (special-token strings, <c>add_bos_token</c>).</summary>
    public const string ConfigFileName = "tokenizer_config.json";

    readonly string _tokenizerJson;
    readonly string? _configJson;
    readonly BpeTokenizer? _bpe;     // byte-level models
    readonly CharBpe? _charBpe;      // SentencePiece-style models
    readonly TokenDecoder _decoder;  // SentencePiece-style models
    readonly Dictionary<string, int> _vocab;
    readonly bool _ignoreMerges;
    readonly TextNormalizer? _normalizer;
    readonly PreTokenizerSteps _preTokenizer;
    readonly int[] _prefix, _suffix;
    readonly string?[] _idToToken;
    readonly bool[] _special;
    readonly Dictionary<char, AddedToken[]> _addedByFirstChar; // longest first

    HfTokenizer(HfTokenizerDefinition d, string tokenizerJson, string? configJson)
    {
        _tokenizerJson = tokenizerJson;
        _configJson = configJson;
        _vocab = d.Vocab;
        _ignoreMerges = d.IgnoreMerges;
        _normalizer = d.Normalizer;
        _preTokenizer = d.PreTokenizer;
        _prefix = [.. d.Prefix];
        _suffix = [.. d.Suffix];
        if (d.ByteLevel) _bpe = BpeTokenizer.Create(new BpeOptions(d.Vocab) { Merges = d.Merges, ByteLevel = true });
        else _charBpe = new CharBpe(d.Vocab, d.Merges, d.CharBpe.UnkToken, d.CharBpe.FuseUnk, d.CharBpe.ByteFallback, d.IgnoreMerges);
        _decoder = d.Decoder;
        IsByteLevel = d.ByteLevel;

        var size = Math.Max(d.Vocab.Values.Max(), d.AddedTokens.Count == 0 ? -1 : d.AddedTokens.Max(t => t.Id)) + 1;
        _idToToken = new string?[size];
        _special = new bool[size];
        foreach (var (token, id) in d.Vocab) _idToToken[id] = token;
        foreach (var t in d.AddedTokens)
        {
            _idToToken[t.Id] = t.Content;
            _special[t.Id] = t.Special;
        }
        _addedByFirstChar = d.AddedTokens.GroupBy(t => t.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray());
        BosTokenId = d.Bos;
        EosTokenId = d.Eos;
        PadTokenId = d.Pad;
    }

    /// <summary>Reads <c>tokenizer.json</c> and, if present, <c>tokenizer_config.json</c> from <paramref name="directory"/>.</summary>
    /// <exception cref="FileNotFoundException"><c>tokenizer.json</c> does not exist.</exception>
    /// <exception cref="TokenizerFileException">A file is malformed, misses a key, or is not byte-level BPE.</exception>
    public static HfTokenizer Load(string directory)
    {
        var path = Path.Combine(directory, TokenizerFileName);
        var modelPath = Path.Combine(directory, SentencePieceModelFileName);
        if (!File.Exists(path) && !File.Exists(modelPath))
            throw new FileNotFoundException($"Hugging Face tokenizer file not found: {path} (nor {SentencePieceModelFileName})", path);
        var configPath = Path.Combine(directory, ConfigFileName);
        var config = File.Exists(configPath) ? File.ReadAllText(configPath) : null;
        var tokenizer = File.Exists(path)
            ? FromJson(File.ReadAllText(path), config, path, configPath)
            : FromSentencePieceModel(File.ReadAllBytes(modelPath), config, modelPath, configPath);
        tokenizer.ChatTemplate = HfChatTemplate.TryLoad(directory);
        var jinjaPath = Path.Combine(directory, HfChatTemplate.TemplateFileName);
        tokenizer._templateFile = File.Exists(jinjaPath) ? File.ReadAllText(jinjaPath) : null;
        return tokenizer;
    }

    string? _templateFile;

    /// <summary>A SentencePiece model file, read when a folder has no <c>tokenizer.json</c>.</summary>
    public const string SentencePieceModelFileName = "tokenizer.model";

    /// <summary>
    /// Builds a tokenizer from a SentencePiece BPE <c>tokenizer.model</c> (Llama 2, Mistral 7B, TinyLlama, Gemma), converted
    /// to the <c>tokenizer.json</c> transformers would make for it (<see cref="SentencePieceModel"/>); <see cref="Save"/>
    /// then writes that <c>tokenizer.json</c>, and <c>tokenizer_config.json</c> with <c>eos_token</c> filled in. BOS is added unless
    /// <c>add_bos_token</c> is false; the model's eos piece is the EOS token unless the config names another.
    /// </summary>
    /// <exception cref="TokenizerFileException">Not a SentencePiece protobuf, not BPE, or an unsupported normalizer.</exception>
    public static HfTokenizer FromSentencePieceModel(byte[] model, string? configJson = null,
        string modelPath = SentencePieceModelFileName, string configPath = ConfigFileName)
    {
        ArgumentNullException.ThrowIfNull(model);
        var (json, eosPiece) = SentencePieceModel.ToTokenizerJson(model, modelPath);
        // The model's eos piece is the EOS token unless tokenizer_config.json names one.
        var parseConfig = new System.Text.Json.Nodes.JsonObject { ["eos_token"] = eosPiece }.ToJsonString();
        if (configJson is not null)
        {
            parseConfig = configJson; // malformed or not an object: the parser below reports it with the file name
            try
            {
                if (System.Text.Json.Nodes.JsonNode.Parse(configJson) is System.Text.Json.Nodes.JsonObject cfg)
                {
                    if (!cfg.ContainsKey("eos_token")) cfg["eos_token"] = eosPiece;
                    parseConfig = cfg.ToJsonString();
                }
            }
            catch (System.Text.Json.JsonException) { }
        }
        var definition = HfTokenizerJson.Parse(json, modelPath, parseConfig, configJson is null ? modelPath : configPath);
        // Saved with the eos_token filled in, so that the tokenizer.json written by Save keeps its EOS.
        try
        {
            return new HfTokenizer(definition, json, parseConfig) { ChatTemplate = HfChatTemplate.FromFiles(configJson, configPath) };
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new TokenizerFileException(modelPath, "pieces", $"could not be turned into a BPE model: {e.Message}", e);
        }
    }

    /// <summary>
    /// The checkpoint's chat template (<c>chat_template.jinja</c>, or <c>chat_template</c> in tokenizer_config.json), or
    /// null when it has none; then Sharpen falls back to its plain <c>&lt;|role|&gt;</c> format (see <c>Data.ChatFormat</c>).
    /// </summary>
    public HfChatTemplate? ChatTemplate { get; private set; }

    /// <summary>Builds a tokenizer from the text of <c>tokenizer.json</c> and optionally <c>tokenizer_config.json</c>.</summary>
    /// <param name="tokenizerJson">Contents of <c>tokenizer.json</c>.</param>
    /// <param name="configJson">Contents of <c>tokenizer_config.json</c>, or null.</param>
    /// <param name="tokenizerPath">Names the first file in error messages.</param>
    /// <param name="configPath">Names the second file in error messages.</param>
    /// <exception cref="TokenizerFileException">A file is malformed, misses a key, or is not byte-level BPE.</exception>
    public static HfTokenizer FromJson(string tokenizerJson, string? configJson = null,
        string tokenizerPath = TokenizerFileName, string configPath = ConfigFileName)
    {
        ArgumentNullException.ThrowIfNull(tokenizerJson);
        var definition = HfTokenizerJson.Parse(tokenizerJson, tokenizerPath, configJson, configPath);
        try
        {
            return new HfTokenizer(definition, tokenizerJson, configJson) { ChatTemplate = HfChatTemplate.FromFiles(configJson, configPath) };
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new TokenizerFileException(tokenizerPath, "model", $"could not be turned into a BPE model: {e.Message}", e);
        }
    }

    /// <summary>True for byte-level BPE (GPT-2, Llama 3, Qwen2); false for SentencePiece-style BPE over characters
    /// (Llama 2, Mistral 7B, TinyLlama, Gemma).</summary>
    public bool IsByteLevel { get; }

    /// <inheritdoc/>
    public int VocabSize => _idToToken.Length;
    /// <inheritdoc/>
    public int? BosTokenId { get; }
    /// <inheritdoc/>
    public int? EosTokenId { get; }
    /// <inheritdoc/>
    public int? PadTokenId { get; }

    /// <summary>The ids <see cref="Encode"/> puts before the text when <c>addSpecialTokens</c> is true.</summary>
    public IReadOnlyList<int> SpecialPrefix => _prefix;

    /// <summary>The ids <see cref="Encode"/> puts after the text when <c>addSpecialTokens</c> is true.</summary>
    public IReadOnlyList<int> SpecialSuffix => _suffix;

    /// <inheritdoc/>
    /// <remarks>Departure from Hugging Face, on purpose: when <paramref name="text"/> already starts with the BOS token
    /// (as text a chat template rendered, e.g. Llama 3's <c>&lt;|begin_of_text|&gt;</c>), no special tokens are added,
    /// which is what transformers' <c>apply_chat_template(tokenize=True)</c> does; the Rust library would add a second BOS.</remarks>
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (addSpecialTokens && StartsWithBos(text)) addSpecialTokens = false;
        var ids = new List<int>(text.Length / 3 + _prefix.Length + _suffix.Length + 1);
        if (addSpecialTokens) ids.AddRange(_prefix);
        var at = 0;
        while (FindAddedToken(text, at) is var (start, end, token))
        {
            EncodeOrdinary(text[at..start], ids, at == 0);
            ids.Add(token.Id);
            at = end;
        }
        EncodeOrdinary(text[at..], ids, at == 0);
        if (addSpecialTokens) ids.AddRange(_suffix);
        return ids;
    }

    bool StartsWithBos(string text) =>
        _prefix.Length > 0 && BosTokenId is { } bos && _prefix[0] == bos && TokenToString(bos) is { Length: > 0 } bosText
        && _special[bos] && text.StartsWith(bosText, StringComparison.Ordinal);

    /// <summary>Text without added tokens: normalize, pre-tokenize, then BPE each byte-level piece.</summary>
    void EncodeOrdinary(string text, List<int> ids, bool atStart)
    {
        if (text.Length == 0) return;
        if (_normalizer is not null) text = _normalizer.Normalize(text);
        foreach (var piece in _preTokenizer.Split(text, atStart))
        {
            if (_charBpe is not null) { _charBpe.Encode(piece, ids); continue; }
            // ignore_merges (Llama 3): a piece that is itself a token is emitted whole, even if merging would split it.
            if (_ignoreMerges && _vocab.TryGetValue(ByteLevel.Encode(piece), out var whole)) ids.Add(whole);
            else ids.AddRange(_bpe!.EncodeToIds(piece, considerPreTokenization: false, considerNormalization: false));
        }
    }

    /// <summary>Leftmost-longest added token at or after <paramref name="from"/>, with its span after lstrip/rstrip.</summary>
    (int Start, int End, AddedToken Token)? FindAddedToken(string text, int from)
    {
        if (_addedByFirstChar.Count == 0) return null;
        for (var i = from; i < text.Length; i++)
        {
            if (!_addedByFirstChar.TryGetValue(text[i], out var candidates)) continue;
            foreach (var t in candidates)
            {
                if (string.CompareOrdinal(text, i, t.Content, 0, t.Content.Length) != 0) continue;
                var end = i + t.Content.Length;
                if (t.SingleWord && (i > 0 && IsWordChar(text[i - 1]) || end < text.Length && IsWordChar(text[end]))) continue;
                var start = i;
                if (t.LStrip) while (start > from && char.IsWhiteSpace(text[start - 1])) start--;
                if (t.RStrip) while (end < text.Length && char.IsWhiteSpace(text[end])) end++;
                return (start, end, t);
            }
        }
        return null;

        static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';
    }

    /// <inheritdoc/>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (!IsByteLevel)
        {
            var tokens = new List<string>();
            foreach (var id in ids)
                if (TokenToString(id) is { } t && !(skipSpecialTokens && _special[id])) tokens.Add(t);
            return _decoder.Decode(tokens);
        }
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            if (TokenToString(id) is not { } token) continue;
            if (skipSpecialTokens && _special[id]) continue;
            ByteLevel.AppendBytes(token, bytes);
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <inheritdoc/>
    public bool IsSpecial(int id) => id >= 0 && id < _special.Length && _special[id];

    /// <inheritdoc/>
    public string? TokenToString(int id) => id >= 0 && id < _idToToken.Length ? _idToToken[id] : null;

    /// <summary>Writes the original <c>tokenizer.json</c> (and <c>tokenizer_config.json</c> and <c>chat_template.jinja</c>,
    /// if there were) unchanged.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, TokenizerFileName), _tokenizerJson);
        if (_configJson is not null) File.WriteAllText(Path.Combine(directory, ConfigFileName), _configJson);
        if (_templateFile is not null) File.WriteAllText(Path.Combine(directory, HfChatTemplate.TemplateFileName), _templateFile);
    }
}
