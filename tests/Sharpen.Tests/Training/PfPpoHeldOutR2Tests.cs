using Sharpen.Algorithms;
using Sharpen.Data;
using Sharpen.Rewards;
using Sharpen.Tasks;
using Sharpen.Training;
using Sharpen.Training.Rl;
using static Sharpen.Tests.Algorithms.Tensors;

namespace Sharpen.Tests.Training;

/// <summary>PF-PPO's R² of reward vs. outcome per filter, measured on held-out rollouts (rl.algorithm: pf_ppo).</summary>
public class PfPpoHeldOutR2Tests
{
    [Fact]
    public void The_r2_of_each_filter_is_computed_on_the_rows_that_filter_keeps()
    {
        // One group of 4: rewards 0.9, 0.1, 0.6, 0.4; outcomes 1, 0, 0, 1.
        // All 4: dx = .4, −.4, .1, −.1; dy = .5, −.5, −.5, .5; Sxy = 0.3, Sxx = 0.34, Syy = 1 → R² = 0.09 / 0.34.
        // best_worst (1 best + 1 worst): rewards 0.9, 0.1 with outcomes 1, 0: two points lie on a line, R² = 1.
        // best alone: one point, no line (NaN).
        var o = RlOptions.For("pf_ppo") with { FilterBestFraction = 0.25, FilterWorstFraction = 0.25 };
        var r2 = RlTrainer.FilterR2([0.9, 0.1, 0.6, 0.4], [1, 0, 0, 1], 4, o, seed: 1, "x/");
        Close(0.09 / 0.34, r2["x/all"], 1e-12);
        Close(1.0, r2["x/best_worst"], 1e-12);
        Assert.True(double.IsNaN(r2["x/best"]));
        Assert.Equal(["x/all", "x/best", "x/best_random", "x/best_worst"], r2.Keys.Order());
    }

    /// <summary>Training prompt "a", held-out prompt "b"; only "c" is correct.</summary>
    sealed class TwoPromptTask : IVerifiableTask
    {
        public string Name => "two_prompts";
        public string Alphabet => "abcd";
        public IReadOnlyList<Problem> Generate(int count, int seed) => [.. Enumerable.Range(0, count).Select(i => new Problem($"{i}", "b", "c", new Dictionary<string, string>()))];
        public string Solve(Problem problem) => "c";
        public Verdict Verify(Problem problem, string completion) =>
            completion == "c" ? new Verdict(1, true, VerdictReasons.Correct, 0, "c") : new Verdict(0, false, VerdictReasons.WrongValue, 0, completion);
        public string? ExtractFinalAnswer(string completion) => completion;
    }

    [Fact]
    public void The_held_out_r2_reads_rollouts_of_held_out_prompts_not_the_trained_batch()
    {
        // The proxy reward equals the outcome on the training prompt "a" (batch R² = 1 wherever defined) but also pays the wrong
        // answer "d" on the held-out prompt "b", so there R² < 1 whenever c, d and another letter are sampled.
        IReadOnlyList<WeightedReward> proxy = [new(new DelegateReward("proxy", c => c.Completion == "c" || (c.Prompt == "b" && c.Completion == "d") ? 1.0 : 0.0))];
        var task = new TwoPromptTask();
        using var dir = new TempDir();
        using var policy = Bandit.Model();
        var o = RlOptions.For("pf_ppo") with
        {
            Iterations = 10, PromptsPerIteration = 8, MaxNewTokens = 1, LearningRate = 1e-3, CriticLearningRate = 1e-2, Beta = 0,
            EvalEvery = 2, EvalProblems = 16,
        };
        new RlTrainer(policy, Bandit.Tok, o, proxy) { Task = task, EvalProblems = task.Generate(16, 0) }
            .Run([new RlPrompt("a", new Dictionary<string, string>())], dir.Path);
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        var evalRows = rows.Where(r => r["eval_accuracy"] is not null).ToList();
        Assert.Equal(5, evalRows.Count);
        Assert.All(rows.Where(r => r["eval_accuracy"] is null), r => Assert.False(r.ContainsKey("pf/heldout_r2_all")));
        foreach (var row in rows)
            if (row["pf/r2_all"] is { } batch) Assert.Equal(1.0, batch.GetValue<double>(), 9);
        foreach (var row in evalRows)
        {
            foreach (var key in new[] { "pf/heldout_r2_all", "pf/heldout_r2_best", "pf/heldout_r2_best_worst", "pf/heldout_r2_best_random" })
                Assert.True(row.ContainsKey(key), key);
            // 64 held-out samples of a near-uniform policy over 8 tokens: c, d and others all occur, and "d" breaks the fit.
            double all = row["pf/heldout_r2_all"]!.GetValue<double>();
            Assert.InRange(all, 1e-6, 1 - 1e-6);
        }
    }
}
