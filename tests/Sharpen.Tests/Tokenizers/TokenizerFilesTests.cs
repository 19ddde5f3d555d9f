using Sharpen.Tokenizers;

namespace Sharpen.Tests.Tokenizers;

/// <summary>Folder lookup, specs, and the errors for bad tokenizer.json / tokenizer_config.json files.</summary>
public sealed class TokenizerFilesTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "sharpen-files-" + Guid.NewGuid().ToString("N"));

    public TokenizerFilesTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void Empty_folder_names_the_folder_and_the_files_looked_for()
    {
        var e = Assert.Throws<FileNotFoundException>(() => TokenizerFiles.Load(_dir));
        Assert.Contains(_dir, e.Message);
        Assert.Contains("char_tokenizer.json", e.Message);
        Assert.Contains("tokenizer.json", e.Message);
    }

    [Fact]
    public void Char_tokenizer_file_wins_over_tokenizer_json()
    {
        Write("tokenizer.json", HfTokenizerTests.TinyJson());
        CharTokenizer.Create("xy").Save(_dir);
        Assert.IsType<CharTokenizer>(TokenizerFiles.Load(_dir));
    }

    [Fact]
    public void Spec_can_be_a_folder()
    {
        Write("tokenizer.json", HfTokenizerTests.TinyJson());
        Assert.IsType<HfTokenizer>(TokenizerFiles.FromSpec(_dir));
    }

    [Fact]
    public void Unknown_spec_is_rejected()
    {
        var e = Assert.Throws<ArgumentException>(() => TokenizerFiles.FromSpec("bytes:abc"));
        Assert.Contains("chars:", e.Message);
    }

    /// <summary>Replaces one part of the hand-written tokenizer.json to break it in a specific way.</summary>
    public static TheoryData<string, string, string, string> BrokenTokenizerJson => new()
    {
        { "malformed JSON", "\"version\": \"1.0\",", "\"version\": \"1.0\" oops", "(root)" },
        { "missing model.vocab", "\"vocab\": {", "\"vocabulary\": {", "model.vocab" },
        { "Unigram model", "\"type\": \"BPE\"", "\"type\": \"Unigram\"", "model.type" },
        { "WordPiece model", "\"type\": \"BPE\"", "\"type\": \"WordPiece\"", "model.type" },
        { "one-part merge", "\"h e\"", "\"he\"", "model.merges[0]" },
        { "merge of unknown tokens", "\"h e\"", "\"h q\"", "model.merges[0]" },
        { "non-integer id", "\"h\": 0,", "\"h\": \"zero\",", "model.vocab.h" },
        { "no pre-tokenizer but a ByteLevel decoder", "\"pre_tokenizer\": { \"type\": \"ByteLevel\"", "\"pre_tokenizer\": null, \"x\": { \"type\": \"ByteLevel\"", "decoder.type" },
        { "Metaspace prepend_scheme", "\"pre_tokenizer\": { \"type\": \"ByteLevel\"", "\"pre_tokenizer\": { \"type\": \"Metaspace\", \"prepend_scheme\": \"sometimes\"", "pre_tokenizer.prepend_scheme" },
        { "Unknown pre-tokenizer", "\"pre_tokenizer\": { \"type\": \"ByteLevel\"", "\"pre_tokenizer\": { \"type\": \"Whitespace\"", "pre_tokenizer.type" },
        { "byte fallback with ByteLevel", "\"byte_fallback\": false", "\"byte_fallback\": true", "model.byte_fallback" },
        { "Metaspace with a ByteLevel decoder", "\"pre_tokenizer\": { \"type\": \"ByteLevel\"", "\"pre_tokenizer\": { \"type\": \"Metaspace\", \"x\": \"ByteLevel\"", "decoder.type" },
        { "Lowercase normalizer", "\"normalizer\": null", "\"normalizer\": { \"type\": \"Lowercase\" }", "normalizer.type" },
        { "added token without content", "\"content\": \"<|eot|>\",", "", "added_tokens[0].content" },
        { "BPE dropout", "\"dropout\": null", "\"dropout\": 0.1", "model.dropout" },
    };

    [Theory]
    [MemberData(nameof(BrokenTokenizerJson))]
    public void Broken_tokenizer_json_names_file_and_key(string what, string find, string replace, string key)
    {
        var json = HfTokenizerTests.TinyJson(merges: HfTokenizerTests.MergeForm.Strings);
        Assert.True(json.Contains(find), $"test setup for {what}: '{find}' not found");
        var path = Write("tokenizer.json", json.Replace(find, replace));
        var e = Assert.Throws<TokenizerFileException>(() => TokenizerFiles.Load(_dir));
        Assert.Contains(path, e.Message);
        Assert.Contains($"'{key}'", e.Message);
        Assert.Equal(key, e.Key);
        Assert.Equal(path, e.FilePath);
    }

    [Fact]
    public void Unsupported_model_type_says_what_was_expected()
    {
        Write("tokenizer.json", HfTokenizerTests.TinyJson().Replace("\"type\": \"BPE\"", "\"type\": \"Unigram\""));
        var e = Assert.Throws<TokenizerFileException>(() => TokenizerFiles.Load(_dir));
        Assert.Contains("\"Unigram\"", e.Message);
        Assert.Contains("expected \"BPE\"", e.Message);
    }

    [Theory]
    [InlineData("""{ "bos_token": "<nope>" }""", "bos_token")]
    [InlineData("""{ "eos_token": 7 }""", "eos_token")]
    [InlineData("""{ "pad_token": { "text": "<s>" } }""", "pad_token.content")]
    [InlineData("""{ "add_bos_token": "yes" }""", "add_bos_token")]
    [InlineData("""{ "bos_token": null, "add_eos_token": true }""", "add_eos_token")]
    [InlineData("""{ "bos_token": """, "(root)")]
    public void Broken_tokenizer_config_names_file_and_key(string config, string key)
    {
        Write("tokenizer.json", HfTokenizerTests.TinyJson(postProcessor: "null"));
        var path = Write("tokenizer_config.json", config);
        var e = Assert.Throws<TokenizerFileException>(() => TokenizerFiles.Load(_dir));
        Assert.Contains(path, e.Message);
        Assert.Contains($"'{key}'", e.Message);
    }
}
