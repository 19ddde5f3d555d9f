using Sharpen.Tokenizers;

namespace Sharpen.Tests.Tokenizers;

public sealed class CharTokenizerTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "sharpen-chars-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void Ids_are_specials_then_alphabet_in_order()
    {
        var tok = CharTokenizer.Create("ab+");
        // <pad>=0 <bos>=1 <eos>=2 <unk>=3 a=4 b=5 +=6; 'c' is unknown
        Assert.Equal([1, 4, 5, 6, 3], tok.Encode("ab+c"));
        Assert.Equal([4, 5, 6, 3], tok.Encode("ab+c", addSpecialTokens: false));
        Assert.Equal(7, tok.VocabSize);
        Assert.Equal((0, 1, 2), (tok.PadTokenId!.Value, tok.BosTokenId!.Value, tok.EosTokenId!.Value));
        Assert.Equal("a", tok.TokenToString(4));
        Assert.Equal("<unk>", tok.TokenToString(3));
        Assert.Null(tok.TokenToString(7));
        Assert.Null(tok.TokenToString(-1));
        Assert.True(tok.IsSpecial(2));
        Assert.False(tok.IsSpecial(4));
    }

    [Fact]
    public void Decode_skips_specials_when_asked()
    {
        var tok = CharTokenizer.Create("ab+");
        int[] ids = [1, 4, 6, 5, 2, 0];
        Assert.Equal("a+b", tok.Decode(ids));
        Assert.Equal("<bos>a+b<eos><pad>", tok.Decode(ids, skipSpecialTokens: false));
        Assert.Equal("ab", tok.Decode([4, 99, 5])); // ids without a token are skipped
    }

    [Fact]
    public void A_character_above_U_FFFF_is_one_token()
    {
        var tok = CharTokenizer.Create("😀x");
        Assert.Equal([4, 5, 4], tok.Encode("😀x😀", addSpecialTokens: false));
        Assert.Equal("😀x😀", tok.Decode([4, 5, 4]));
    }

    [Fact]
    public void Duplicate_alphabet_character_is_rejected()
    {
        var e = Assert.Throws<ArgumentException>(() => CharTokenizer.Create("abca"));
        Assert.Contains("alphabet", e.Message);
        Assert.Contains("'a'", e.Message);
    }

    [Fact]
    public void Words_are_single_tokens_after_the_alphabet_and_the_longest_one_wins()
    {
        var tok = CharTokenizer.Create("0123 -", ["10", "12", "123"]);
        // <pad>=0 <bos>=1 <eos>=2 <unk>=3, '0'..'3' = 4..7, ' ' = 8, '-' = 9, "10" = 10, "12" = 11, "123" = 12
        Assert.Equal(13, tok.VocabSize);
        Assert.Equal([1, 10, 9, 12, 8, 11, 5], tok.Encode("10-123 121"));
        Assert.Equal([5, 7, 8, 11], tok.Encode("13 12", addSpecialTokens: false));   // "13" is no word: '1', '3'
        Assert.Equal([5], tok.Encode("1", addSpecialTokens: false));
        Assert.Equal("10-123 1", tok.Decode([10, 9, 12, 8, 5]));
        Assert.Equal("12", tok.TokenToString(11));
        tok.Save(_dir);
        var back = CharTokenizer.Load(_dir);
        Assert.Equal(["10", "12", "123"], back.Words);
        Assert.Equal(tok.Encode("12-3 10"), back.Encode("12-3 10"));
        Assert.Contains("at least two", Assert.Throws<ArgumentException>(() => CharTokenizer.Create("01", ["1"])).Message);
        Assert.Contains("not in the alphabet", Assert.Throws<ArgumentException>(() => CharTokenizer.Create("01", ["12"])).Message);
        Assert.Contains("repeats", Assert.Throws<ArgumentException>(() => CharTokenizer.Create("01", ["10", "10"])).Message);
    }

    [Fact]
    public void Empty_alphabet_is_rejected() =>
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => CharTokenizer.Create("")).Message);

    [Fact]
    public void Save_then_load_round_trips()
    {
        var tok = CharTokenizer.Create("0123456789+-*/=()., ");
        tok.Save(_dir);
        Assert.True(File.Exists(Path.Combine(_dir, "char_tokenizer.json")));
        var loaded = Assert.IsType<CharTokenizer>(TokenizerFiles.Load(_dir));
        Assert.Equal(tok.Alphabet, loaded.Alphabet);
        Assert.Equal(tok.Encode("(1+2)*3 = 9."), loaded.Encode("(1+2)*3 = 9."));
        Assert.Equal("(1+2)*3 = 9.", loaded.Decode(loaded.Encode("(1+2)*3 = 9.")));
    }

    [Fact]
    public void From_spec_builds_a_char_tokenizer()
    {
        var tok = Assert.IsType<CharTokenizer>(TokenizerFiles.FromSpec("chars:0123456789+-*/=()., "));
        Assert.Equal(4 + 20, tok.VocabSize); // 10 digits + "+-*/=()., " (10 characters, the last a space)
        Assert.Equal([1, 5, 14, 6], tok.Encode("1+2")); // '1'=4+1, '+'=4+10, '2'=4+2
        Assert.Equal([23], tok.Encode(" ", addSpecialTokens: false));
    }

    [Fact]
    public void Char_file_with_duplicate_character_names_file_and_key()
    {
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, "char_tokenizer.json");
        File.WriteAllText(path, """{ "type": "chars", "alphabet": "xyzy", "special_tokens": ["<pad>", "<bos>", "<eos>", "<unk>"] }""");
        var e = Assert.Throws<TokenizerFileException>(() => TokenizerFiles.Load(_dir));
        Assert.Contains(path, e.Message);
        Assert.Contains("'alphabet'", e.Message);
        Assert.Contains("'y'", e.Message);
        Assert.Equal("alphabet", e.Key);
    }

    [Theory]
    [InlineData("""{ "type": "bytes", "alphabet": "ab", "special_tokens": ["<pad>", "<bos>", "<eos>", "<unk>"] }""", "type")]
    [InlineData("""{ "alphabet": "ab", "special_tokens": ["<pad>", "<bos>", "<eos>", "<unk>"] }""", "type")]
    [InlineData("""{ "type": "chars", "special_tokens": ["<pad>", "<bos>", "<eos>", "<unk>"] }""", "alphabet")]
    [InlineData("""{ "type": "chars", "alphabet": 5, "special_tokens": ["<pad>", "<bos>", "<eos>", "<unk>"] }""", "alphabet")]
    [InlineData("""{ "type": "chars", "alphabet": "ab", "special_tokens": ["<bos>", "<pad>", "<eos>", "<unk>"] }""", "special_tokens")]
    [InlineData("""{ "type": "chars", "alphabet": "ab" """, "(root)")]
    public void Bad_char_file_names_file_and_key(string json, string key)
    {
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, "char_tokenizer.json");
        File.WriteAllText(path, json);
        var e = Assert.Throws<TokenizerFileException>(() => CharTokenizer.Load(_dir));
        Assert.Contains(path, e.Message);
        Assert.Contains($"'{key}'", e.Message);
    }
}
