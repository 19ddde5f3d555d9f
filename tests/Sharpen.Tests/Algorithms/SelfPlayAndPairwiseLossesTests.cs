using Sharpen.Algorithms;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

public class SelfPlayAndPairwiseLossesTests
{
    static double Softplus(double z) => Math.Log(1 + Math.Exp(z));
    static double Sigmoid(double z) => 1 / (1 + Math.Exp(-z));

    [Fact]
    public void Spin_is_the_logistic_loss_of_the_real_minus_the_synthetic_log_ratio()
    {
        // Pair 1: real log π_θ/π_t = −1 − (−1.5) = 0.5, synthetic = −2 − (−1) = −1 → t = 0.1·(0.5 + 1) = 0.15.
        // Pair 2: real = −3 − (−2) = −1, synthetic = −1 − (−2) = 1 → t = 0.1·(−2) = −0.2.
        var pc = Vec(-1f, -3f).requires_grad_(true);
        var pr = Vec(-2f, -1f).requires_grad_(true);
        var (loss, m) = SelfPlayLosses.Spin(new PreferenceInput(pc, pr, Vec(-1.5f, -2f), Vec(-1f, -2f)), lambda: 0.1);
        double expected = (Softplus(-0.15) + Softplus(0.2)) / 2;   // ℓ(t) = log(1 + e^(−t)) ≈ (0.62096 + 0.79814)/2
        Close(expected, loss.item<float>());
        Assert.Equal(0.5, m.Accuracy);                              // 0.05 > −0.1 yes; −0.1 > 0.1 no
        Close((0.15 - 0.2) / 2, m.Margin);
        Close((0.05 - 0.1) / 2, m.ChosenReward);
        loss.backward();
        // ∂/∂ log π_θ(y) of ℓ(λ(real − synthetic)) / B = −λ σ(−t) / B; the synthetic side gets the opposite sign.
        var g = Values(pc.grad!);
        Close(-0.1 * Sigmoid(-0.15) / 2, g[0]);
        Close(-0.1 * Sigmoid(0.2) / 2, g[1]);
        Close(0.1 * Sigmoid(-0.15) / 2, Values(pr.grad!)[0]);
    }

    [Fact]
    public void Spin_needs_the_opponent_and_a_positive_lambda()
    {
        Assert.Throws<ArgumentException>(() => SelfPlayLosses.Spin(new PreferenceInput(Vec(-1f), Vec(-1f), null, null)));
        Assert.Throws<ArgumentOutOfRangeException>(() => SelfPlayLosses.Spin(new PreferenceInput(Vec(-1f), Vec(-1f), Vec(-1f), Vec(-1f)), 0));
    }

    /// <summary>One pair: y₁ has two tokens, y₂ one (second column masked); y₂'s ratio is 1, y₁'s log-ratio is <paramref name="d"/>.</summary>
    static (Tensor LogProbs, Tensor Loss, PolicyLossMetrics Metrics) P3oPair(float d, float r1, float r2, double totalPairs = 1)
    {
        var logp = Leaf(2, -1.0f, -0.5f, -2.0f, 0f);
        var old = Mat(2, -1.0f - d, -0.5f, -2.0f, 0f);
        var mask = Mat(2, 1f, 1f, 1f, 0f);
        var (loss, m) = PairwisePolicyLosses.P3o(new PolicyLossInput(logp, old, zeros(2, 2), mask), Vec(r1, r2), 0.2, totalPairs);
        return (logp, loss, m);
    }

    [Fact]
    public void P3o_inside_the_clip_range_is_the_pairwise_policy_gradient()
    {
        // R = e^0.05 ≈ 1.0513 ∈ [0.8, 1.2]; A = (1 − 0)/2 = 0.5; loss = −R·A.
        var (logp, loss, m) = P3oPair(0.05f, 1f, 0f);
        double r = Math.Exp(0.05);
        Close(-0.5 * r, loss.item<float>());
        Assert.Equal(0, m.ClipFraction);
        loss.backward();
        // ∂loss/∂log π(y₁,t) = −A·R for each token of y₁; +A·R for y₂'s token; 0 at the padding.
        var g = Values(logp.grad!);
        Close(-0.5 * r, g[0]); Close(-0.5 * r, g[1]); Close(0.5 * r, g[2]); Close(0, g[3]);
    }

    [Fact]
    public void P3o_clips_a_pair_whose_joint_ratio_left_the_range_in_the_direction_of_its_advantage()
    {
        // A > 0 and R = e^0.5 ≈ 1.6487 > 1.2: the objective is capped at 1.2·A = 0.6, and no gradient flows.
        var (logp, loss, m) = P3oPair(0.5f, 1f, 0f);
        Close(-0.6, loss.item<float>());
        Assert.Equal(1, m.ClipFraction);
        loss.backward();
        Assert.All(Values(logp.grad!), x => Close(0, x));

        // A < 0 and R > 1 + ε: the pessimistic min keeps the unclipped term −(−0.5)·1.6487, gradient flows.
        (logp, loss, m) = P3oPair(0.5f, 0f, 1f);
        Close(0.5 * Math.Exp(0.5), loss.item<float>());
        Assert.Equal(0, m.ClipFraction);
        loss.backward();
        Close(0.5 * Math.Exp(0.5), Values(logp.grad!)[0]);

        // A > 0 and R = e^−0.5 ≈ 0.6065 < 0.8: unclipped −0.3033 > clipped −0.4, so the unclipped term is kept.
        (_, loss, _) = P3oPair(-0.5f, 1f, 0f);
        Close(-0.5 * Math.Exp(-0.5), loss.item<float>());

        // A < 0 and R < 1 − ε: the clipped term 0.5·0.8 = 0.4 is larger than 0.5·0.6065, so it is taken.
        (logp, loss, m) = P3oPair(-0.5f, 0f, 1f);
        Close(0.4, loss.item<float>());
        Assert.Equal(1, m.ClipFraction);
    }

    /// <summary>One pair of one-token completions with log-ratios <paramref name="d1"/>, <paramref name="d2"/> against μ.</summary>
    static (Tensor LogProbs, Tensor Loss) P3oRatios(float d1, float d2, float r1, float r2)
    {
        var logp = Leaf(2, -1.0f, -2.0f);
        var old = Mat(2, -1.0f - d1, -2.0f - d2);
        var (loss, _) = PairwisePolicyLosses.P3o(new PolicyLossInput(logp, old, zeros(2, 1), Mat(2, 1f, 1f)), Vec(r1, r2), 0.2, 1);
        return (logp, loss);
    }

    [Fact]
    public void P3o_weighs_the_pair_by_the_product_of_its_two_ratios()
    {
        // ρ₁ = 1, ρ₂ = e^−0.1: R = e^0.1 ≈ 1.105 inside [0.8, 1.2]; A = 0.5. Both samples come from μ, so the pairwise
        // gradient is weighted by ρ₁ρ₂ = e^−0.1: ∂loss/∂log π(y₁) = −A·ρ₁ρ₂ = −0.5·e^−0.1 ≈ −0.452419, +0.452419 for y₂.
        // (Weighting by R instead would give ∓0.5·e^0.1 ≈ ∓0.552585.) The loss value is sg(ρ₁ρ₂/R)·(−A·R) = −A·ρ₁ρ₂.
        var (logp, loss) = P3oRatios(0f, -0.1f, 1f, 0f);
        Close(-0.5 * Math.Exp(-0.1), loss.item<float>());
        loss.backward();
        var g = Values(logp.grad!);
        Close(-0.5 * Math.Exp(-0.1), g[0]); Close(0.5 * Math.Exp(-0.1), g[1]);

        // ρ₁ = ρ₂ = e^1.2: R = 1, ρ₁ρ₂ = e^2.4 ≈ 11.02 is clamped to 10: gradient ∓0.5·10 = ∓5.
        (logp, loss) = P3oRatios(1.2f, 1.2f, 1f, 0f);
        Close(-5, loss.item<float>());
        loss.backward();
        g = Values(logp.grad!);
        Close(-5, g[0]); Close(5, g[1]);
    }

    [Fact]
    public void P3o_sees_only_reward_differences_and_divides_by_the_pairs_of_the_step()
    {
        var (_, a, _) = P3oPair(0.05f, 1f, 0f);
        var (_, b, _) = P3oPair(0.05f, 11f, 10f);                // the same preference shifted by 10
        Close(a.item<float>(), b.item<float>());
        var (_, c, _) = P3oPair(0.05f, 1f, 0f, totalPairs: 4);  // one of the step's 4 pairs
        Close(a.item<float>() / 4, c.item<float>());
        Assert.Throws<ArgumentException>(() => PairwisePolicyLosses.P3o(
            new PolicyLossInput(Mat(3, 0f, 0f, 0f), Mat(3, 0f, 0f, 0f), Mat(3, 0f, 0f, 0f), Mat(3, 1f, 1f, 1f)), Vec(1f, 0f, 1f), 0.2, 2));
    }
}
