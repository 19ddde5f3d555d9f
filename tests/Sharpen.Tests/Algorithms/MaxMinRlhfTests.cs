using Sharpen.Algorithms;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary>MaxMin-RLHF: the EM mixture's E-step and M-step by hand, EM separating two conflicting user groups, and the max-min
/// policy loss following the worst-off group.</summary>
public class MaxMinRlhfTests
{
    [Fact]
    public void E_step_assigns_each_user_to_the_group_that_makes_its_comparisons_most_likely()
    {
        using var scope = NewDisposeScope();
        // Groups w0 = [1], w1 = [−1]. User 0: d = 1, 1 → group 0 (2 log σ(1) > 2 log σ(−1)).
        // User 1: d = −1, 2 → group 0: log σ(−1) + log σ(2) = −1.4401897 > log σ(1) + log σ(−2) = −2.4401897.
        // User 2: d = −1, −1 → group 1.
        var groups = MaxMinRlhf.AssignUsers([[1.0], [-1.0]], Mat(6, 1, 1, -1, 2, -1, -1), [0, 0, 1, 1, 2, 2]);
        Assert.Equal([0, 0, 1], groups);
    }

    [Fact]
    public void M_step_reaches_the_stationary_point_of_the_regularised_bradley_terry_loss()
    {
        using var scope = NewDisposeScope();
        // d = [1], [1], [−1] (one dimension), l2 = 0.1. Stationarity: mean_n σ(−w d_n) d_n = l2·w,
        //   i.e. (2σ(−w) − σ(w))/3 = 0.1 w; checked on the result rather than a printed number.
        var w = MaxMinRlhf.FitGroup(Mat(3, 1, 1, -1), [0.0], steps: 2000, learningRate: 0.5, l2: 0.1)[0];
        double S(double z) => 1 / (1 + Math.Exp(-z));
        Close(0.1 * w, (2 * S(-w) - S(w)) / 3, 1e-6);
        Assert.True(w > 0);
    }

    [Fact]
    public void Em_separates_two_user_groups_with_conflicting_tastes()
    {
        using var scope = NewDisposeScope();
        // Features (a, b). Users 0–3 prefer a (d = [1, −1]), users 4–5 prefer b (d = [−1, 1]); 3 comparisons each.
        var rows = new List<float>();
        var users = new List<int>();
        for (int u = 0; u < 6; u++)
            for (int n = 0; n < 3; n++) { rows.AddRange(u < 4 ? [1f, -1f] : [-1f, 1f]); users.Add(u); }
        foreach (int seed in new[] { 0, 1, 2 })
        {
            var mix = MaxMinRlhf.FitMixture(tensor(rows.ToArray()).reshape(-1, 2), users, groups: 2, seed: seed);
            int major = mix.UserGroups[0], minor = mix.UserGroups[4];
            Assert.NotEqual(major, minor);
            Assert.All(mix.UserGroups.Take(4), g => Assert.Equal(major, g));
            Assert.All(mix.UserGroups.Skip(4), g => Assert.Equal(minor, g));
            Assert.True(mix.Weights[major][0] - mix.Weights[major][1] > 0, "the majority's model rewards a over b");
            Assert.True(mix.Weights[minor][1] - mix.Weights[minor][0] > 0, "the minority's model rewards b over a");
        }
    }

    [Fact]
    public void Max_min_loss_follows_the_group_with_the_lowest_utility()
    {
        using var scope = NewDisposeScope();
        // Rewards: group 0 → [1, 3] (U = 2), group 1 → [2, 0] (U = 1): follow group 1; advantages [1, −1].
        // loss = −mean([1·(−1), (−1)·(−2)]) = −0.5; ∂/∂log π = −adv/B = [−0.5, 0.5].
        var logp = Vec(-1, -2).requires_grad_(true);
        var (loss, k, u) = MaxMinRlhf.MaxMinPolicyLoss(Mat(2, 1, 3, 2, 0), logp);
        Assert.Equal(1, k);
        Close(2, u[0]); Close(1, u[1]);
        Close(-0.5, loss.item<float>());
        loss.backward();
        Close([-0.5, 0.5], logp.grad!);
    }
}
