using Sharpen.Algorithms;
using static TorchSharp.torch;
using Sharpen.Rewards;

namespace Sharpen.Tests.Algorithms;

public class ProcessLossesTests
{
    static double Sigmoid(double z) => 1 / (1 + Math.Exp(-z));
    static double Bce(double z, double y) => -(y * Math.Log(Sigmoid(z)) + (1 - y) * Math.Log(1 - Sigmoid(z)));

    [Fact]
    public void Step_bce_averages_over_real_steps_with_soft_labels()
    {
        // Row 0: logits (0, 2), labels (1, 0.5); row 1: logit −1 with label 0, then a padded step (ignored).
        // By hand: BCE(0, 1) = ln 2 = 0.693147; BCE(2, 0.5) = 0.5·softplus(−2) + 0.5·softplus(2) = 0.5·(0.126928 + 2.126928) = 1.126928;
        // BCE(−1, 0) = softplus(−1) = 0.313262. Mean over 3 steps = 2.133337 / 3 = 0.711112.
        using var logits = tensor(new float[] { 0, 2, -1, 5 }).view(2, 2);
        using var labels = tensor(new float[] { 1, 0.5f, 0, 1 }).view(2, 2);
        using var mask = tensor(new float[] { 1, 1, 1, 0 }).view(2, 2);
        using var loss = ProcessLosses.StepBce(logits, labels, mask);
        double expected = (Bce(0, 1) + Bce(2, 0.5) + Bce(-1, 0)) / 3;
        Assert.Equal(0.711112, expected, 5);
        Assert.Equal(expected, loss.item<float>(), 5);

        // A global count: two halves with count 3 add up to the whole.
        using var a = ProcessLosses.StepBce(logits.narrow(0, 0, 1), labels.narrow(0, 0, 1), mask.narrow(0, 0, 1), count: 3);
        using var b = ProcessLosses.StepBce(logits.narrow(0, 1, 1), labels.narrow(0, 1, 1), mask.narrow(0, 1, 1), count: 3);
        Assert.Equal(expected, a.item<float>() + b.item<float>(), 5);
    }

    [Fact]
    public void Implicit_cross_entropy_uses_beta_times_the_summed_log_ratio()
    {
        // β = 0.5. Completion 1: log π = −2, log π_ref = −4 → r = 1, label 1 → softplus(−1) = 0.313262.
        // Completion 2: log π = −3, log π_ref = −1 → r = −1, label 0 → softplus(−1) = 0.313262.
        // Completion 3: log π = log π_ref → r = 0, label 0.5 → ln 2 = 0.693147. Mean = 1.319671 / 3 = 0.439890.
        using var pol = tensor(new float[] { -2, -3, -5 });
        using var refr = tensor(new float[] { -4, -1, -5 });
        using var lab = tensor(new float[] { 1, 0, 0.5f });
        using var loss = ProcessLosses.ImplicitCrossEntropy(pol, refr, lab, beta: 0.5);
        Assert.Equal(0.439890, loss.item<float>(), 5);
        Assert.Equal((Bce(1, 1) + Bce(-1, 0) + Bce(0, 0.5)) / 3, loss.item<float>(), 5);
        using var summed = ProcessLosses.ImplicitCrossEntropy(pol, refr, lab, beta: 0.5, count: 1);
        Assert.Equal(3 * 0.439890, summed.item<float>(), 4);
    }

    [Fact]
    public void Implicit_dpo_is_minus_log_sigmoid_of_the_reward_difference()
    {
        // β = 0.1; pair 1: h = (−2 − −4) − (−3 − −1) = 2 + 2 = 4 → −log σ(0.4) = softplus(−0.4) = 0.513015.
        // pair 2: h = 0 → ln 2 = 0.693147. Mean 0.603081.
        using var pc = tensor(new float[] { -2, -1 });
        using var rc = tensor(new float[] { -4, -1 });
        using var pw = tensor(new float[] { -3, -2 });
        using var rw = tensor(new float[] { -1, -2 });
        using var loss = ProcessLosses.ImplicitDpo(pc, rc, pw, rw, beta: 0.1);
        Assert.Equal(0.603081, loss.item<float>(), 5);
    }

    [Fact]
    public void Implicit_step_rewards_are_differences_of_prefix_log_ratios_and_sum_to_the_outcome()
    {
        // Row 0: per-token log-ratios (1, −2, 0.5, 3), steps end at tokens 1 and 3: q = (−1, 2.5) → r = (−1, 3.5), ×β = 2 → (−2, 7).
        // Row 1: log-ratios (0.25, 4, padding 0, 0), one step ending at token 1: q = 4.25 → r = 8.5; its padded second step is 0.
        using var ratios = tensor(new float[] { 1, -2, 0.5f, 3, 0.25f, 4, 0, 0 }).view(2, 4);
        using var ends = tensor(new long[] { 1, 3, 1, 1 }).view(2, 2);
        using var mask = tensor(new float[] { 1, 1, 1, 0 }).view(2, 2);
        using var r = Sharpen.Rewards.ImplicitPrm.StepRewards(ratios, ends, mask, beta: 2.0);
        var v = r.data<double>().ToArray();
        Assert.Equal([-2.0, 7.0, 8.5, 0.0], v.Select(x => Math.Round(x, 5)));
        Assert.Equal(2.0 * (1 - 2 + 0.5 + 3), v[0] + v[1], 5);   // Σ_t r_t = β Σ_tokens log π/π_ref
    }
}
