using Sharpen.Data;
using Sharpen.Evaluation;

namespace Sharpen.Tests.Evaluation;

/// <summary>RewardMATH's one-correct-vs-many scoring, MRR and the correlations, by hand.</summary>
public class RewardModelBenchTests
{
    [Fact]
    public void Accuracy_needs_the_correct_solution_above_all_and_mrr_averages_reciprocal_ranks()
    {
        // Problem 1: correct 0.9 above 0.1, 0.5, 0.3 → rank 1. Problem 2: 0.4 below 0.6 and 0.8 → rank 3.
        // Problem 3: 0.5 tied with one incorrect → rank 2 (ties count against the reward model).
        var s = RewardModelBench.Score([(0.9, [0.1, 0.5, 0.3]), (0.4, [0.6, 0.1, 0.8]), (0.5, [0.5, 0.1, 0.2])]);
        Assert.Equal(1.0 / 3, s.Accuracy, 12);
        Assert.Equal((1 + 1.0 / 3 + 0.5) / 3, s.Mrr, 12);
        Assert.Equal(3, s.Problems);
        // A constant reward model ranks the correct solution last.
        Assert.Equal(4, RewardModelBench.Rank(1.0, [1.0, 1.0, 1.0]));
        Assert.Throws<ArgumentException>(() => RewardModelBench.Rank(double.NaN, [1.0]));
    }

    [Fact]
    public void Pearson_and_spearman_match_hand_values()
    {
        // x = 1,2,3; y = 2,4,7: means 2 and 13/3; Σdxdy = 5, Σdx² = 2, Σdy² = 38/3 → 5/√(76/3).
        Assert.Equal(5 / Math.Sqrt(76.0 / 3), RewardModelBench.Pearson([1.0, 2, 3], [2.0, 4, 7]), 12);
        // Monotone but not linear: Spearman 1.
        Assert.Equal(1.0, RewardModelBench.Spearman([1.0, 2, 3], [2.0, 4, 7]), 12);
        Assert.Equal(-1.0, RewardModelBench.Spearman([1.0, 2, 3], [9.0, 4, 1]), 12);
        // Ties share their mean rank.
        Assert.Equal([1.0, 2.5, 2.5, 4.0], RewardModelBench.Ranks([1.0, 5, 5, 7]));
        Assert.True(double.IsNaN(RewardModelBench.Pearson([1.0, 1, 1], [1.0, 2, 3])));
        Assert.Throws<ArgumentException>(() => RewardModelBench.Pearson([1.0], [1.0]));
    }

    [Fact]
    public void A_bad_bench_row_is_named_by_file_and_line()
    {
        using var dir = new TempDir();
        var path = dir.File("bench.jsonl");
        File.WriteAllText(path, "{\"prompt\":\"1+1\",\"correct\":\"2\",\"incorrect\":[\"3\"]}\n{\"prompt\":\"2+2\",\"correct\":\"4\",\"incorrect\":[]}\n");
        var e = Assert.Throws<DatasetFormatException>(() => RewardModelBench.Load(path));
        Assert.Contains("bench.jsonl:2", e.Message);
        Assert.Contains("incorrect", e.Message);
    }
}
