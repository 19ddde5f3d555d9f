using Sharpen.Algorithms;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Rewards;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Training.Rl;
using static Sharpen.Tests.Training.Bandit;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>f-DPG, Flow of Reasoning and FGAIF fine-grained rewards through the RL trainer on the one-token bandit (reward 1 for "c").</summary>
public class DistributionMatchingTrainerTests
{
    static readonly List<RlPrompt> Prompts = Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string>()), 16).ToList();

    static double Train(RlOptions o)
    {
        using var dir = new TempDir();
        using var model = Model();
        Assert.InRange(ProbabilityOfC(model), 0.08, 0.17);   // ≈ 1/8 at initialisation
        new RlTrainer(model, Tok, o, RewardC).Run(Prompts, dir.Path);
        var rows = new RunLog(dir.Path, append: true).ReadMetrics().ToList();
        Assert.All(rows, r => Assert.True(double.IsFinite(r["loss"]!.GetValue<double>())));
        return ProbabilityOfC(model);
    }

    // Target p ∝ a·exp(r/β) with β = 0.1 and a ≈ uniform over the 8 tokens: p(c) = e¹⁰/(e¹⁰ + 7) ≈ 0.9997; with the filter
    // target p is a restricted to "c", p(c) = 1. Every divergence moves π(c) from ≈ 1/8 towards it.
    [Theory]
    [InlineData(FDivergence.JensenShannon, EbmTarget.ExpReward)]
    [InlineData(FDivergence.ForwardKl, EbmTarget.Filter)]
    [InlineData(FDivergence.ReverseKl, EbmTarget.ExpReward)]
    [InlineData(FDivergence.TotalVariation, EbmTarget.Filter)]
    public void Fdpg_moves_the_policy_towards_the_target(FDivergence f, EbmTarget target)
    {
        var o = RlOptions.Fdpg() with
        {
            Iterations = 30, PromptsPerIteration = 16, MaxNewTokens = 1, LearningRate = 1e-2, EvalEvery = 0, Divergence = f, Target = target,
        };
        double after = Train(o);
        Assert.True(after > 0.5, $"{f}/{target}: p(c) reached only {after:F3}");
    }

    // Trajectory balance makes π(y) ∝ R(y) = exp(r/β): with β = 0.5 the target is p(c) = e²/(e² + 7) = 0.5135 — a distribution, not
    // the reward's argmax, so π(c) must rise from 1/8 and settle near 0.51, well below what reward maximisation reaches (> 0.9).
    [Fact]
    public void Flow_of_reasoning_matches_the_reward_proportional_distribution()
    {
        var o = RlOptions.FlowOfReasoning() with
        {
            Iterations = 40, PromptsPerIteration = 16, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2, EvalEvery = 0, Beta = 0.5,
        };
        double after = Train(o);
        Assert.InRange(after, 0.35, 0.7);
    }

    // Vocabulary "ab\n": completion "ab\na" (4 tokens) has the steps "ab" (ends at token 1) and "a" (token 3). Two reward
    // functions score each step: length (weight 1) and count of 'b' (weight 2): "ab" → 2 + 2·1 = 4, "a" → 1 + 0 = 1.
    [Fact]
    public void Segment_scoring_places_each_steps_weighted_score_on_its_last_token()
    {
        var tok = CharTokenizer.Create("ab\n");
        var ids = tok.Encode("ab\na", addSpecialTokens: false).ToArray();
        var rollout = new Rollout(0, 0, tok.Encode("a").ToArray(), ids, "ab\na", new float[ids.Length], StopReason.MaxTokens);
        IReadOnlyList<WeightedReward> rewards =
        [
            new(new DelegateReward("length", c => c.Completion.Length)),
            new(new DelegateReward("bs", c => c.Completion.Count(ch => ch == 'b')), 2.0),
        ];
        var segs = SegmentRewardScoring.Score(rewards, [new RlPrompt("a", new Dictionary<string, string>())], [rollout], tok, SegmentUnit.Step, default);
        Assert.Equal(new[] { (1, 4.0), (3, 1.0) }, segs[0]);
        using var scope = NewDisposeScope();
        Algorithms.Tensors.Close([0, 4, 0, 1], SegmentRewardScoring.Place(segs, ones(1, 4), 0));
        // PCPG uniform window of 3: [4/3, 4/3, 5/3, 1/3].
        Algorithms.Tensors.Close([4.0 / 3, 4.0 / 3, 5.0 / 3, 1.0 / 3], SegmentRewardScoring.Place(segs, ones(1, 4), 1), 1e-5);
    }

    [Fact]
    public void Ppo_trains_on_fine_grained_smoothed_rewards()
    {
        var o = RlOptions.Ppo() with
        {
            Iterations = 2, PromptsPerIteration = 8, MaxNewTokens = 3, LearningRate = 1e-3, Beta = 0.0, EvalEvery = 0,
            FineGrained = SegmentUnit.Sentence, SmoothWindow = 1, Epochs = 1,
        };
        using var dir = new TempDir();
        using var model = Model();
        var before = model.parameters().Select(p => p.detach().clone()).ToList();
        new RlTrainer(model, Tok, o, RewardC).Run(Prompts, dir.Path);
        var rows = new RunLog(dir.Path, append: true).ReadMetrics().ToList();
        Assert.Equal(2, rows.Count);
        Assert.All(rows, r => Assert.True(double.IsFinite(r["loss"]!.GetValue<double>())));
        Assert.Contains(model.parameters().Zip(before), x => !x.First.detach().allclose(x.Second));
    }
}
