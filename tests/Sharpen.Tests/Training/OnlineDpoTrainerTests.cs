using System.Text.Json.Nodes;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using static TorchSharp.torch;
using Sharpen.Training.Preference;
using Sharpen.Data;

namespace Sharpen.Tests.Training;

public class OnlineDpoTrainerTests
{
    static CharTokenizer Tok => Bandit.Tok;
    static CausalLM Model(long seed = 1) => Bandit.Model(seed);
    static IReadOnlyList<WeightedReward> RewardC => Bandit.RewardC;
    static double ProbabilityOfC(CausalLM m) => Bandit.ProbabilityOfC(m);

    [Fact]
    public void Online_dpo_learns_a_one_token_bandit_from_its_own_samples()
    {
        using var dir = new TempDir();
        using var model = Model();
        double before = ProbabilityOfC(model);
        Assert.InRange(before, 0.08, 0.17);
        var o = new OnlineDpoOptions { Iterations = 30, PromptsPerIteration = 16, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2 };
        var prompts = Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string>()), 16).ToList();
        var result = new OnlineDpoTrainer(model, Tok, o, RewardC).Run(prompts, dir.Path);
        double after = ProbabilityOfC(model);
        Assert.True(after > 0.8, $"p(c) went from {before:F3} to {after:F3}");

        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal(30, rows.Count);
        foreach (var key in new[] { "step", "reward_mean", "pairs", "prompts_without_pairs", "loss", "accuracy", "margin", "timing/generate", "timing/update" })
            Assert.True(rows[0].ContainsKey(key), key);
        Assert.All(rows, r => Assert.Equal(16, r["pairs"]!.GetValue<int>() + r["prompts_without_pairs"]!.GetValue<int>()));
        Assert.True(result.TotalPairs > 0);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal("dpo", summary["loss_name"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(dir.Path, "final", "model.safetensors")));
    }

    [Fact]
    public void Best_vs_worst_picks_the_first_best_and_the_first_worst()
    {
        Assert.Equal((1, 0), OnlineDpoTrainer.SelectPair([0.2, 0.9, 0.5, 0.9], PairSelection.BestVsWorst));
        Assert.Equal((2, 0), OnlineDpoTrainer.SelectPair([0.0, 0.5, 1.0, 0.0], PairSelection.BestVsWorst));
        Assert.Null(OnlineDpoTrainer.SelectPair([0.3, 0.3, 0.3], PairSelection.BestVsWorst));
        Assert.Null(OnlineDpoTrainer.SelectPair([0.7], PairSelection.BestVsWorst));
        // A margin below MinMargin drops the pair.
        Assert.Null(OnlineDpoTrainer.SelectPair([0.0, 0.05], PairSelection.BestVsWorst, minMargin: 0.1));
        Assert.Equal((1, 0), OnlineDpoTrainer.SelectPair([0.0, 0.1], PairSelection.BestVsWorst, minMargin: 0.1));
    }

    [Fact]
    public void All_margin_keeps_every_positive_against_every_negative_in_candidate_order()
    {
        // Samples 0..4 scored [0, 1, 0, 0, 1], the gold answer (index 5) scored 1; margin 0.5. Positives: samples 1, 4 and
        // the gold answer; negatives: samples 0, 2, 3; 3 × 3 = 9 pairs, by chosen index, then by rejected index.
        double[] r = [0, 1, 0, 0, 1, 1];
        (int, int)[] expected = [(1, 0), (1, 2), (1, 3), (4, 0), (4, 2), (4, 3), (5, 0), (5, 2), (5, 3)];
        Assert.Equal(expected, OnlineDpoTrainer.SelectPairs(r, PairSelection.AllMargin, minMargin: 0.5, students: 5));
        // best_vs_worst keeps the one pair the single-pair rule gave: the first best (sample 1) against the first worst (sample 0).
        Assert.Equal([(1, 0)], OnlineDpoTrainer.SelectPairs(r, PairSelection.BestVsWorst, minMargin: 0.5, students: 5));
        Assert.Equal((1, 0), OnlineDpoTrainer.SelectPair(r, PairSelection.BestVsWorst, minMargin: 0.5));
        // Ties form no pair (not even with margin 0): two equal positives each pair with the negative, not with each other.
        Assert.Empty(OnlineDpoTrainer.SelectPairs([1, 1, 1], PairSelection.AllMargin, minMargin: 0));
        Assert.Equal([(0, 1), (2, 1)], OnlineDpoTrainer.SelectPairs([1, 0.5, 1], PairSelection.AllMargin, minMargin: 0.5));
        // all_margin is not a single-pair rule.
        Assert.Throws<ArgumentException>(() => OnlineDpoTrainer.SelectPair(r, PairSelection.AllMargin));
    }

    [Fact]
    public void The_positive_floor_and_the_student_margin_filter_pairs_by_hand()
    {
        // Samples 0..3 scored [1, 0.75, 0, 0.5], the gold answer (index 4) 0.875 (eighths: exact in binary).
        // Rule: positive ≥ 0.625; margin 0.5, or 0.25 when the positive is a sample.
        //   sample 0 (1):     vs 1 (0.25 ≥ 0.25 ✓), vs 2 (1 ✓), vs 3 (0.5 ✓), vs gold (0.125 ✗)
        //   sample 1 (0.75):  vs 2 (0.75 ✓), vs 3 (0.25 ✓)
        //   sample 3 (0.5):   below the floor, so not vs 2 (0.5 would pass)
        //   gold (0.875):     vs 2 (0.875 ✓); vs 3 (0.375) and vs 1 (0.125) fail the gold's margin 0.5
        double[] r = [1, 0.75, 0, 0.5, 0.875];
        Assert.Equal([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (4, 2)],
            OnlineDpoTrainer.SelectPairs(r, PairSelection.AllMargin, minMargin: 0.5, minPositiveScore: 0.625, studentMargin: 0.25, students: 4));
        // No student margin: samples need 0.5 too, so (0, 1) and (1, 3) go.
        Assert.Equal([(0, 2), (0, 3), (1, 2), (4, 2)],
            OnlineDpoTrainer.SelectPairs(r, PairSelection.AllMargin, minMargin: 0.5, minPositiveScore: 0.625, students: 4));
        // No floor: sample 3 (0.5) beats sample 2 by 0.5 ≥ 0.25, so (3, 2) comes back.
        Assert.Equal([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (3, 2), (4, 2)],
            OnlineDpoTrainer.SelectPairs(r, PairSelection.AllMargin, minMargin: 0.5, studentMargin: 0.25, students: 4));
        // All five counted as samples: index 4 takes the student margin, so (4, 3) at 0.375 passes as well.
        Assert.Equal([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (4, 2), (4, 3)],
            OnlineDpoTrainer.SelectPairs(r, PairSelection.AllMargin, minMargin: 0.5, minPositiveScore: 0.625, studentMargin: 0.25));

        // The same rule on the single pair: best 0.75 (sample 1) vs worst 0.25 (sample 2), margin 0.5.
        double[] s = [0.5, 0.75, 0.25];
        Assert.Empty(OnlineDpoTrainer.SelectPairs(s, PairSelection.BestVsWorst, minMargin: 0.75));
        Assert.Equal([(1, 2)], OnlineDpoTrainer.SelectPairs(s, PairSelection.BestVsWorst, minMargin: 0.75, studentMargin: 0.5));
        Assert.Empty(OnlineDpoTrainer.SelectPairs(s, PairSelection.BestVsWorst, minMargin: 0.5, minPositiveScore: 0.875));
        // With the data's answer last (students: 2), the best is not a sample: the general margin 0.75 applies again.
        Assert.Empty(OnlineDpoTrainer.SelectPairs([0.5, 0.25, 0.75], PairSelection.BestVsWorst, minMargin: 0.75, studentMargin: 0.5, students: 2));
    }

    [Fact]
    public void Random_selection_takes_two_distinct_samples_and_prefers_the_better()
    {
        var rng = new Random(5);
        double[] r = [0.1, 0.4, 0.8, 0.2];
        for (int k = 0; k < 50; k++)
        {
            var (c, j) = OnlineDpoTrainer.SelectPair(r, PairSelection.Random, rng: rng)!.Value;
            Assert.NotEqual(c, j);
            Assert.True(r[c] > r[j]);
        }
        Assert.Null(OnlineDpoTrainer.SelectPair([1.0, 1.0], PairSelection.Random, rng: rng));
    }

    [Fact]
    public void Bad_options_name_their_key()
    {
        string Bad(OnlineDpoOptions o) => Assert.Throws<ArgumentException>(() => o.Validate()).Message;
        var d = new OnlineDpoOptions();
        Assert.Contains("online_dpo.samples_per_prompt", Bad(d with { SamplesPerPrompt = 1 }));
        Assert.Contains("online_dpo.loss", Bad(d with { Loss = "kto" }));
        Assert.Contains("online_dpo.beta", Bad(d with { Beta = 0 }));
        Assert.Contains("online_dpo.iterations", Bad(d with { Iterations = 0 }));
        Assert.Contains("online_dpo.prompts_per_iteration", Bad(d with { PromptsPerIteration = 0 }));
        Assert.Contains("online_dpo.temperature", Bad(d with { Temperature = 0 }));
        Assert.Contains("online_dpo.learning_rate", Bad(d with { LearningRate = -1 }));
        Assert.Contains("online_dpo.updates_per_iteration", Bad(d with { UpdatesPerIteration = 0 }));
        Assert.Contains("online_dpo.min_margin", Bad(d with { MinMargin = -0.1 }));
        Assert.Contains("online_dpo.max_new_tokens", Bad(d with { MaxNewTokens = 0 }));
        Assert.Contains("online_dpo.pair_selection", Bad(d with { PairSelection = (PairSelection)7 }));
        Assert.Contains("online_dpo.top_p", Bad(d with { TopP = 0 }));
        Assert.Contains("online_dpo.top_p", Bad(d with { TopP = 1.5 }));
        Assert.Contains("online_dpo.student_margin", Bad(d with { StudentMargin = -0.1 }));
        Assert.Contains("online_dpo.min_positive_score", Bad(d with { MinPositiveScore = double.NaN }));
        d.Validate();
    }
}
