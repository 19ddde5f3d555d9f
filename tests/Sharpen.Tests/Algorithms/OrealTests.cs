using Sharpen.Algorithms;
using Sharpen.Training.Rl;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

public class OrealTests
{
    [Fact]
    public void Positives_are_cloned_with_weight_one_and_negatives_get_half_their_leave_one_out_reward()
    {
        // Three groups of G = 4 binary rewards; 3 tokens per row, the last row of each group with one padded token.
        var r = Vec(1, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0);
        var mask = Mat(12, Enumerable.Range(0, 12).SelectMany(i => i % 4 == 3 ? new float[] { 1, 1, 0 } : [1, 1, 1]).ToArray());
        var adv = AdvantageEstimators.Oreal(new GroupOutcomeInput(r, mask, 4)).Advantages;
        // Group 1 (2 right of 4): a negative's other samples pass 2/3 → 0.5·(0 − 2/3) = −1/3. Group 2: nobody right → 0.
        // Group 3 (3 right): the negative's others pass 3/3 → 0.5·(0 − 1) = −0.5.
        double[] perRow = [1, -1.0 / 3, -1.0 / 3, 1, 0, 0, 0, 0, 1, 1, 1, -0.5];
        var expected = perRow.SelectMany((a, i) => i % 4 == 3 ? new[] { a, a, 0 } : [a, a, a]).ToArray();
        Close(expected, adv);
    }

    [Fact]
    public void The_factors_scale_each_side_and_a_group_of_one_is_refused()
    {
        var r = Vec(1, 0);
        var mask = Mat(2, 1, 1, 1, 1);
        var adv = AdvantageEstimators.Oreal(new GroupOutcomeInput(r, mask, 2), positiveFactor: 2.0, negativeFactor: 1.0).Advantages;
        Close([2, 2, -1, -1], adv);   // the negative's other sample passed: 1·(0 − 1)
        Assert.ThrowsAny<ArgumentException>(() => AdvantageEstimators.Oreal(new GroupOutcomeInput(r, mask, 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => AdvantageEstimators.Oreal(new GroupOutcomeInput(r, mask, 2), negativeFactor: -1));
    }

    [Fact]
    public void Token_weights_keep_the_tokens_the_token_reward_model_finds_decisive()
    {
        // σ(0) = 0.5, σ(ln 3) = 0.75, σ(−ln 3) = 0.25.
        float l3 = MathF.Log(3);
        var w = Mat(2, 0, l3, -l3, 0, l3, -l3);
        var mask = Mat(2, 1, 1, 1, 1, 1, 0);
        var correct = tensor(new[] { true, false });
        var weights = OrealTokenWeights.Weights(w, mask, correct);
        // Right answer: max(2σ − 1, 0) = 0, 0.5, 0. Wrong answer: max(1 − 2σ, 0) = 0, 0, 0.5 — but the last token is padding.
        Close([0, 0.5, 0, 0, 0, 0], weights);
        // τ⁺ = 0.6: (0.75 − 0.6)/0.4 = 0.375 on the right row's second token.
        Close([0, 0.375, 0, 0, 0, 0], OrealTokenWeights.Weights(w, mask, correct, correctThreshold: 0.6));
    }

    [Fact]
    public void The_token_reward_model_is_trained_on_the_sigmoid_of_its_mean_logit()
    {
        float l3 = MathF.Log(3);
        var w = Leaf(2, l3, l3, 0, l3, -l3, 5);            // row 2's last token is padding: its 5 must not count
        var mask = Mat(2, 1, 1, 0, 1, 1, 0);
        var labels = Vec(1, 0);
        var loss = OrealTokenWeights.OutcomeLoss(w, mask, labels);
        // Row 1: mean ln 3 → σ = 0.75, label 1 → −ln 0.75. Row 2: mean 0 → σ = 0.5, label 0 → ln 2.
        Close((-Math.Log(0.75) + Math.Log(2)) / 2, loss.item<float>());
        loss.backward();
        // ∂/∂w_t = (σ(w̄) − y)/T / B: row 1 (0.75 − 1)/2/2 = −0.0625 on its two tokens; row 2 (0.5 − 0)/2/2 = 0.125.
        Close([-0.0625, -0.0625, 0, 0.125, 0.125, 0], w.grad!);
    }

    [Fact]
    public void Oreal_is_a_registered_algorithm_with_its_papers_defaults()
    {
        var spec = RlAlgorithms.Get("oreal");
        Assert.Same(AdvantageEstimators.Registry.Get("oreal"), spec.Estimator);
        Assert.Same(PolicyLosses.Registry.Get("vanilla"), spec.PolicyLoss);
        Assert.Equal(KlPlacement.InLoss, spec.Kl);
        var o = RlOptions.For("oreal");
        Assert.Equal(0.01, o.Beta);
        Assert.Equal(LossAggregation.TokenMean, o.Aggregation);
        o.Validate();
    }
}
