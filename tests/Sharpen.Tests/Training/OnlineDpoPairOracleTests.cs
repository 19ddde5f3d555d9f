using Sharpen.Training;
using Sharpen.Training.Preference;
using Sharpen.Rewards;

namespace Sharpen.Tests.Training;

public class OnlineDpoPairOracleTests
{
    [Fact]
    public void A_pair_oracle_replaces_selection_and_its_labels_are_what_is_trained()
    {
        using var dir = new TempDir();
        using var model = Bandit.Model();
        double before = Bandit.ProbabilityOfC(model);
        int calls = 0, labelled = 0;
        // An adversarial labeller: the worse sample is "chosen". DPO must then move p(c) down, not up.
        (int, int)? Inverted(IReadOnlyList<double> r, Random rng)
        {
            calls++;
            Assert.Equal(4, r.Count);
            int best = 0, worst = 0;
            for (int i = 1; i < r.Count; i++) { if (r[i] > r[best]) best = i; if (r[i] < r[worst]) worst = i; }
            if (best == worst || r[best] == r[worst]) return null;
            labelled++;
            return (worst, best);
        }
        var o = new OnlineDpoOptions { Iterations = 20, PromptsPerIteration = 16, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2 };
        var prompts = Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string>()), 16).ToList();
        var result = new OnlineDpoTrainer(model, Bandit.Tok, o, Bandit.RewardC) { PairOracle = Inverted }.Run(prompts, dir.Path);
        double after = Bandit.ProbabilityOfC(model);

        Assert.Equal(20 * 16, calls);                         // once per prompt per iteration
        Assert.Equal(labelled, result.TotalPairs);            // null drops the prompt, a pair is trained on
        Assert.True(labelled > 0);
        Assert.True(after < before / 2, $"p(c) went from {before:F3} to {after:F3}; the inverted labels should push it down");
    }
}
