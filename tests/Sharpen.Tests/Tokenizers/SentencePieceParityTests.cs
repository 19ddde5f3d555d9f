using System.Text;
using Sharpen.Tokenizers;
using Oracle = Tokenizers.DotNet.Tokenizer;

namespace Sharpen.Tests.Tokenizers;

/// <summary>SentencePiece-style tokenizer.json layouts, each loaded by us and by Hugging Face's Rust tokenizer.</summary>
public sealed class SentencePieceFixture : IDisposable
{
    public string Root { get; } = Path.Combine(Path.GetTempPath(), "sharpen-sp-" + Guid.NewGuid().ToString("N"));
    readonly Dictionary<string, (HfTokenizer Ours, Oracle Oracle)> _variants = [];

    public SentencePieceFixture()
    {
        foreach (var (name, json) in new[]
                 {
                     ("llama2", SentencePieceTokenizerJson.Llama2()),
                     ("llama2-unk", SentencePieceTokenizerJson.Llama2(byteFallback: false)),
                     ("mistral", SentencePieceTokenizerJson.Mistral()),
                     ("metaspace-always", SentencePieceTokenizerJson.MetaspaceAlwaysSplit()),
                     ("gemma", SentencePieceTokenizerJson.Gemma()),
                 })
        {
            var dir = SentencePieceTokenizerJson.WriteFolder(Root, name, json);
            _variants[name] = (HfTokenizer.Load(dir), new Oracle(Path.Combine(dir, "tokenizer.json")));
        }
    }

    public (HfTokenizer Ours, Oracle Oracle) this[string name] => _variants[name];

    public void Dispose()
    {
        foreach (var (_, o) in _variants.Values) o.Dispose();
        Directory.Delete(Root, recursive: true);
    }
}

/// <summary>Our ids and decoded text must equal Hugging Face's Rust tokenizer (Tokenizers.DotNet) on SentencePiece layouts.</summary>
[Trait("Kind", "Parity")]
public sealed class SentencePieceParityTests(SentencePieceFixture fixture) : IClassFixture<SentencePieceFixture>
{
    static readonly string[] SpecialTexts =
    [
        "<s>", "</s>", "<s>Hello", "Hello</s>", "Hello <s> world", "a</s>b", " <s> ", "<unk>", "x<unk>y", "<s><s>",
        "<bos>", "<eos>", "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n", "<start_of_turn>",
        "The zzyzx road", "zzyzx", " zzyzx", "▁already▁metaspace", "▁", "▁▁x", "x▁", "<0x41>", "<0x0A> literal",
        "    def main():\n        return 1\n", "\t\ttabbed", "trailing spaces   ", "   ", "a  b   c    d",
    ];

    public static IEnumerable<string> Texts() => SpecialTexts.Concat(HfTokenizerParityTests.Texts());

    public static TheoryData<string> Variants() => ["llama2", "llama2-unk", "mistral", "metaspace-always", "gemma"];

    [Theory]
    [MemberData(nameof(Variants))]
    public void Ids_match_the_rust_tokenizer(string variant)
    {
        var (ours, oracle) = fixture[variant];
        var mismatches = new List<string>();
        foreach (var text in Texts())
        {
            var expected = oracle.Encode(text).Select(u => (int)u).ToArray();
            // Our one deliberate departure: text that already starts with the BOS token gets no second BOS.
            if (ours.BosTokenId is { } bos && text.StartsWith(ours.TokenToString(bos)!, StringComparison.Ordinal))
            {
                Assert.True(expected.Length >= 2 && expected[0] == bos && expected[1] == bos, $"rust should double the BOS of {Escape(text)}");
                expected = expected[1..];
            }
            var actual = ours.Encode(text).ToArray();
            if (!expected.SequenceEqual(actual))
                mismatches.Add($"{Escape(text)}\n  rust: [{string.Join(",", expected)}]\n  ours: [{string.Join(",", actual)}]");
        }
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} mismatches:\n" + string.Join("\n", mismatches.Take(10)));
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Decode_matches_the_rust_tokenizer(string variant)
    {
        var (ours, oracle) = fixture[variant];
        var mismatches = new List<string>();
        foreach (var text in Texts())
        {
            var ids = oracle.Encode(text);
            var expected = oracle.Decode(ids);
            var actual = ours.Decode(ids.Select(i => (int)i));
            if (expected != actual) mismatches.Add($"{Escape(text)}\n  rust: {Escape(expected)}\n  ours: {Escape(actual)}");
        }
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} mismatches:\n" + string.Join("\n", mismatches.Take(10)));
    }

    /// <summary>With byte fallback every text without added tokens comes back unchanged (Llama 2's Strip decoder
    /// removes exactly the dummy prefix; Gemma adds none).</summary>
    [Theory]
    [InlineData("llama2")]
    [InlineData("gemma")]
    public void Byte_fallback_layouts_round_trip(string variant)
    {
        var (ours, _) = fixture[variant];
        foreach (var text in HfTokenizerParityTests.Texts().Where(t => !t.Contains('<')))
            Assert.Equal(text, ours.Decode(ours.Encode(text)));
    }

    static string Escape(string s) => string.Concat(s.Select(c => c < 0x20 || c > 0x7E ? $"\\u{(int)c:X4}" : c.ToString()));
}

/// <summary>Ids worked out by hand from the file layout (not from either implementation).</summary>
public sealed class SentencePieceTokenizerTests(SentencePieceFixture fixture) : IClassFixture<SentencePieceFixture>
{
    static int ByteId(int specials, byte b) => specials + b;

    [Fact]
    public void Llama2_layout_prepends_the_dummy_prefix_and_bos_and_falls_back_to_bytes()
    {
        var (ours, _) = fixture["llama2"];
        var vocab = SentencePieceTokenizerJson.VocabList(["<unk>", "<s>", "</s>"], 220);
        Assert.False(ours.IsByteLevel);
        Assert.Equal(1, ours.BosTokenId);
        // "▁the" is a merge of the corpus (the most frequent word), so "the" is <s> ▁the.
        Assert.Equal([1, vocab.IndexOf("▁the")], ours.Encode("the"));
        // 😀 is F0 9F 98 80 in UTF-8 and not in the vocab: ▁ then four byte tokens <0xF0> <0x9F> <0x98> <0x80> at 3 + byte.
        Assert.Equal([1, vocab.IndexOf("▁"), ByteId(3, 0xF0), ByteId(3, 0x9F), ByteId(3, 0x98), ByteId(3, 0x80)], ours.Encode("😀"));
        Assert.Equal("😀", ours.Decode(ours.Encode("😀")));
        // A lone byte token that is not valid UTF-8 decodes to U+FFFD.
        Assert.Equal("\uFFFD", ours.Decode([ByteId(3, 0xF0)]));
    }

    [Fact]
    public void Unknown_characters_fuse_into_one_unk_without_byte_fallback()
    {
        var (ours, _) = fixture["llama2-unk"];
        var vocab = SentencePieceTokenizerJson.VocabList(["<unk>", "<s>", "</s>"], 220);
        // 😀🚀 are two unknown characters in a row: one <unk> (id 0) with fuse_unk.
        Assert.Equal([1, vocab.IndexOf("▁"), 0], ours.Encode("😀🚀"));
    }

    [Fact]
    public void Gemma_layout_has_no_dummy_prefix()
    {
        var (ours, _) = fixture["gemma"];
        Assert.Equal(2, ours.BosTokenId);
        var ids = ours.Encode("the");
        Assert.Equal(2, ids[0]);
        // No ▁ in front: the pieces spell exactly "the".
        Assert.Equal("the", string.Concat(ids.Skip(1).Select(i => ours.TokenToString(i))));
        // Spaces become ▁ inside the text: "a b" spells a▁b.
        Assert.Equal("a▁b", string.Concat(ours.Encode("a b", addSpecialTokens: false).Select(i => ours.TokenToString(i))));
        Assert.Equal("the", ours.Decode(ids));
    }

    [Fact]
    public void Metaspace_first_prepends_only_at_the_start_of_the_text()
    {
        var (ours, _) = fixture["mistral"];
        var vocab = SentencePieceTokenizerJson.VocabList(["<unk>", "<s>", "</s>"], 220, ["▁zzyzx"]);
        var the = vocab.IndexOf("▁the");
        // At the start: ▁ is prepended. After the added token </s>: not (prepend_scheme first), so "the" is not "▁the".
        Assert.Equal(the, ours.Encode("the", addSpecialTokens: false)[0]);
        var after = ours.Encode("</s>the", addSpecialTokens: false);
        Assert.Equal(2, after[0]);
        Assert.NotEqual(the, after[1]);
        // ignore_merges: "▁zzyzx" is in the vocab but no merge builds it; it is still one token.
        Assert.Equal([vocab.IndexOf("▁zzyzx")], ours.Encode("zzyzx", addSpecialTokens: false));
    }
}

/// <summary>Bad SentencePiece-style files are rejected with the file and key named.</summary>
public sealed class SentencePieceFileErrorTests
{
    [Theory]
    [InlineData("\"<0x41>\":68,", "", "model.vocab", "<0x41>")]
    [InlineData("\"prepend_scheme\":\"first\"", "\"prepend_scheme\":\"sometimes\"", "pre_tokenizer.prepend_scheme", "sometimes")]
    [InlineData("\"replacement\":\"▁\"", "\"replacement\":\"__\"", "pre_tokenizer.replacement", "one character")]
    [InlineData("\"unk_token\":\"<unk>\"", "\"unk_token\":\"<nope>\"", "model.unk_token", "<nope>")]
    [InlineData("{\"type\":\"Metaspace\",\"replacement\":\"▁\",\"prepend_scheme\":\"first\",\"split\":false},\"model\"", "{\"type\":\"WordPiece\"},\"model\"", "decoder.type", "WordPiece")]
    public void Broken_files_name_the_key(string find, string replace, string key, string mentions)
    {
        var json = SentencePieceTokenizerJson.Mistral();
        Assert.True(json.Contains(find), $"setup: {find} not in the file");
        var e = Assert.Throws<TokenizerFileException>(() => HfTokenizer.FromJson(json.Replace(find, replace), null, "/x/tokenizer.json"));
        Assert.Equal(key, e.Key);
        Assert.Contains("/x/tokenizer.json", e.Message);
        Assert.Contains(mentions, e.Message);
    }
}
