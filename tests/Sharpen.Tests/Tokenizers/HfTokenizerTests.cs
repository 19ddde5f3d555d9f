using Sharpen.Tokenizers;
using Oracle = Tokenizers.DotNet.Tokenizer;

namespace Sharpen.Tests.Tokenizers;

/// <summary>
/// A 26-token byte-level BPE written by hand, with the expected ids worked out on paper.
/// <code>
/// vocab  0 h  1 e  2 l  3 o  4 w  5 r  6 d  7 Ġ(space)  8 !  9 he  10 ll  11 hell  12 hello  13 Ġw  14 or
///        15 Ġwor  16 ld  17 Ġworld  18 Ã(byte C3)  19 ©(byte A9)  20 Ã© (= "é")  21 lo (no merge makes it)  22 Ċ(newline)
/// added  23 &lt;|eot|&gt; (special)  24 &lt;s&gt; (special, BOS via TemplateProcessing)  25 [N] (not special)
/// Added tokens follow the vocab without gaps, as in real files (with a gap, the Rust tokenizer numbered them from
/// the vocab size on, whatever their "id" said).
/// merges 0 h+e  1 l+l  2 he+ll  3 hell+o  4 Ġ+w  5 o+r  6 Ġw+or  7 l+d  8 Ġwor+ld  9 Ã+©
/// </code>
/// </summary>
public sealed class HfTokenizerTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "sharpen-hand-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Merges as "a b" strings, as ["a","b"] pairs, or mixed (ours accepts mixed; Rust wants one form).</summary>
    public enum MergeForm { Mixed, Strings, Pairs }

    static string Merges(MergeForm form)
    {
        (string A, string B)[] merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("Ġ", "w"), ("o", "r"), ("Ġw", "or"), ("l", "d"), ("Ġwor", "ld"), ("Ã", "©")];
        return string.Join(", ", merges.Select((m, i) =>
            form == MergeForm.Strings || form == MergeForm.Mixed && i % 3 == 0 ? $"\"{m.A} {m.B}\"" : $"[\"{m.A}\", \"{m.B}\"]"));
    }

    internal static string TinyJson(bool ignoreMerges = false, string postProcessor = TemplateBos, MergeForm merges = MergeForm.Mixed) => $$"""
        {
          "version": "1.0",
          "added_tokens": [
            { "id": 23, "content": "<|eot|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true },
            { "id": 24, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true },
            { "id": 25, "content": "[N]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false }
          ],
          "normalizer": null,
          "pre_tokenizer": { "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true },
          "post_processor": {{postProcessor}},
          "decoder": { "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true },
          "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": {{(ignoreMerges ? "true" : "false")}},
            "vocab": {
              "h": 0, "e": 1, "l": 2, "o": 3, "w": 4, "r": 5, "d": 6, "Ġ": 7, "!": 8, "he": 9, "ll": 10, "hell": 11,
              "hello": 12, "Ġw": 13, "or": 14, "Ġwor": 15, "ld": 16, "Ġworld": 17, "Ã": 18, "©": 19, "Ã©": 20,
              "lo": 21, "Ċ": 22
            },
            "merges": [ {{Merges(merges)}} ]
          }
        }
        """;

    const string TemplateBos = """
        {
          "type": "TemplateProcessing",
          "single": [ { "SpecialToken": { "id": "<s>", "type_id": 0 } }, { "Sequence": { "id": "A", "type_id": 0 } } ],
          "pair": [ { "Sequence": { "id": "A", "type_id": 0 } }, { "Sequence": { "id": "B", "type_id": 1 } } ],
          "special_tokens": { "<s>": { "id": "<s>", "ids": [24], "tokens": ["<s>"] } }
        }
        """;

    static HfTokenizer Tiny(bool ignoreMerges = false) => HfTokenizer.FromJson(TinyJson(ignoreMerges));

    /// <summary>Hand-worked: text → (ids without special tokens).</summary>
    public static TheoryData<string, int[]> HandWorked => new()
    {
        // "hello": h e l l o → (h e)=he → (l l)=ll → (he ll)=hell → (hell o)=hello
        { "hello", [12] },
        // " world": Ġ w o r l d → Ġw → or → Ġwor → ld → Ġworld; "!" alone
        { "hello world!", [12, 17, 8] },
        // GPT-2 regex: "hello", " " (\s+(?!\S) keeps one space back), " world"
        { "hello  world", [12, 7, 17] },
        // added token cut out first; "low" has no merges for (l o) or (o w)
        { "hell<|eot|>low", [11, 23, 2, 3, 4] },
        // é = bytes C3 A9 = "Ã©" (merge 9); the space stays alone as no merge joins Ġ and Ã
        { "hé", [0, 20] },
        { " é", [7, 20] },
        { "hello\n", [12, 22] },
        { "[N]hello<s>", [25, 12, 24] },
        { "", [] },
    };

    [Theory]
    [MemberData(nameof(HandWorked))]
    public void Encodes_hand_worked_ids(string text, int[] expected)
    {
        var tok = Tiny();
        Assert.Equal(expected, tok.Encode(text, addSpecialTokens: false));
        Assert.Equal([24, .. expected], tok.Encode(text)); // TemplateProcessing puts <s> first
    }

    [Theory]
    [MemberData(nameof(HandWorked))]
    public void Rust_tokenizer_agrees_with_the_hand_worked_ids(string text, int[] expected)
    {
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, TinyJson(merges: MergeForm.Pairs));
        using var oracle = new Oracle(path);
        Assert.Equal([24, .. expected], oracle.Encode(text).Select(u => (int)u));
    }

    [Theory]
    [InlineData(MergeForm.Strings)]
    [InlineData(MergeForm.Pairs)]
    [InlineData(MergeForm.Mixed)]
    public void Both_merge_forms_give_the_same_ids(MergeForm form)
    {
        var tok = HfTokenizer.FromJson(TinyJson(merges: form));
        Assert.Equal([24, 12, 17, 8, 7, 0, 20], tok.Encode("hello world! hé"));
    }

    [Fact]
    public void Decode_skips_only_special_tokens_when_asked()
    {
        var tok = Tiny();
        int[] ids = [24, 11, 23, 2, 3, 4, 25, 7, 20];
        Assert.Equal("helllow[N] é", tok.Decode(ids));
        Assert.Equal("<s>hell<|eot|>low[N] é", tok.Decode(ids, skipSpecialTokens: false));
        Assert.Equal("hello", tok.Decode([12, 99, -1])); // ids without a token are skipped
    }

    [Fact]
    public void Bytes_missing_from_the_vocab_are_dropped_like_rust()
    {
        // 'z' and 'q' have no token and there is no unk_token: the Rust tokenizer leaves them out of the word,
        // so the h and e around the z become neighbours and merge.
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, TinyJson(merges: MergeForm.Strings));
        using var oracle = new Oracle(path);
        Assert.Equal([24, 9], oracle.Encode("hze").Select(u => (int)u));
        Assert.Equal([24, 9], Tiny().Encode("hze"));
        Assert.Equal([24, 12], Tiny().Encode("qhello"));
    }

    [Theory]
    // lstrip+rstrip: the spaces around <|eot|> belong to it; "world" = w (o r) (l d) = [4, 14, 16]
    [InlineData("\"single_word\": false, \"lstrip\": true, \"rstrip\": true", "hello <|eot|> world", new[] { 12, 23, 4, 14, 16 })]
    // lstrip only: the space after stays and joins " world"
    [InlineData("\"single_word\": false, \"lstrip\": true, \"rstrip\": false", "hello <|eot|> world", new[] { 12, 23, 17 })]
    // neither: "hello", " " (alone, before the token), <|eot|>, " world"
    [InlineData("\"single_word\": false, \"lstrip\": false, \"rstrip\": false", "hello <|eot|> world", new[] { 12, 7, 23, 17 })]
    // single_word: inside "hello<|eot|>" it is not a word of its own, so it is not matched; the ids come from the
    // Rust tokenizer, as the leftover characters are partly missing from the vocab (see the test above).
    [InlineData("\"single_word\": true, \"lstrip\": false, \"rstrip\": false", "hello<|eot|>", null)]
    [InlineData("\"single_word\": true, \"lstrip\": false, \"rstrip\": false", "hello <|eot|>", new[] { 12, 7, 23 })]
    public void Added_token_strip_and_single_word_options(string options, string text, int[]? expected)
    {
        var json = TinyJson(postProcessor: "null", merges: MergeForm.Strings)
            .Replace("\"content\": \"<|eot|>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false", $"\"content\": \"<|eot|>\", {options}");
        Assert.Contains(options, json);
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, json);
        using var oracle = new Oracle(path);
        var rust = oracle.Encode(text).Select(u => (int)u).ToArray();
        if (expected is not null) Assert.Equal(expected, rust);
        Assert.Equal(rust, HfTokenizer.FromJson(json).Encode(text));
    }

    [Fact]
    public void Ignore_merges_emits_a_whole_vocab_word_that_merges_cannot_build()
    {
        Assert.Equal([2, 3], Tiny(ignoreMerges: false).Encode("lo", addSpecialTokens: false));
        Assert.Equal([21], Tiny(ignoreMerges: true).Encode("lo", addSpecialTokens: false));
        Assert.Equal([2, 3, 4], Tiny(ignoreMerges: true).Encode("low", addSpecialTokens: false)); // "low" is not a token

        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, TinyJson(ignoreMerges: true, merges: MergeForm.Strings));
        using var oracle = new Oracle(path);
        Assert.Equal([24, 21], oracle.Encode("lo").Select(u => (int)u));
    }

    [Fact]
    public void Token_table_and_special_ids()
    {
        var tok = Tiny();
        Assert.Equal(26, tok.VocabSize);
        Assert.Equal("Ġworld", tok.TokenToString(17));
        Assert.Equal("<|eot|>", tok.TokenToString(23));
        Assert.Null(tok.TokenToString(26));
        Assert.True(tok.IsSpecial(23));
        Assert.True(tok.IsSpecial(24));
        Assert.False(tok.IsSpecial(25));
        Assert.False(tok.IsSpecial(12));
        Assert.Equal(24, tok.BosTokenId); // first token of the template, no config
        Assert.Null(tok.EosTokenId);
        Assert.Null(tok.PadTokenId);
    }

    [Fact]
    public void Config_sets_special_tokens_and_add_flags()
    {
        const string config = """{ "bos_token": "<s>", "eos_token": { "content": "<|eot|>" }, "pad_token": "<|eot|>", "add_eos_token": true }""";
        var tok = HfTokenizer.FromJson(TinyJson(), config);
        Assert.Equal((24, 23, 23), (tok.BosTokenId!.Value, tok.EosTokenId!.Value, tok.PadTokenId!.Value));
        Assert.Equal([24, 12, 23], tok.Encode("hello"));

        var noBos = HfTokenizer.FromJson(TinyJson(), """{ "bos_token": "<s>", "add_bos_token": false }""");
        Assert.Equal([12], noBos.Encode("hello"));

        var bosFromConfig = HfTokenizer.FromJson(TinyJson(postProcessor: "null"), """{ "bos_token": "<s>", "add_bos_token": true }""");
        Assert.Equal([24, 12], bosFromConfig.Encode("hello"));
    }

    [Theory]
    [InlineData("null", new int[0], new int[0])]
    [InlineData("""{ "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true }""", new int[0], new int[0])]
    [InlineData("""{ "type": "RobertaProcessing", "sep": ["<|eot|>", 23], "cls": ["<s>", 24], "trim_offsets": true, "add_prefix_space": false }""", new[] { 24 }, new[] { 23 })]
    [InlineData("""{ "type": "Sequence", "processors": [ { "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true }, { "type": "TemplateProcessing", "single": [ { "SpecialToken": { "id": "<s>", "type_id": 0 } }, { "Sequence": { "id": "A", "type_id": 0 } }, { "SpecialToken": { "id": "<|eot|>", "type_id": 0 } } ], "pair": [], "special_tokens": { "<s>": { "id": "<s>", "ids": [24], "tokens": ["<s>"] }, "<|eot|>": { "id": "<|eot|>", "ids": [23], "tokens": ["<|eot|>"] } } } ] }""", new[] { 24 }, new[] { 23 })]
    public void Post_processor_decides_what_add_special_tokens_adds(string postProcessor, int[] prefix, int[] suffix)
    {
        var tok = HfTokenizer.FromJson(TinyJson(postProcessor: postProcessor));
        Assert.Equal([.. prefix, 12, .. suffix], tok.Encode("hello"));
        Assert.Equal([12], tok.Encode("hello", addSpecialTokens: false));

        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, TinyJson(postProcessor: postProcessor, merges: MergeForm.Strings));
        using var oracle = new Oracle(path);
        Assert.Equal([.. prefix, 12, .. suffix], oracle.Encode("hello").Select(u => (int)u));
    }

    [Fact]
    public void Save_then_load_gives_the_same_tokenizer()
    {
        const string config = """{ "bos_token": "<s>", "eos_token": "<|eot|>" }""";
        var tok = HfTokenizer.FromJson(TinyJson(), config);
        tok.Save(_dir);
        Assert.True(File.Exists(Path.Combine(_dir, "tokenizer_config.json")));
        var loaded = TokenizerFiles.Load(_dir);
        Assert.IsType<HfTokenizer>(loaded);
        Assert.Equal([24, 12, 17, 8], loaded.Encode("hello world!"));
        Assert.Equal(23, loaded.EosTokenId);
        Assert.Equal("hello world!", loaded.Decode(loaded.Encode("hello world!")));
    }
}
