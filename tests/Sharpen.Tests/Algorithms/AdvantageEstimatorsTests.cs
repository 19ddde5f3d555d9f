using Sharpen.Algorithms;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

public class AdvantageEstimatorsTests
{
    // Four samples of one prompt with response lengths 3, 2, 1, 3 (A = 3).
    static Tensor Mask4() => Mat(4, 1, 1, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1);

    static double[] Broadcast(double[] perSequence, Tensor mask)
    {
        var m = Values(mask);
        var a = m.Length / perSequence.Length;
        return [.. m.Select((v, i) => v * perSequence[i / a])];
    }

    [Fact]
    public void Grpo_uses_the_unbiased_group_std_and_broadcasts_over_tokens()
    {
        using var scope = NewDisposeScope();
        // r = [1,0,0,1]: mean 0.5; unbiased std = √(4 · 0.25 / 3) = √(1/3) = 0.5773503;
        // Â = ±0.5 / (0.5773503 + 1e-6) = ±0.8660239.
        var mask = Mask4();
        var output = AdvantageEstimators.Grpo(new GroupOutcomeInput(Vec(1, 0, 0, 1), mask, 4));
        Close(Broadcast([0.8660239, -0.8660239, -0.8660239, 0.8660239], mask), output.Advantages);
        Assert.Null(output.Returns);
    }

    [Fact]
    public void Grpo_gives_zero_to_a_group_whose_rewards_are_all_equal()
    {
        using var scope = NewDisposeScope();
        // Groups of 2: [1, 0] → mean 0.5, unbiased std = √(2 · 0.25 / 1) = 0.7071068 → ±0.5/0.7071078 = ±0.7071058;
        //              [1, 1] → r − mean = 0 → 0 / (0 + eps) = 0.
        var mask = ones(4, 2);
        var output = AdvantageEstimators.Grpo(new GroupOutcomeInput(Vec(1, 0, 1, 1), mask, 2));
        Close([0.7071058, 0.7071058, -0.7071058, -0.7071058, 0, 0, 0, 0], output.Advantages);
    }

    [Fact]
    public void Dr_grpo_only_subtracts_the_group_mean()
    {
        using var scope = NewDisposeScope();
        // r − mean = [0.5, −0.5, −0.5, 0.5].
        var mask = Mask4();
        var output = AdvantageEstimators.Grpo(new GroupOutcomeInput(Vec(1, 0, 0, 1), mask, 4), scaleByStd: false);
        Close(Broadcast([0.5, -0.5, -0.5, 0.5], mask), output.Advantages);
    }

    [Fact]
    public void Rloo_subtracts_the_mean_of_the_other_samples()
    {
        using var scope = NewDisposeScope();
        // 1 − (0+0+1)/3 = 0.6667, 0 − (1+0+1)/3 = −0.6667, likewise for the other two.
        var mask = Mask4();
        var output = AdvantageEstimators.Rloo(new GroupOutcomeInput(Vec(1, 0, 0, 1), mask, 4));
        Close(Broadcast([2.0 / 3, -2.0 / 3, -2.0 / 3, 2.0 / 3], mask), output.Advantages);
        Assert.Throws<ArgumentOutOfRangeException>(() => AdvantageEstimators.Rloo(new GroupOutcomeInput(Vec(1, 0), ones(2, 1), 1)));
    }

    [Fact]
    public void Remax_subtracts_the_greedy_reward_of_the_same_prompt()
    {
        using var scope = NewDisposeScope();
        // [1 − 0.25, 0.5 − 0.5] = [0.75, 0]; row 0 has 2 tokens, row 1 has 1.
        var mask = Mat(2, 1, 1, 1, 0);
        var output = AdvantageEstimators.Remax(new RemaxInput(Vec(1, 0.5f), mask, Vec(0.25f, 0.5f)));
        Close([0.75, 0.75, 0, 0], output.Advantages);
    }

    [Fact]
    public void Reinforce_subtracts_a_scalar_baseline()
    {
        using var scope = NewDisposeScope();
        // [1 − 0.3, 0 − 0.3] = [0.7, −0.3], zero at row 1's padding.
        var mask = Mat(2, 1, 1, 1, 0);
        var output = AdvantageEstimators.Reinforce(new BaselineInput(Vec(1, 0), mask, 0.3));
        Close([0.7, 0.7, -0.3, 0], output.Advantages);
    }

    [Fact]
    public void Group_estimators_reject_a_batch_that_is_not_whole_groups()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentException>(() => AdvantageEstimators.Grpo(new GroupOutcomeInput(Vec(1, 0, 1), ones(3, 2), 2)));
        Assert.Throws<ArgumentException>(() => AdvantageEstimators.Grpo(new GroupOutcomeInput(Vec(1, 0), ones(3, 2), 2)));
    }

    [Fact]
    public void Zero_advantage_group_fraction_counts_groups_with_equal_rewards()
    {
        using var scope = NewDisposeScope();
        // Groups [1,1,1,1] equal, [0,1,0,0] not, [0,0,0,0] equal → 2/3.
        Close(2.0 / 3, AdvantageEstimators.ZeroAdvantageGroupFraction(Vec(1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0), 4));
        // Groups [1,0] and [1,1] → 1/2.
        Close(0.5, AdvantageEstimators.ZeroAdvantageGroupFraction(Vec(1, 0, 1, 1), 2));
    }

    [Fact]
    public void Gae_hand_case_of_length_two()
    {
        using var scope = NewDisposeScope();
        // γ = 0.9, λ = 0.8, r = [0, 1], V = [0.5, 0.4]:
        //   δ1 = 1 + 0.9·0 − 0.4 = 0.6;          A1 = 0.6
        //   δ0 = 0 + 0.9·0.4 − 0.5 = −0.14;      A0 = −0.14 + 0.72·0.6 = 0.292
        //   returns = A + V = [0.792, 1.0]
        // Padding (third column) carries garbage that must be ignored.
        var output = AdvantageEstimators.Gae(new GaeInput(Mat(1, 0, 1, 9), Mat(1, 0.5f, 0.4f, 9), Mat(1, 1, 1, 0), 0.9, 0.8));
        Close([0.292, 0.6, 0], output.Advantages);
        Close([0.792, 1.0, 0], output.Returns!);
    }

    [Fact]
    public void Gae_matches_a_direct_double_loop_on_rows_of_different_lengths()
    {
        using var scope = NewDisposeScope();
        const double gamma = 0.9, lambda = 0.8;
        int[] lengths = [5, 2];
        const int a = 5;
        float[] rewards = [0.1f, -0.2f, 0.0f, 0.3f, 1.0f, /**/ 0.5f, -1.0f, 7f, 7f, 7f];
        float[] values = [0.2f, 0.4f, -0.1f, 0.6f, 0.3f, /**/ -0.3f, 0.8f, 7f, 7f, 7f];
        var mask = new float[2 * a];
        for (int b = 0; b < 2; b++)
            for (int t = 0; t < lengths[b]; t++) mask[b * a + t] = 1;

        // Reference: for each row, from its last real token back, δ_t = r_t + γ V_{t+1} − V_t (V_{len} = 0), A_t = δ_t + γλ A_{t+1}.
        var expectedAdv = new double[2 * a];
        var expectedRet = new double[2 * a];
        for (int b = 0; b < 2; b++)
        {
            double next = 0, nextValue = 0;
            for (int t = lengths[b] - 1; t >= 0; t--)
            {
                double delta = rewards[b * a + t] + gamma * nextValue - values[b * a + t];
                next = delta + gamma * lambda * next;
                nextValue = values[b * a + t];
                expectedAdv[b * a + t] = next;
                expectedRet[b * a + t] = next + values[b * a + t];
            }
        }

        var output = AdvantageEstimators.Gae(new GaeInput(Mat(2, rewards), Mat(2, values), Mat(2, mask), gamma, lambda));
        Close(expectedAdv, output.Advantages);
        Close(expectedRet, output.Returns!);
    }

    [Fact]
    public void Whiten_uses_only_masked_tokens()
    {
        using var scope = NewDisposeScope();
        // Masked values 1, 2, 3, 4: mean 2.5; population variance (2.25+0.25+0.25+2.25)/4 = 1.25; √1.25 = 1.118034.
        // (x − 2.5)/1.118034 = [−1.341641, −0.447214, 0.447214, 1.341641]; padding → 0.
        var x = Mat(2, 1, 2, 3, 4, 100, 100);
        var mask = Mat(2, 1, 1, 1, 1, 0, 0);
        Close([-1.341641, -0.447214, 0.447214, 1.341641, 0, 0], AdvantageEstimators.Whiten(x, mask, eps: 0));
        // Without the shift the mean 2.5 is added back.
        Close([1.158359, 2.052786, 2.947214, 3.841641, 0, 0], AdvantageEstimators.Whiten(x, mask, shiftMean: false, eps: 0));
    }

    [Fact]
    public void Moving_average_baseline_starts_at_the_first_mean_then_decays()
    {
        var baseline = new MovingAverageBaseline(0.9);
        Assert.False(baseline.Initialized);
        Assert.Equal(0, baseline.Value);
        baseline.Update(1.0);                       // first update: 1.0
        Assert.True(baseline.Initialized);
        Close(1.0, baseline.Value, 1e-12);
        baseline.Update(0.0);                       // 0.9·1 + 0.1·0 = 0.9
        Close(0.9, baseline.Value, 1e-12);
        baseline.Update(0.5);                       // 0.9·0.9 + 0.1·0.5 = 0.86
        Close(0.86, baseline.Value, 1e-12);
        Assert.Throws<ArgumentOutOfRangeException>(() => new MovingAverageBaseline(1.0));
    }

    [Fact]
    public void Registry_lists_the_known_names_for_an_unknown_one()
    {
        Assert.Equal(["grpo", "dr_grpo", "rloo", "remax", "reinforce", "gae", "p3o"], AdvantageEstimators.Names.Take(7));   // built-ins first; tests may register more
        foreach (var name in AdvantageEstimators.Names) AdvantageEstimators.EnsureKnown(name);
        var e = Assert.Throws<ArgumentException>(() => AdvantageEstimators.EnsureKnown("gpro"));
        Assert.Contains("'gpro'", e.Message);
        Assert.Contains("grpo, dr_grpo, rloo, remax, reinforce, gae", e.Message);
    }
}
