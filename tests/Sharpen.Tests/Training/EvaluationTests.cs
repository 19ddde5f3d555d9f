using Sharpen.Training;
using Sharpen.Evaluation;
using Sharpen.Search;
using Sharpen.Data;

namespace Sharpen.Tests.Training;

public class EvaluationTests
{
    [Theory]
    [InlineData(5, 2, 2, 0.7)]          // 1 − C(3,2)/C(5,2) = 1 − 3/10
    [InlineData(10, 0, 3, 0.0)]
    [InlineData(4, 3, 2, 1.0)]          // fewer than k failures: some k-subset always passes
    [InlineData(3, 1, 1, 1.0 / 3)]
    [InlineData(8, 2, 3, 1 - 20.0 / 56)] // 1 − C(6,3)/C(8,3)
    public void Pass_at_k_is_the_unbiased_estimator(int n, int c, int k, double expected) =>
        Assert.Equal(expected, Evaluator.PassAtK(n, c, k), 12);

    [Fact]
    public void Majority_vote_counts_answers_and_breaks_ties_by_first_appearance()
    {
        Assert.Equal("a", Voting.MajorityVote(["a", null, "b", "b", "a"]));
        Assert.Equal("b", Voting.MajorityVote(["a", "b", "b"]));
        Assert.Null(Voting.MajorityVote([null, null]));
    }
}

public class RunLogTests
{
    [Fact]
    public void Non_finite_metrics_are_written_as_null_and_rows_read_back()
    {
        using var dir = new TempDir();
        var log = new RunLog(dir.Path);
        log.Metrics(new System.Text.Json.Nodes.JsonObject { ["step"] = 1, ["loss"] = double.NaN, ["x"] = 2.5, ["inner"] = new System.Text.Json.Nodes.JsonObject { ["y"] = double.PositiveInfinity } });
        Assert.Equal("""{"step":1,"loss":null,"x":2.5,"inner":{"y":null}}""", File.ReadAllText(log.MetricsPath).Trim());
        log.Summary(new System.Text.Json.Nodes.JsonObject { ["a"] = double.NegativeInfinity });
        Assert.Contains("\"a\": null", File.ReadAllText(log.SummaryPath));
    }
}
