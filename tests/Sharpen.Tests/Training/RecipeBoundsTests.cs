using Sharpen.Data;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Recipes;

namespace Sharpen.Tests.Training;

/// <summary>Recipes and user patterns cannot hang or exhaust memory, and a misspelled key names its nearest valid one.</summary>
public class RecipeBoundsTests
{
    const string Base = "kind: sft\nmodel: { init: { hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 8 } }\ntask: { name: countdown }\n";

    [Fact]
    public void A_yaml_alias_bomb_is_rejected_quickly()
    {
        // Nine levels of nine aliases each: 9^9 ≈ 387 million values if expanded.
        var yaml = "a: &a [x, x, x, x, x, x, x, x, x]\n" + string.Concat(Enumerable.Range(1, 8).Select(i =>
            $"{(char)('a' + i)}: &{(char)('a' + i)} [{string.Join(", ", Enumerable.Repeat("*" + (char)('a' + i - 1), 9))}]\n"));
        var e = Assert.Throws<RecipeException>(() => Recipe.Parse(yaml, "bomb.yaml"));
        Assert.Contains("bomb.yaml:", e.Message);
        Assert.Contains($"more than {100_000} values", e.Message.Replace(",", ""));
    }

    [Theory]
    [InlineData("sft: { max_stepz: 3 }\n", "unknown key 'sft.max_stepz'; did you mean 'max_steps'?")]
    [InlineData("evall: { problems: 3 }\n", "unknown key 'evall'; did you mean 'eval'?")]
    [InlineData("data: { trian: x.jsonl }\n", "unknown key 'data.trian'; did you mean 'train'?")]
    [InlineData("rl: { learning_rat: 0.1 }\n", "unknown key 'rl.learning_rat'; did you mean 'learning_rate'?")]
    public void Unknown_keys_suggest_the_nearest_valid_key(string extra, string expected)
    {
        var e = Assert.Throws<RecipeException>(() => Recipe.Parse(Base.Replace("kind: sft", extra.StartsWith("rl") ? "kind: rl" : "kind: sft") + extra, "r.yaml"));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_key_far_from_every_valid_one_lists_them()
    {
        var e = Assert.Throws<RecipeException>(() => Recipe.Parse(Base + "sft: { zzzzzzzzzzzz: 1 }\n", "r.yaml"));
        Assert.Contains("unknown key 'sft.zzzzzzzzzzzz'; known keys: ", e.Message);
        Assert.Contains("max_steps", e.Message);
    }

    [Theory]
    [InlineData("kitten", "sitting", 3)]
    [InlineData("hiden_size", "hidden_size", 1)]
    [InlineData("", "abc", 3)]
    [InlineData("flaw", "lawn", 2)]
    public void Levenshtein_distance_matches_hand_counts(string a, string b, int d) => Assert.Equal(d, UnknownKey.Distance(a, b));

    [Fact]
    public void A_catastrophic_split_regex_in_tokenizer_json_times_out_with_a_clear_error()
    {
        var json = Sharpen.Tests.Tokenizers.HfTokenizerTests.TinyJson().Replace(
            "\"pre_tokenizer\": { \"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true }",
            "\"pre_tokenizer\": { \"type\": \"Sequence\", \"pretokenizers\": [ { \"type\": \"Split\", \"pattern\": { \"Regex\": \"(h+)+$\" }, \"behavior\": \"Isolated\", \"invert\": false }, { \"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": false } ] }");
        var tok = HfTokenizer.FromJson(json);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<TokenizerFileException>(() => tok.Encode(new string('h', 40) + "!"));
        Assert.Contains("'pre_tokenizer.pretokenizers[0].pattern.Regex'", e.Message);
        Assert.Contains("(h+)+$", e.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), "the match was not bounded");
    }

    [Fact]
    public void A_catastrophic_step_splitter_regex_times_out_with_a_clear_error()
    {
        var splitter = StepSplitter.OnRegex("(a+)+b");
        var e = Assert.Throws<ArgumentException>(() => splitter.StepEnds(new string('a', 40) + "c").ToList());
        Assert.Contains("step splitter pattern '(a+)+b' took longer than 1 s", e.Message);
    }
}
