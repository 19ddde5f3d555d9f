using Sharpen.Algorithms;
using Sharpen.Torch;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary>Plackett–Luce log-probabilities, sampling, nDCG and the REINFORCE gradient, against numbers worked by hand.</summary>
public class PlackettLuceTests
{
    // Scores ln 1, ln 2, ln 3: item weights 1, 2, 3 (total 6).
    static Tensor Weights123() => Mat(1, (float)Math.Log(1), (float)Math.Log(2), (float)Math.Log(3));

    static Tensor Ranking(params long[] items) => tensor(items).reshape(1, -1);

    [Theory]
    [InlineData(new long[] { 2, 0, 1 }, 3.0 / 6 * 1.0 / 3 * 2.0 / 2)]     // 3/6 · 1/(1+2) · 2/2 = 1/6
    [InlineData(new long[] { 0, 1, 2 }, 1.0 / 6 * 2.0 / 5 * 3.0 / 3)]     // 1/6 · 2/5 = 1/15
    [InlineData(new long[] { 1, 2 }, 2.0 / 6 * 3.0 / 4)]                  // top-2 only: 2/6 · 3/4 = 1/4
    [InlineData(new long[] { 2 }, 3.0 / 6)]
    public void Log_probabilities_equal_the_products_worked_by_hand(long[] ranking, double probability)
    {
        using var lp = PlackettLuce.LogProb(Weights123(), Ranking(ranking));
        Close(Math.Log(probability), lp.item<float>(), 1e-5);
    }

    [Fact]
    public void The_six_full_rankings_sum_to_one_and_rows_are_independent()
    {
        long[][] perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        var scores = Weights123().repeat(6, 1);
        var lp = PlackettLuce.LogProb(scores, tensor(perms.SelectMany(p => p).ToArray()).reshape(6, 3));
        Close(1.0, lp.exp().sum().item<float>(), 1e-5);
    }

    [Fact]
    public void The_gradient_of_a_log_probability_is_picked_minus_the_remaining_softmax_at_each_position()
    {
        // σ = (2, 0, 1) over weights 1, 2, 3: position 1 gives e₂ − (1/6, 2/6, 3/6), position 2 gives e₀ − (1/3, 2/3, 0),
        // position 3 gives e₁ − e₁ = 0. Sum: (0.5, −1, 0.5).
        var scores = Weights123().requires_grad_(true);
        PlackettLuce.LogProb(scores, Ranking(2, 0, 1)).sum().backward();
        Close([0.5, -1.0, 0.5], scores.grad!, 1e-5);
    }

    [Fact]
    public void Ndcg_equals_the_hand_computed_value()
    {
        // relevance (0, 2, 1, 0), ranking (2, 1, 0): DCG = (2¹−1)/log₂2 + (2²−1)/log₂3 + 0;
        // ideal (2, 1, 0): (2²−1)/log₂2 + (2¹−1)/log₂3 + 0.
        var rel = Mat(3, 0, 2, 1, 0, 0, 2, 1, 0, 0, 0, 0, 0);
        var rankings = tensor(new long[] { 2, 1, 0, 1, 2, 0, 0, 1, 2 }).reshape(3, 3);
        var dcg = 1.0 + 3.0 / Math.Log2(3);
        var idcg = 3.0 + 1.0 / Math.Log2(3);
        Close([dcg / idcg, 1.0, 0.0], PlackettLuce.Ndcg(rel, rankings), 1e-6);   // 0.79671…; the ideal order; no relevant item
    }

    [Fact]
    public void Gumbel_top_k_samples_follow_the_plackett_luce_probabilities()
    {
        TorchRuntime.EnsureLoaded();
        using var gen = new Generator().manual_seed(5);
        const int n = 20_000;
        var draws = PlackettLuce.Sample(Weights123(), k: 2, samples: n, gen);            // (n, 2)
        var rows = draws.data<long>().ToArray();
        var first = new int[3];
        var pair12 = 0;
        for (var i = 0; i < n; i++)
        {
            Assert.NotEqual(rows[2 * i], rows[2 * i + 1]);                                 // without replacement
            first[rows[2 * i]]++;
            if (rows[2 * i] == 1 && rows[2 * i + 1] == 2) pair12++;
        }
        // P(first = j) = w_j / 6; P(1 then 2) = 2/6 · 3/4 = 1/4. Binomial sd at n = 20,000 is ≤ 0.0036: 0.015 is > 4 sd.
        Close(1.0 / 6, first[0] / (double)n, 0.015);
        Close(2.0 / 6, first[1] / (double)n, 0.015);
        Close(3.0 / 6, first[2] / (double)n, 0.015);
        Close(0.25, pair12 / (double)n, 0.015);
        using var again = new Generator().manual_seed(5);
        Assert.Equal(rows, PlackettLuce.Sample(Weights123(), 2, n, again).data<long>().ToArray());
    }

    [Fact]
    public void The_leave_one_out_baseline_is_the_mean_of_the_other_samples()
    {
        Close([0.25, 0.75, 0.5], PlackettLuce.LeaveOneOutBaseline(Mat(1, 1, 0, 0.5f)), 1e-6);
        Assert.Throws<ArgumentException>(() => PlackettLuce.LeaveOneOutBaseline(Mat(2, 1, 0)));
    }

    [Fact]
    public void Reinforce_pushes_scores_toward_the_ranking_that_beat_its_baseline()
    {
        // Uniform scores; σa = (0, 1, 2) got reward 1, σb = (2, 1, 0) got 0. Leave-one-out baselines: 0 and 1, advantages ±1.
        // ∇ log π(σa) = (1 − 1/3, −1/3 + 1/2, −1/3 − 1/2) = (2/3, 1/6, −5/6); ∇ log π(σb) = (−5/6, 1/6, 2/3).
        // L = −(log π(σa) − log π(σb)) / 2 → ∇L = −((2/3 + 5/6), 0, (−5/6 − 2/3)) / 2 = (−0.75, 0, 0.75).
        var scores = Mat(1, 0, 0, 0).requires_grad_(true);
        var rankings = tensor(new long[] { 0, 1, 2, 2, 1, 0 }).reshape(2, 3);
        var logp = PlackettLuce.LogProb(scores.repeat_interleave(2, 0), rankings).view(1, 2);
        var reward = Mat(1, 1, 0).to(ScalarType.Float64);
        var loss = PlackettLuce.ReinforceLoss(logp, reward, PlackettLuce.LeaveOneOutBaseline(reward));
        Close(-(Math.Log(1.0 / 6) - Math.Log(1.0 / 6)) / 2, loss.item<float>(), 1e-6);   // both rankings have π = 1/6 at uniform scores
        loss.backward();
        Close([-0.75, 0.0, 0.75], scores.grad!, 1e-5);
        // A gradient step raises the first item's score: σa becomes more likely than σb.
        using (no_grad()) scores.sub_(scores.grad! * 0.5);
        var after = PlackettLuce.LogProb(scores.detach().repeat_interleave(2, 0), rankings);
        Assert.True(after[0].item<float>() > after[1].item<float>());
    }

    [Fact]
    public void Bad_shapes_are_rejected_with_the_expected_shape()
    {
        var e = Assert.Throws<ArgumentException>(() => PlackettLuce.LogProb(Weights123(), tensor(new long[] { 0, 1, 2, 0 }).reshape(1, 4)));
        Assert.Contains("1 ≤ K ≤ 3", e.Message);
        Assert.Throws<ArgumentException>(() => PlackettLuce.LogProb(Weights123(), tensor(new int[] { 0, 1 }).reshape(1, 2)));
    }
}
