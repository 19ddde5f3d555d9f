using Sharpen.Algorithms;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Training;
using Sharpen.Training.Preference;
using Sharpen.Training.Rl;
using static TorchSharp.torch;
using Sharpen.Data;

namespace Sharpen.Tests.Training;

/// <summary>The iteration driver: resume before and after the first checkpoint (each iteration logged exactly once, the
/// weights of an uninterrupted run), and an algorithm added as registry entries alone.</summary>
public class IterationLoopTests
{
    static readonly List<RlPrompt> Prompts = "a b c d ab cd".Split(' ').Select(p => new RlPrompt(p, new Dictionary<string, string>())).ToList();
    static readonly IReadOnlyList<WeightedReward> Len = [new(new DelegateReward("len", c => c.Completion.Length / 4.0))];

    static double MaxDiff(CausalLM a, CausalLM b)
    {
        var x = WeightValues.Of(a);
        var y = WeightValues.Of(b);
        return x.Keys.Max(k => x[k].Zip(y[k]).Max(p => (double)Math.Abs(p.First - p.Second)));
    }

    static int[] Steps(string dir) => [.. new RunLog(dir, append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>())];

    // Stopped after iteration 1 (no checkpoint yet: the resumed run must drop row 1 and redo it) or after 3 (checkpoint at 2).
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void A_grpo_run_stopped_before_or_after_its_first_checkpoint_resumes_to_the_uninterrupted_weights_and_log(int stopAfter)
    {
        var o = RlOptions.Grpo() with
        {
            Iterations = 4, PromptsPerIteration = 4, SamplesPerPrompt = 3, MaxNewTokens = 4, LearningRate = 5e-3, Beta = 0.1,
            CheckpointEvery = 2, KeepCheckpoints = 1, EvalEvery = 0,
        };
        using var straightDir = new TempDir();
        using var straight = Bandit.Model(seed: 3);
        new RlTrainer(straight, Bandit.Tok, o, Len).Run(Prompts, straightDir.Path);

        using var stoppedDir = new TempDir();
        using (var first = Bandit.Model(seed: 3))
        {
            using var cts = new CancellationTokenSource();
            var t = new RlTrainer(first, Bandit.Tok, o, Len) { Log = l => { if (l.StartsWith($"iter {stopAfter}/")) cts.Cancel(); } };
            Assert.Throws<OperationCanceledException>(() => t.Run(Prompts, stoppedDir.Path, cancel: cts.Token));
        }
        Assert.Equal(Enumerable.Range(1, stopAfter), Steps(stoppedDir.Path));   // what the interrupted attempt logged
        using var resumed = Bandit.Model(seed: stopAfter < 2 ? 3 : 77);   // no checkpoint yet: the run restarts from the same starting model
        new RlTrainer(resumed, Bandit.Tok, o, Len).Run(Prompts, stoppedDir.Path, resume: true);
        Assert.True(MaxDiff(straight, resumed) < 1e-6);
        Assert.Equal([1, 2, 3, 4], Steps(stoppedDir.Path));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void An_online_dpo_run_stopped_before_or_after_its_first_checkpoint_resumes_to_the_uninterrupted_weights_and_log(int stopAfter)
    {
        var o = new OnlineDpoOptions
        {
            Iterations = 4, PromptsPerIteration = 4, SamplesPerPrompt = 3, MaxNewTokens = 3, LearningRate = 5e-3, CheckpointEvery = 2,
            KeepCheckpoints = 1, UpdatesPerIteration = 2, MiniBatchSize = 2, PairSelection = PairSelection.Random,
        };
        using var straightDir = new TempDir();
        using var straight = Bandit.Model(seed: 3);
        new OnlineDpoTrainer(straight, Bandit.Tok, o, Len).Run(Prompts, straightDir.Path);

        using var stoppedDir = new TempDir();
        using (var first = Bandit.Model(seed: 3))
        {
            using var cts = new CancellationTokenSource();
            var t = new OnlineDpoTrainer(first, Bandit.Tok, o, Len) { Log = l => { if (l.StartsWith($"iter {stopAfter}/")) cts.Cancel(); } };
            Assert.Throws<OperationCanceledException>(() => t.Run(Prompts, stoppedDir.Path, cancel: cts.Token));
        }
        Assert.Equal(Enumerable.Range(1, stopAfter), Steps(stoppedDir.Path));
        using var resumed = Bandit.Model(seed: stopAfter < 2 ? 3 : 77);   // no checkpoint yet: the run restarts from the same starting model
        new OnlineDpoTrainer(resumed, Bandit.Tok, o, Len).Run(Prompts, stoppedDir.Path, resume: true);
        Assert.True(MaxDiff(straight, resumed) < 1e-6);
        Assert.Equal([1, 2, 3, 4], Steps(stoppedDir.Path));
    }

    /// <summary>
    /// A new algorithm is one registry entry per part plus an <see cref="AlgorithmSpec"/>: here "sign_baseline", whose advantage is
    /// sign(r − group mean) (a made-up estimator, written here and nowhere in the library), trained with the registered vanilla loss.
    /// It must learn the bandit through the unchanged RL trainer, and its estimator must be the one called.
    /// </summary>
    [Fact]
    public void An_algorithm_registered_from_a_test_runs_through_the_rl_trainer()
    {
        int calls = 0;
        var estimator = new AdvantageEstimator(c =>
        {
            calls++;
            var r = c.Rewards.view(-1, c.GroupSize);                                   // (B/G, G)
            var sign = (r - r.mean([1L], keepdim: true)).sign().reshape(-1);           // (B)
            return new(sign.unsqueeze(1) * c.ResponseMask, sign);                      // (B, A), (B)
        }, GroupRelative: true);
        AdvantageEstimators.Registry.Register("test_sign", estimator);
        AdvantageEstimators.Registry.Register("test_sign", estimator);                  // the same entry again is fine
        Assert.Throws<ArgumentException>(() => AdvantageEstimators.Registry.Register("test_sign", estimator with { NeedsCritic = true }));
        RlAlgorithms.Register(AlgorithmSpec.Of("sign_baseline", "test_sign", "vanilla", KlPlacement.None,
            () => RlOptions.Grpo() with { Algorithm = "sign_baseline", Beta = 0 }, "a test"));
        Assert.Contains("sign_baseline", RlAlgorithms.Names);

        using var dir = new TempDir();
        using var model = Bandit.Model();
        double before = Bandit.ProbabilityOfC(model);
        var o = RlOptions.For("sign_baseline") with { Iterations = 30, PromptsPerIteration = 16, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2, EvalEvery = 0 };
        new RlTrainer(model, Bandit.Tok, o, Bandit.RewardC).Run(Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string>()), 16).ToList(), dir.Path);
        Assert.Equal(30, calls);
        Assert.True(Bandit.ProbabilityOfC(model) > 0.9, $"p(c) went from {before:F3} to {Bandit.ProbabilityOfC(model):F3}");
        // A group-relative estimator needs G ≥ 2, whatever its name: the check reads the entry, not the name.
        Assert.Throws<ArgumentException>(() => (o with { SamplesPerPrompt = 1 }).Validate());
    }

    [Fact]
    public void Unknown_names_fail_listing_the_known_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => RlAlgorithms.Get("gpro"));
        Assert.Contains("grpo", e.Message);
        Assert.Contains("ppo", e.Message);
        var p = Assert.Throws<ArgumentException>(() => PolicyLosses.Registry.Get("clip"));
        Assert.Contains("ppo_clip", p.Message);
        var q = Assert.Throws<ArgumentException>(() => PreferenceLosses.Registry.Get("kto2"));
        Assert.Contains("simpo", q.Message);
    }
}
