using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Recipes;
using Sharpen.Training;
using Sharpen.Training.Preference;
using Sharpen.Rewards;
using Sharpen.Training.Rl;

namespace Sharpen.Tests.Training;

/// <summary>SePPO's checkpoint pool and online CREAM as settings of <see cref="OnlineDpoTrainer"/>, on the shared bandit.</summary>
public class SeppoAndOnlineCreamTests
{
    static List<RlPrompt> PromptsWithAnswer(int n) =>
        Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string> { [OnlineDpoTrainer.DataCompletionField] = "c" }), n).ToList();

    static double MaxDiff(Dictionary<string, float[]> a, Dictionary<string, float[]> b) =>
        a.Keys.Max(k => a[k].Zip(b[k]).Max(p => (double)Math.Abs(p.First - p.Second)));

    static OnlineDpoOptions Seppo(int iterations) => OnlineDpoOptions.Spin() with
    {
        Loss = "seppo", ReferenceUpdate = ReferenceUpdate.RandomCheckpoint, Sampling = SamplingSource.Reference, CheckpointPool = 2,
        Iterations = iterations, PromptsPerIteration = 16, SamplesPerPrompt = 1, MaxNewTokens = 1, LearningRate = 1e-2, UpdatesPerIteration = 2,
    };

    [Fact]
    public void Seppo_draws_its_reference_from_the_pool_of_the_last_iterates_and_learns_the_winner()
    {
        using var dir = new TempDir();
        using var model = Bandit.Model();
        double before = Bandit.ProbabilityOfC(model);
        var start = new Dictionary<int, Dictionary<string, float[]>> { [0] = WeightValues.Of(model) };   // iterate j = weights at the start of iteration j
        var referenceAt = new Dictionary<int, Dictionary<string, float[]>>();
        new OnlineDpoTrainer(model, Bandit.Tok, Seppo(6), Bandit.RewardC)
        {
            AfterIteration = (it, policy, reference) => { start[it] = WeightValues.Of(policy); referenceAt[it] = WeightValues.Of(reference!); },
        }.Run(PromptsWithAnswer(16), dir.Path);
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal(6, rows.Count);
        var drawn = rows.Select(r => r["reference_iteration"]!.GetValue<int>()).ToList();
        for (int it = 0; it < 6; it++)
        {
            // pool of 2: iteration it draws iterate it − 1 or it (only 0 at the first), and its reference is that iterate's weights
            Assert.InRange(drawn[it], Math.Max(0, it - 1), it);
            Assert.Equal(0, MaxDiff(referenceAt[it + 1], start[drawn[it]]));
        }
        Assert.True(drawn.Select((d, it) => d < it).Any(older => older), $"every draw was the latest iterate: {string.Join(",", drawn)}");
        // the pool on disk holds the last two iterates only
        var pool = Directory.GetDirectories(Path.Combine(dir.Path, OnlineDpoTrainer.PoolFolder)).Select(Path.GetFileName).Order().ToList();
        Assert.Equal(["iter-000004", "iter-000005"], pool);
        double after = Bandit.ProbabilityOfC(model);
        Assert.True(after > 0.5 && after > before + 0.3, $"p(c) went from {before:F3} to {after:F3}");
    }

    [Fact]
    public void Cream_pairs_best_against_worst_by_implicit_reward_weighted_by_kendall_consistency_worked_by_hand()
    {
        // Prompt 0 (samples 0–3): current β·log π/π_ref = [0.3, −0.1, 0.5, 0.0], previous = [0.2, 0.1, 0.4, −0.3].
        // Best 2 (0.5), worst 1 (−0.1). Of the 6 sample pairs only (1,3) is ordered differently (−0.1 < 0 but 0.1 > −0.3):
        // τ = (5 − 1)/6 = 2/3, C = (2/3 + 1)/2 = 5/6.
        // Prompt 1 (samples 4–7): current [1, 2, 3, 4], previous [4, 3, 2, 1]: every pair reversed, τ = −1, C = 0; pair (7, 4).
        // Prompt 2 (samples 8–11): all tie, no pair.
        double[] current = [0.3, -0.1, 0.5, 0.0, 1, 2, 3, 4, 0.2, 0.2, 0.2, 0.2];
        double[] previous = [0.2, 0.1, 0.4, -0.3, 4, 3, 2, 1, 0.5, 0.1, 0.3, 0.2];
        var pairs = OnlineDpoTrainer.CreamPairs(current, previous, 4);
        Assert.Equal(2, pairs.Count);
        Assert.Equal((2, 1), (pairs[0].Chosen, pairs[0].Rejected));
        Assert.Equal(5.0 / 6, pairs[0].Consistency, 12);
        Assert.Equal((7, 4), (pairs[1].Chosen, pairs[1].Rejected));
        Assert.Equal(0.0, pairs[1].Consistency, 12);
        // The first iteration has no previous iterate: C = 1 (plain DPO on the self-rewarded pair).
        Assert.All(OnlineDpoTrainer.CreamPairs(current, null, 4), p => Assert.Equal(1.0, p.Consistency));
        Assert.Throws<ArgumentException>(() => OnlineDpoTrainer.CreamPairs(current, previous, 5));
    }

    [Fact]
    public void Online_cream_ranks_by_the_policys_own_implicit_reward_against_a_reference_checkpoint_end_to_end()
    {
        using var dir = new TempDir();
        using var refDir = new TempDir();
        using (var m0 = Bandit.Model(seed: 2)) HfCheckpoint.Save(refDir.Path, m0, Bandit.Tok);   // M_0: the reference
        using var model = Bandit.Model(seed: 1);                                                  // M_1: the starting policy
        var initial = WeightValues.Of(model);
        var o = OnlineDpoOptions.For("online_dpo") with
        {
            PairSource = PairSource.SelfRewarded, Loss = "cream", Beta = 1.0, ReferenceCheckpoint = refDir.Path, Iterations = 3,
            PromptsPerIteration = 4, SamplesPerPrompt = 4, MaxNewTokens = 2, LearningRate = 1e-2,
        };
        var result = new OnlineDpoTrainer(model, Bandit.Tok, o, Bandit.RewardC).Run(Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string>()), 8).ToList(), dir.Path);
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal(3, rows.Count);
        Assert.Equal(1.0, rows[0]["consistency"]!.GetValue<double>());            // no previous iterate yet
        Assert.All(rows.Skip(1), r => Assert.InRange(r["consistency"]!.GetValue<double>(), 0.0, 1.0));
        Assert.All(rows, r => Assert.True(r["pairs"]!.GetValue<int>() > 0));
        Assert.True(result.TotalPairs > 0);
        Assert.True(MaxDiff(initial, WeightValues.Of(model)) > 1e-4);
        Assert.True(File.Exists(Path.Combine(dir.Path, "summary.json")));

        // A reference that follows the policy would give every sample the implicit reward 0: refused.
        var bad = Assert.Throws<ArgumentException>(() => (o with { ReferenceUpdate = ReferenceUpdate.PreviousIterate }).Validate());
        Assert.Contains("online_dpo.pair_source", bad.Message);
        Assert.Contains("reference_checkpoint", Assert.Throws<ArgumentException>(() =>
            new OnlineDpoTrainer(model, Bandit.Tok, o with { ReferenceCheckpoint = Path.Combine(dir.Path, "missing") }, Bandit.RewardC).Run([new RlPrompt("a", new Dictionary<string, string>())], dir.Path)).Message);
    }

    [Fact]
    public void The_seppo_and_online_cream_recipes_bind_their_keys()
    {
        var seppo = Recipe.Load(RepoPaths.Of("recipes", "seppo-countdown.yaml")).OnlinePreferenceOptions();
        Assert.Equal(("seppo", ReferenceUpdate.RandomCheckpoint, SamplingSource.Reference, 4, PairSource.DataVsSample),
            (seppo.Loss, seppo.ReferenceUpdate, seppo.Sampling, seppo.CheckpointPool, seppo.PairSource));
        var cream = Recipe.Load(RepoPaths.Of("recipes", "cream-online-countdown.yaml")).OnlinePreferenceOptions();
        Assert.Equal(("cream", PairSource.SelfRewarded, "runs/sft-countdown/final", ReferenceUpdate.Initial),
            (cream.Loss, cream.PairSource, cream.ReferenceCheckpoint, cream.ReferenceUpdate));
    }
}
