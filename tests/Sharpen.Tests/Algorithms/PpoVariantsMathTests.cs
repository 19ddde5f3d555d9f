using Sharpen.Algorithms;
using Sharpen.Generation;
using Sharpen.Training.Rl;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary>The pure parts of PPO-max, PF-PPO and NLPO against numbers worked out by hand.</summary>
public class PpoVariantsMathTests
{
    // ---------------------------------------------------------------- PPO-max

    [Fact]
    public void Reward_normalisation_uses_the_running_mean_and_unbiased_std_then_clips()
    {
        var stats = new RunningMoments();
        stats.Update([1.0, 2.0, 3.0, 4.0]);
        // mean 2.5; unbiased variance (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3, std 1.2909944
        Close(2.5, stats.Mean, 1e-12);
        Close(Math.Sqrt(5.0 / 3.0), stats.Std, 1e-12);
        var r = Vec(1, 4, 10);
        // (1 − 2.5)/1.2909944 = −1.1618950, (4 − 2.5)/1.2909944 = 1.1618950, (10 − 2.5)/1.2909944 = 5.8094750 → clipped to 5
        Close([-1.161895, 1.161895, 5.0], RewardNormalization.Apply(r, normalize: true, stats.Mean, stats.Std, clip: 5), 1e-5);
        Close([-1.161895, 1.161895, 5.809475], RewardNormalization.Apply(r, normalize: true, stats.Mean, stats.Std, clip: 0), 1e-5);
        Close([1, 2, 2], RewardNormalization.Apply(Vec(1, 2, 10), normalize: false, 0, 1, clip: 2), 1e-6);
        Close([-2, 0.5, 2], RewardNormalization.Apply(Vec(-7, 0.5f, 3), normalize: false, 0, 1, clip: 2), 1e-6);
    }

    [Fact]
    public void Gae_puts_the_kl_penalty_on_every_token_and_the_reward_on_the_last()
    {
        // One sequence of 2 tokens, V = 0, γ = λ = 1, β = 0.5, per-token KL [0.1, 0.2], R = 1:
        // token rewards [−0.05, −0.1 + 1] = [−0.05, 0.9]; A_2 = 0.9, A_1 = −0.05 + 0.9 = 0.85; returns = A + V.
        var ctx = new AdvantageContext(Vec(1), Mat(1, 1, 1), 1, Mat(1, 0.1f, 0.2f), 0.5, KlInReward: true, Values: Mat(1, 0, 0),
            GreedyRewards: null, new MovingAverageBaseline(0.9), Gamma: 1.0, Lambda: 1.0, RewardScaling.None);
        var est = AdvantageEstimators.Registry.Get("gae").Estimate(ctx);
        Close([0.85, 0.9], est.Advantages);
        Close([0.85, 0.9], est.Returns!);
        // Without the KL in the reward only R remains: [1, 1].
        var plain = AdvantageEstimators.Registry.Get("gae").Estimate(ctx with { KlInReward = false });
        Close([1, 1], plain.Advantages);
    }

    [Fact]
    public void Ptx_loss_is_the_token_mean_nll_of_the_masked_tokens()
    {
        // −(−1 − 2 − 3) / 3 = 2; the padded 0 is left out.
        Close(2.0, PretrainMix.Nll(Mat(2, -1, -2, -3, 0), Mat(2, 1, 1, 1, 0)).item<float>());
        Close(0.0, PretrainMix.Nll(Mat(1, -1, -2), Mat(1, 0, 0)).item<float>());
    }

    // ---------------------------------------------------------------- PF-PPO

    [Fact]
    public void Best_worst_keeps_the_top_and_bottom_of_each_group()
    {
        double[] r = [0.1, 0.9, 0.5, 0.3, /* group 2 */ 1, 0, 0, 1];
        // Group 1: best 0.9 (row 1), worst 0.1 (row 0). Group 2: best = the earlier of the tied 1s (row 4), worst = the later 0 (row 6).
        Assert.Equal([0, 1, 4, 6], PolicyFiltration.Select(r, 4, PolicyFilter.BestWorst, 0.25, 0.25, new Random(1)));
        // best 1/2 of 4 = 2 rows, no worst: rows 1, 2 and 4, 7.
        Assert.Equal([1, 2, 4, 7], PolicyFiltration.Select(r, 4, PolicyFilter.BestWorst, 0.5, 0, new Random(1)));
        Assert.Equal(Enumerable.Range(0, 8), PolicyFiltration.Select(r, 4, PolicyFilter.None, 0.25, 0.25, new Random(1)));
    }

    [Fact]
    public void Best_random_keeps_the_best_and_a_uniform_draw_from_the_rest()
    {
        double[] r = [0.1, 0.9, 0.5, 0.3];
        var seen = new int[4];
        for (int seed = 0; seed < 300; seed++)
        {
            var kept = PolicyFiltration.Select(r, 4, PolicyFilter.BestRandom, 0.25, 0.25, new Random(seed));
            Assert.Equal(2, kept.Length);
            Assert.Contains(1, kept);                       // the best always
            foreach (var k in kept) seen[k]++;
        }
        Assert.Equal(300, seen[1]);
        // Each of the 3 others is drawn about 100 times in 300.
        foreach (var k in new[] { 0, 2, 3 }) Assert.InRange(seen[k], 60, 140);
    }

    [Fact]
    public void R_squared_is_one_minus_residual_over_total_sum_of_squares()
    {
        // Least squares of y on x: slope 3.5/5 = 0.7, intercept 3.75 − 0.7·2.5 = 2; predictions 2.7, 3.4, 4.1, 4.8;
        // SS_res = 0.49 + 0.36 + 0.81 + 0.64 = 2.3, SS_tot = 4.75: R² = 1 − 2.3/4.75 = 0.5157895.
        Close(1 - 2.3 / 4.75, PolicyFiltration.RSquared([1, 2, 3, 4], [2, 4, 5, 4]), 1e-12);
        Close(1.0, PolicyFiltration.RSquared([0.2, 0.4, 0.9], [1, 2, 4.5]), 1e-12);   // exactly linear
        Assert.True(double.IsNaN(PolicyFiltration.RSquared([1, 1, 1], [0, 1, 0])));   // constant reward: no line
        Assert.True(double.IsNaN(PolicyFiltration.RSquared([1], [1])));
    }

    // ---------------------------------------------------------------- NLPO

    [Fact]
    public void The_top_p_mask_keeps_the_smallest_set_reaching_p()
    {
        // probabilities 0.15, 0.5, 0.05, 0.3 (vocabulary order); sorted 0.5, 0.3, 0.15, 0.05 with mass before 0, 0.5, 0.8, 0.95.
        var logits = Vec(0.15f, 0.5f, 0.05f, 0.3f).log().view(1, 4);
        Assert.Equal([false, true, false, true], Bools(ActionMaskEngine.TopPKeep(logits, 0.7)));
        Assert.Equal([true, true, false, true], Bools(ActionMaskEngine.TopPKeep(logits, 0.85)));
        Assert.Equal([false, true, false, false], Bools(ActionMaskEngine.TopPKeep(logits, 0.3)));   // the top token always stays
        Assert.Equal([true, true, true, true], Bools(ActionMaskEngine.TopPKeep(logits, 1.0)));
    }

    [Fact]
    public void The_masked_policy_renormalises_over_the_kept_tokens()
    {
        // Policy probabilities 0.1, 0.2, 0.3, 0.4 restricted to tokens 1 and 3: 0.2/0.6 and 0.4/0.6.
        var policy = Vec(0.1f, 0.2f, 0.3f, 0.4f).log().view(1, 4);
        var keep = tensor(new[] { false, true, false, true }).view(1, 4);
        var logp = ActionMaskEngine.Apply(policy, keep).log_softmax(-1);
        var v = Values(logp);
        Close(Math.Log(0.2 / 0.6), v[1], 1e-5);
        Close(Math.Log(0.4 / 0.6), v[3], 1e-5);
        Assert.True(v[0] < -1e8 && v[2] < -1e8);
        Assert.Equal(0.0, Values(ActionMaskEngine.Apply(policy, keep).softmax(-1))[0]);
    }

    static bool[] Bools(Tensor t) => t.contiguous().data<bool>().ToArray();
}
