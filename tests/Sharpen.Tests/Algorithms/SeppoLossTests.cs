using Sharpen.Algorithms;
using Sharpen.Training.Preference;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary>SePPO's anchor criterion and loss (arXiv:2410.05255, text analogue) and its checkpoint draw, by hand.</summary>
public class SeppoLossTests
{
    static double Softplus(double z) => Math.Log(1 + Math.Exp(z));
    static double Sigmoid(double z) => 1 / (1 + Math.Exp(-z));

    [Fact]
    public void The_anchor_keeps_a_sample_below_the_winner_as_the_loser_and_flips_one_above_it()
    {
        // Pair 1: h_w = −1 − (−2) = 1, h_s = −3 − (−2.5) = −0.5 ≤ h_w → loser, I = +1: z = 1·(1 − (−0.5)) = 1.5.
        // Pair 2: h_w = −2 − (−2) = 0, h_s = −1 − (−2) = 1 > h_w → likely winner, I = −1: z = 1·(0 + 1) = 1.
        // Pair 3: h_w = h_s = 0 (a tie) → loser, I = +1: z = 0.
        var pc = Vec(-1f, -2f, -4f).requires_grad_(true);
        var pr = Vec(-3f, -1f, -5f).requires_grad_(true);
        var x = new PreferenceInput(pc, pr, Vec(-2f, -2f, -4f), Vec(-2.5f, -2f, -5f));
        Assert.Equal([1f, -1f, 1f], Values(SelfPlayLosses.AnchorIndicators(Vec(1f, 0f, 0f), Vec(-0.5f, 1f, 0f))));
        var (loss, m) = SelfPlayLosses.Seppo(x, beta: 1.0);
        Close((Softplus(-1.5) + Softplus(-1.0) + Math.Log(2)) / 3, loss.item<float>());   // (0.20141 + 0.31326 + 0.69315)/3
        Close((1.0 / 3), m.Accuracy);                                                     // only pair 1 has β·h_w > β·h_s
        loss.backward();
        // ∂/∂h_s of softplus(−β(h_w − I·h_s)) / B = σ(−z)·β·I / B: positive (pushed down) for a loser, negative (pulled up) when flipped.
        var gs = Values(pr.grad!);
        Close(Sigmoid(-1.5) / 3, gs[0]);
        Close(-Sigmoid(-1.0) / 3, gs[1]);
        Close(Sigmoid(0) / 3, gs[2]);
        var gw = Values(pc.grad!);                                                        // the winner always goes up: −σ(−z)·β / B
        Close(-Sigmoid(-1.5) / 3, gw[0]);
        Close(-Sigmoid(-1.0) / 3, gw[1]);
    }

    [Fact]
    public void Seppo_is_registered_online_only_and_needs_the_reference_checkpoint()
    {
        var entry = PreferenceLosses.Registry.Get("seppo");
        Assert.True(entry.OnlineOnly);
        Assert.True(entry.NeedsReference);
        Assert.DoesNotContain("seppo", PreferenceLosses.Names);
        Assert.Throws<ArgumentException>(() => SelfPlayLosses.Seppo(new PreferenceInput(Vec(-1f), Vec(-1f), null, null)));
        Assert.Throws<ArgumentOutOfRangeException>(() => SelfPlayLosses.Seppo(new PreferenceInput(Vec(-1f), Vec(-1f), Vec(-1f), Vec(-1f)), 0));
        // Its winner is the data's answer: only the data_vs_sample pair source (kind: spin) is accepted.
        var e = Assert.Throws<ArgumentException>(() => (OnlineDpoOptions.For("online_dpo") with { Loss = "seppo" }).Validate());
        Assert.Contains("online_dpo.loss", e.Message);
        Assert.Contains("data_vs_sample", e.Message);
    }

    [Fact]
    public void The_reference_is_drawn_uniformly_from_the_pool_and_the_same_seed_draws_the_same_one()
    {
        int[] pool = [0, 2, 5];
        var counts = new Dictionary<int, int> { [0] = 0, [2] = 0, [5] = 0 };
        for (long seed = 0; seed < 3000; seed++)
        {
            int drawn = OnlineDpoTrainer.DrawCheckpoint(pool, seed);
            counts[drawn]++;                                           // throws if the draw is not in the pool
            Assert.Equal(drawn, OnlineDpoTrainer.DrawCheckpoint(pool, seed));
        }
        Assert.All(counts.Values, c => Assert.InRange(c / 3000.0, 1 / 3.0 - 0.04, 1 / 3.0 + 0.04));
        Assert.Equal(7, OnlineDpoTrainer.DrawCheckpoint([7], 123));
        Assert.Throws<ArgumentException>(() => OnlineDpoTrainer.DrawCheckpoint([], 1));
    }

    [Fact]
    public void Filtered_bc_is_the_length_averaged_nll_of_the_chosen_side_and_leaves_the_rejected_side_alone()
    {
        // Chosen: Σ log π = −2 over 2 tokens and −6 over 3 → means −1, −2 → loss (1 + 2)/2 = 1.5.
        // Rejected: −4 over 4 and −3 over 1 → means −1, −3: the chosen mean is higher in pair 2 only; margin (0 + 1)/2.
        var pc = Vec(-2f, -6f).requires_grad_(true);
        var pr = Vec(-4f, -3f).requires_grad_(true);
        var (loss, m) = SelfPlayLosses.FilteredBc(new PreferenceInput(pc, pr, null, null, Vec(2f, 3f), Vec(4f, 1f)));
        Close(1.5, loss.item<float>());
        Close(0.5, m.Accuracy);
        Close(0.5, m.Margin);
        loss.backward();
        Close(new[] { -1.0 / (2 * 2), -1.0 / (2 * 3) }, pc.grad!);      // −1/(B·|y_w|)
        Assert.True(pr.grad is null || Values(pr.grad).All(g => g == 0));   // no negative gradient
        var entry = PreferenceLosses.Registry.Get("filtered_bc");
        Assert.False(entry.NeedsReference);
        Assert.True(entry.OnlineOnly);
    }
}
