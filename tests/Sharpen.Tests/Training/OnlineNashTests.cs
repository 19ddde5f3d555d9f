using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Rewards;
using Sharpen.Training;
using Sharpen.Training.Preference;
using Sharpen.Recipes;

namespace Sharpen.Tests.Training;

/// <summary>Online IPO, IPO-MD (samples from the geometric mixture with the reference) and INPO (with a pairwise judge) learn the one-token bandit.</summary>
public class OnlineNashTests
{
    static readonly List<RlPrompt> Prompts = Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string>()), 16).ToList();

    static OnlineDpoOptions Base => new() { Iterations = 20, PromptsPerIteration = 16, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2 };

    [Fact]
    public void Online_ipo_learns_the_bandit_from_its_own_samples()
    {
        using var dir = new TempDir();
        using var model = Bandit.Model();
        double before = Bandit.ProbabilityOfC(model);
        new OnlineDpoTrainer(model, Bandit.Tok, Base with { Loss = "ipo", Beta = 0.5 }, Bandit.RewardC).Run(Prompts, dir.Path);
        double after = Bandit.ProbabilityOfC(model);
        // IPO regresses each pair's log-ratio gap onto 1/(2τ) = 1 rather than pushing it to infinity, so p(c) rises but stays regularised.
        Assert.True(after > before + 0.1, $"p(c) {before:F3} → {after:F3}");
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal(("ipo", "policy"), (summary["loss_name"]!.GetValue<string>(), summary["sampling"]!.GetValue<string>()));
    }

    [Fact]
    public void Ipo_md_samples_from_the_mixture_with_the_reference_and_learns_the_bandit()
    {
        using var dir = new TempDir();
        using var model = Bandit.Model();
        double before = Bandit.ProbabilityOfC(model);
        var o = Base with { Loss = "ipo", Beta = 0.5, Sampling = SamplingSource.Mixture, MixtureBeta = 0.25 };
        new OnlineDpoTrainer(model, Bandit.Tok, o, Bandit.RewardC).Run(Prompts, dir.Path);
        double after = Bandit.ProbabilityOfC(model);
        Assert.True(after > before + 0.1, $"p(c) {before:F3} → {after:F3}");
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal("mixture(beta=0.25)", summary["sampling"]!.GetValue<string>());
    }

    [Fact]
    public void Inpo_learns_from_a_pairwise_judge_and_counts_its_calls()
    {
        using var dir = new TempDir();
        using var model = Bandit.Model();
        double before = Bandit.ProbabilityOfC(model);
        // A general preference, not a reward: "c" beats anything else; among the rest, b ≻ d ≻ a ≻ b (a cycle, no reward fits it).
        string[] cycle = ["b", "d", "a"];
        double Judge(string prompt, string x, string y)
        {
            if (x == y) return 0.5;
            if (x == "c") return 1;
            if (y == "c") return 0;
            int i = Array.IndexOf(cycle, x), j = Array.IndexOf(cycle, y);
            if (i < 0 || j < 0) return 0.5;
            return (i + 1) % 3 == j ? 1 : 0;
        }
        var o = Base with { Loss = "inpo", Beta = 0.25, Eta = 0.5 };
        new OnlineDpoTrainer(model, Bandit.Tok, o, Bandit.RewardC) { PairwiseJudge = Judge }.Run(Prompts, dir.Path);
        double after = Bandit.ProbabilityOfC(model);
        Assert.True(after > before + 0.2, $"p(c) {before:F3} → {after:F3}");
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        // 16 prompts × 4 samples judged in 2 pairs each = 32 calls per iteration, cumulative.
        Assert.Equal(Enumerable.Range(1, 20).Select(i => 32 * i), rows.Select(r => r["judge_calls"]!.GetValue<int>()));
    }

    [Fact]
    public void Recipes_name_inpo_and_the_mixture_and_bad_settings_are_named()
    {
        var inpo = Recipe.Load(RepoPaths.Of("recipes", "inpo-countdown.yaml")).OnlinePreferenceOptions();
        Assert.Equal(("inpo", 0.05, 0.1), (inpo.Loss, inpo.Beta, inpo.Eta));
        var ipoMd = Recipe.Load(RepoPaths.Of("recipes", "ipo-md-countdown.yaml")).OnlinePreferenceOptions();
        Assert.Equal(("ipo", SamplingSource.Mixture), (ipoMd.Loss, ipoMd.Sampling));
        Assert.Throws<ArgumentException>(() => (Base with { Loss = "inpo", Beta = 0.5, Eta = 0.1 }).Validate());
        Assert.Throws<ArgumentException>(() => (Base with { Loss = "simpo", Sampling = SamplingSource.Mixture }).Validate());
        Assert.Throws<ArgumentException>(() => (Base with { MixtureBeta = 1.5 }).Validate());
    }
}
