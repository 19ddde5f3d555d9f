using System.Text.Json.Nodes;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using static TorchSharp.torch;

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
        foreach (var key in new[] { "step", "reward_mean", "pairs", "dropped_ties", "loss", "accuracy", "margin", "timing/generate", "timing/update" })
            Assert.True(rows[0].ContainsKey(key), key);
        Assert.All(rows, r => Assert.Equal(16, r["pairs"]!.GetValue<int>() + r["dropped_ties"]!.GetValue<int>()));
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
        d.Validate();
    }
}
