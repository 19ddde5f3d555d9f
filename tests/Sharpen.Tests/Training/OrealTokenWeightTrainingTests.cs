using Sharpen.Algorithms;
using Sharpen.Generation;
using Sharpen.Training;
using Sharpen.Data;
using Sharpen.Rewards;
using Sharpen.Training.Rl;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>OREAL's token-level outcome reward model inside the RL trainer (rl.oreal_token_weights).</summary>
public class OrealTokenWeightTrainingTests
{
    [Fact]
    public void One_weighted_oreal_loss_on_a_tiny_batch_matches_the_hand_computation()
    {
        // One group of G = 2: row 0 correct (r = 1), row 1 wrong (r = 0), row 1's second token is padding.
        var r = Vec(1, 0);
        var mask = Mat(2, 1, 1, 1, 0);
        var adv = AdvantageEstimators.Oreal(new GroupOutcomeInput(r, mask, 2)).Advantages;   // row 0: 1; row 1: 0.5·(0 − 1) = −0.5
        // Token RM logits: σ(ln 3) = 0.75 → ω⁺ = 2·0.75 − 1 = 0.5; σ(0) = 0.5 → ω⁺ = 0; σ(−ln 3) = 0.25 → ω⁻ = 1 − 2·0.25 = 0.5.
        float l3 = MathF.Log(3);
        var w = OrealTokenWeights.Weights(Mat(2, l3, 0, -l3, 5), mask, tensor(new[] { true, false }));
        Close([0.5, 0, 0.5, 0], w);
        var logp = Mat(2, -0.5f, -1.0f, -2.0f, -9.0f).requires_grad_(true);
        var x = new PolicyLossInput(logp, logp.detach(), adv * w, mask);
        var (loss, _) = PolicyLosses.Vanilla(x, new Aggregation(LossAggregation.TokenMean, 3, 2));
        // Σ_t −ω_t·A·log π / 3 tokens = [−(0.5·1·−0.5) − (0·1·−1) − (0.5·−0.5·−2)] / 3 = (0.25 + 0 − 0.5) / 3 = −1/12.
        Close(-1.0 / 12, loss.item<float>());
        loss.backward();
        // ∂/∂log π_t = −ω_t·A/3: −0.5/3 on the decisive correct token, 0 on the neutral one, +0.25/3 on the decisive wrong one.
        Close([-0.5 / 3, 0, 0.25 / 3, 0], logp.grad!);
    }

    [Fact]
    public void The_token_reward_model_loss_falls_on_a_separable_toy_and_its_weights_find_the_decisive_token()
    {
        // 8 sequences of 3 tokens with 4-dim hidden states; only token 1's feature 0 tells the outcome (+1 right, −1 wrong),
        // the rest is shared noise. The zero-initialised head starts at σ(0) = 0.5 for every sequence: loss ln 2.
        var gen = new TorchSharp.torch.Generator(7);
        var hidden = randn(8, 3, 4, generator: gen) * 0.1f;
        var labels = Vec(1, 0, 1, 0, 1, 0, 1, 0);
        for (int i = 0; i < 8; i++) hidden[i, 1, 0] = tensor(i % 2 == 0 ? 1f : -1f);
        var mask = ones(8, 3);
        using var rm = new OrealTokenModel(4, learningRate: 0.05, steps: 60);
        var (before, after) = rm.Train(hidden, mask, labels);
        Close(Math.Log(2), before, 1e-5);
        Assert.True(after < 0.5 * Math.Log(2), $"loss {before:F4} → {after:F4}");
        var weights = rm.Weights(hidden, mask, labels > 0.5);
        // The decisive token carries more weight than the neutral ones, in right and wrong rows alike.
        for (int i = 0; i < 8; i++)
        {
            float decisive = weights[i, 1].item<float>(), other = Math.Max(weights[i, 0].item<float>(), weights[i, 2].item<float>());
            Assert.True(decisive > 0.5f && decisive > other + 0.3f, $"row {i}: ω = {decisive:F3} vs {other:F3}");
        }
    }

    [Fact]
    public void Skipping_zero_advantage_groups_keeps_oreal_all_correct_groups()
    {
        // Groups of 2: [1,1] all correct (OREAL clones both), [0,0] nothing to learn, [1,0] mixed.
        double[] r = [1, 1, 0, 0, 1, 0];
        var stops = Enumerable.Repeat(StopReason.Eos, 6).ToList();
        var oreal = AdvantageEstimators.Registry.Get("oreal").PositiveGroupsCarrySignal;
        Assert.Equal([0L, 1, 4, 5], RlTrainer.TrainRows(r, 2, stops, skipZeroGroups: true, maskTruncated: false, oreal));
        Assert.Equal([4L, 5], RlTrainer.TrainRows(r, 2, stops, skipZeroGroups: true, maskTruncated: false, AdvantageEstimators.Registry.Get("grpo").PositiveGroupsCarrySignal));
    }

    [Fact]
    public void Oreal_with_token_weights_and_skipped_groups_learns_the_bandit_and_trains_on_all_correct_groups()
    {
        using var dir = new TempDir();
        using var model = Bandit.Model();
        var o = RlOptions.Oreal() with
        {
            Iterations = 40, PromptsPerIteration = 16, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2, Beta = 0.0, EvalEvery = 0,
            SkipZeroAdvantageGroups = true,
        };
        Assert.True(o.OrealTokenWeights);   // on in the preset
        var prompts = Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string>()), 16).ToList();
        new RlTrainer(model, Bandit.Tok, o, Bandit.RewardC).Run(prompts, dir.Path);
        Assert.True(Bandit.ProbabilityOfC(model) > 0.9, $"p(c) = {Bandit.ProbabilityOfC(model):F3}");
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        // The head's steps lower its loss on each batch on average (Adam's momentum can overshoot on a single batch).
        double meanBefore = rows.Average(row => row["oreal/token_rm_loss_before"]!.GetValue<double>());
        double meanAfter = rows.Average(row => row["oreal/token_rm_loss"]!.GetValue<double>());
        Assert.True(meanAfter < meanBefore, $"token RM loss {meanBefore:F4} → {meanAfter:F4}");
        Close(Math.Log(2), rows[0]["oreal/token_rm_loss_before"]!.GetValue<double>(), 1e-5);   // zero head: σ(0) = 0.5 for every row
        // At the end p(c) > 0.9: some groups are uniform (all correct: P(a group of 4 all right) ≈ 0.66) and none all wrong
        // (P ≈ 1e-4 a group), so all 64 rows are trained although the zero-advantage fraction is above 0.
        var last = rows[^1];
        Assert.True(last["zero_advantage_group_fraction"]!.GetValue<double>() > 0);
        Assert.Equal(64, last["trained_sequences"]!.GetValue<int>());
    }

    [Fact]
    public void Token_weights_are_refused_for_another_algorithm()
    {
        var e = Assert.Throws<ArgumentException>(() => (RlOptions.Grpo() with { OrealTokenWeights = true }).Validate());
        Assert.Contains("rl.oreal_token_weights", e.Message);
    }
}
