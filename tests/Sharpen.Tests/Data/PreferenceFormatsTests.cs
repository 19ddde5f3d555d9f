using Sharpen.Data;

namespace Sharpen.Tests.Data;

/// <summary>The preference formats of <see cref="JsonlDataset.LoadPreferences"/>: implicit-prompt conversations and ranked lists.</summary>
public sealed class PreferenceFormatsTests : IDisposable
{
    readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    string Write(params string[] lines)
    {
        var path = _dir.File("p.jsonl");
        File.WriteAllText(path, string.Join("\n", lines) + "\n");
        return path;
    }

    [Fact]
    public void Conversations_share_the_prompt_before_the_last_assistant_message_and_keep_scores()
    {
        var path = Write("""
            {"chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}], "score_chosen": 9.5, "score_rejected": 2}
            """);
        var e = Assert.Single(JsonlDataset.LoadPreferences(path).Items);
        Assert.Equal(("<|user|>\n2+2?\n<|assistant|>\n", "4", "5"), (e.Prompt, e.Chosen, e.Rejected));
        Assert.Equal("9.5", e.Fields["score_chosen"]);
        Assert.Equal("2", e.Fields["score_rejected"]);
    }

    [Fact]
    public void Multi_turn_conversations_render_all_earlier_turns()
    {
        var path = Write("""
            {"chosen": [{"role": "system", "content": "S"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "good"}], "rejected": [{"role": "system", "content": "S"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "bad"}]}
            """);
        var e = Assert.Single(JsonlDataset.LoadPreferences(path).Items);
        Assert.Equal("<|system|>\nS\n<|user|>\na\n<|assistant|>\nb\n<|user|>\nc\n<|assistant|>\n", e.Prompt);
        Assert.Equal(("good", "bad"), (e.Chosen, e.Rejected));
    }

    [Fact]
    public void Ranked_lists_expand_to_all_strictly_ordered_pairs_best_chosen_first()
    {
        // ranks [2, 1, 3] over (a, b, c): b is best, then a, then c.
        // Order: by chosen rank (b first), then rejected position: (b>a), (b>c), (a>c).
        var path = Write("""{"prompt": "p", "completions": ["a", "b", "c"], "ranks": [2, 1, 3], "id": "x"}""");
        var items = JsonlDataset.LoadPreferences(path).Items;
        Assert.Equal([("b", "a"), ("b", "c"), ("a", "c")], items.Select(i => (i.Chosen, i.Rejected)).ToArray());
        Assert.All(items, i => Assert.Equal("p", i.Prompt));
        Assert.All(items, i => Assert.Equal("x", i.Fields["id"]));
        Assert.Equal(("1", "2"), (items[0].Fields["rank_chosen"], items[0].Fields["rank_rejected"]));
    }

    [Fact]
    public void Ties_form_no_pair()
    {
        // ranks [1, 2, 1, 2] over (a, b, c, d): a and c tie for best, b and d tie for worst → a>b, a>d, c>b, c>d.
        Assert.Equal([(0, 1), (0, 3), (2, 1), (2, 3)], JsonlDataset.ExpandRanks([1, 2, 1, 2]).ToArray());
        var path = Write(
            """{"prompt": "p", "chosen": "x", "rejected": "y"}""",
            """{"prompt": "q", "completions": ["a", "b", "c", "d"], "ranks": [1, 2, 1, 2]}""");
        var items = JsonlDataset.LoadPreferences(path).Items;
        Assert.Equal(5, items.Count);
        Assert.Equal(("x", "y"), (items[0].Chosen, items[0].Rejected));
        Assert.Equal([("a", "b"), ("a", "d"), ("c", "b"), ("c", "d")], items.Skip(1).Select(i => (i.Chosen, i.Rejected)).ToArray());
    }

    [Theory]
    [InlineData("""{"prompt": "p", "completions": ["a", "b", "c"], "ranks": [1, 2]}""", "\"ranks\" has 2 items but \"completions\" has 3")]
    [InlineData("""{"prompt": "p", "completions": ["a", "b"], "ranks": [1, 1.5]}""", "\"ranks\"[1] is 1.5, not an integer")]
    [InlineData("""{"prompt": "p", "completions": ["a", "b"], "ranks": [1, "2"]}""", "\"ranks\"[1] is a string, not an integer")]
    [InlineData("""{"prompt": "p", "completions": ["a"], "ranks": [1]}""", "\"completions\" has 1 item(s); a ranked list needs at least 2")]
    [InlineData("""{"prompt": "p", "completions": ["a", "b"], "ranks": [0, 1]}""", "\"ranks\"[0] is 0; ranks start at 1")]
    [InlineData("""{"prompt": "p", "completions": ["a", "b"], "ranks": [2, 2]}""", "all ranks are equal")]
    [InlineData("""{"prompt": "p", "completions": ["a", "b"]}""", "key \"ranks\" is missing")]
    [InlineData("""{"chosen": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "v"}, {"role": "assistant", "content": "b"}]}""", "do not share a prompt")]
    [InlineData("""{"chosen": [{"role": "user", "content": "u"}], "rejected": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "b"}]}""", "\"chosen\" has no message with role \"assistant\"")]
    [InlineData("""{"chosen": "a", "rejected": "b"}""", "without \"prompt\" it must be a conversation")]
    [InlineData("""{"prompt": "p", "chosen": "a", "rejected": "b", "score_chosen": "high"}""", "\"score_chosen\" is a string, not a number")]
    public void Bad_lines_name_the_file_and_line(string bad, string problem)
    {
        var path = Write("""{"prompt": "p", "chosen": "a", "rejected": "b"}""", bad);
        var e = Assert.Throws<DatasetFormatException>(() => JsonlDataset.LoadPreferences(path));
        Assert.StartsWith($"{path}:2: ", e.Message);
        Assert.Contains(problem, e.Message);
        Assert.Equal(2, e.Line);
    }

    [Fact]
    public void A_bad_ranked_line_counts_as_one_skipped_line()
    {
        var path = Write(
            """{"prompt": "p", "completions": ["a", "b", "c"], "ranks": [1, 2]}""",
            """{"prompt": "p", "completions": ["a", "b", "c"], "ranks": [3, 2, 1]}""",
            "not json",
            """{"prompt": "p", "chosen": "a"}""");
        var result = JsonlDataset.LoadPreferences(path, skipBadLines: true);
        Assert.Equal(3, result.SkippedLines);
        Assert.Equal(3, result.Items.Count);
        Assert.Equal([("c", "a"), ("c", "b"), ("b", "a")], result.Items.Select(i => (i.Chosen, i.Rejected)).ToArray());
        Assert.StartsWith($"{path}:1: ", result.Errors[0]);
        Assert.StartsWith($"{path}:3: ", result.Errors[1]);
        Assert.StartsWith($"{path}:4: ", result.Errors[2]);
    }
}
