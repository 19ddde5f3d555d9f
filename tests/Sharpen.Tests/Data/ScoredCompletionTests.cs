using Sharpen.Data;
using Sharpen.Training;
using Sharpen.Tests.Training;
using Sharpen.Training.Rl;

namespace Sharpen.Tests.Data;

public class ScoredCompletionTests
{
    [Fact]
    public void Logprobs_are_optional_and_a_sequence_logprob_is_accepted()
    {
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("s.jsonl"),
        [
            """{"prompt": "a", "completion": "c", "reward": 1, "logprobs": [-0.5, -0.25]}""",
            """{"prompt": "a", "completion": "d", "reward": 0, "logprob": -2.5, "source": "x"}""",
            """{"prompt": "a", "completion": "b", "reward": 0.5}""",
        ]);
        var rows = ScoredCompletion.Load(dir.File("s.jsonl")).Items;
        Assert.Equal(3, rows.Count);
        Assert.Equal(-0.75, rows[0].LogProb!.Value, 6);                   // the sum of the per-token log-probs
        Assert.Null(rows[1].LogProbs);
        Assert.Equal(-2.5, rows[1].LogProb);
        Assert.Equal("x", rows[1].Fields["source"]);
        Assert.Null(rows[2].LogProbs);
        Assert.Null(rows[2].LogProb);
        Assert.Equal($"{dir.File("s.jsonl")}:3", rows[2].Source);
    }

    [Theory]
    [InlineData("""{"prompt": "a", "completion": "c", "reward": 1, "logprob": 0.5}""", "\"logprob\" is not a log-probability")]
    [InlineData("""{"prompt": "a", "completion": "c", "reward": 1, "logprob": "x"}""", "\"logprob\" is not a log-probability")]
    [InlineData("""{"prompt": "a", "completion": "c", "reward": 1, "logprobs": [-1], "logprob": -3}""", "is not the sum")]
    public void A_bad_logprob_names_file_and_line(string line, string problem)
    {
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("s.jsonl"), ["""{"prompt": "a", "completion": "c", "reward": 1}""", line]);
        var e = Assert.Throws<DatasetFormatException>(() => ScoredCompletion.Load(dir.File("s.jsonl")));
        Assert.Contains($"s.jsonl:2", e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void Topr_names_the_row_without_per_token_logprobs()
    {
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("s.jsonl"),
        [
            """{"prompt": "a", "completion": "c", "reward": 1, "logprobs": [-0.5, -0.25]}""",
            "",
            """{"prompt": "a", "completion": "d", "reward": 0, "logprob": -2.5}""",
        ]);
        using var model = Bandit.Model();
        var rows = ScoredCompletion.Load(dir.File("s.jsonl")).Items;
        var e = Assert.Throws<ArgumentException>(() => new RlTrainer(model, Bandit.Tok, RlOptions.For("topr"), []).RunOffline(rows, dir.File("run")));
        Assert.Contains($"s.jsonl:3", e.Message);
        Assert.Contains("sequence-level \"logprob\" is not enough", e.Message);
    }
}
