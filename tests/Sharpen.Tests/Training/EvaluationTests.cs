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

    [Fact]
    public void Pass_at_1_of_the_samples_is_in_the_summary_only_when_samples_were_drawn()
    {
        // pass@1 from n samples with c correct is c/n (the estimator at k = 1): problems with 3/8 and 0/8 correct → (0.375 + 0)/2.
        double p1 = (Evaluator.PassAtK(8, 3, 1) + Evaluator.PassAtK(8, 0, 1)) / 2;
        Assert.Equal(0.1875, p1, 12);
        var verdicts = new Dictionary<string, int>();
        Assert.Equal(0.1875, new EvalResult(2, 8, 0.5, 0.5, 0.5, 10, verdicts) { PassAt1 = p1 }.ToJson()["pass_at_1"]!.GetValue<double>(), 12);
        Assert.False(new EvalResult(2, 1, 0.5, 0.5, 0.5, 10, verdicts).ToJson().ContainsKey("pass_at_1"));
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
