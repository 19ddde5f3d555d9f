using Sharpen.Algorithms;
using Sharpen.Training;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>A-LoL's priority sampling: <see cref="DataOrder.WeightedDraws"/> and the weighted <see cref="DataCursor"/>.</summary>
public class DataOrderTests
{
    [Fact]
    public void Priority_sampling_draws_rows_in_proportion_to_the_advantage_with_replacement()
    {
        // Kept rows a (A = 0.3) and b (A = 0.4), and a zero weight that must never be drawn: P(a) = 3/7, P(b) = 4/7.
        // 7 000 draws with a fixed seed (deterministic, so not flaky); the sampling std of a share is √(3/7·4/7/7000) ≈ 0.006,
        // so a tolerance of 0.03 (5 std) still tells 3/7 ≈ 0.43 from the uniform 0.5.
        var cursor = new DataCursor(3, seed: 1, weights: [0.3, 0.4, 0.0]);
        var counts = new int[3];
        foreach (var i in cursor.Next(7000)) counts[i]++;
        Assert.Equal(0, counts[2]);
        Close(3.0 / 7, counts[0] / 7000.0, 0.03);
        Close(4.0 / 7, counts[1] / 7000.0, 0.03);
        // With replacement: an "epoch" of 3 draws can repeat a row (it does somewhere in the first 100 epochs).
        Assert.Contains(Enumerable.Range(0, 100), e => DataOrder.WeightedDraws([0.3, 0.4, 0.0], 1, e).Distinct().Count() < 3);
    }

    [Fact]
    public void Priority_sampled_batches_give_the_papers_expected_gradient()
    {
        using var scope = NewDisposeScope();
        // Rows a (log π −4, ref −5, R 0.8, V 0.5 → A 0.3, w 1.9) and b (−6, −6, 0.9, 0.5 → A 0.4, w 1) drawn ∝ A; the main
        // A-LoL loss averaged over the drawn rows has expected gradient −(P(a)·A_a·w_a, P(b)·A_b·w_b)
        //   = −((3/7)·0.3·1.9, (4/7)·0.4) ≈ −(0.24429, 0.22857).
        // 7 batches of 1000 draws; the gradients of the batch losses add up in the leaf, so grad / 7 is the mean over all draws
        // (std ≈ 0.57·0.006 ≈ 0.0034 for a; uniform draws would give −(0.285, 0.2), beyond the 0.015 tolerance).
        var cursor = new DataCursor(2, seed: 7, weights: [0.3, 0.4]);
        var logp = Vec(-4, -6).requires_grad_(true);
        AlolMetrics m = null!;
        for (int chunk = 0; chunk < 7; chunk++)
        {
            using var step = NewDisposeScope();
            var pick = tensor(cursor.Next(1000).Select(i => (long)i).ToArray());                       // (1000) drawn rows
            var (loss, metrics) = OfflinePolicyLosses.Alol(logp.index_select(0, pick), Vec(-5, -6).index_select(0, pick),
                Vec(0.8f, 0.9f).index_select(0, pick), Vec(0.5f, 0.5f).index_select(0, pick), clip: 0.9);
            loss.backward();
            m = metrics;
        }
        Close([-(3.0 / 7) * 0.3 * 1.9, -(4.0 / 7) * 0.4], logp.grad! / 7, 0.015);
        Assert.Equal(1.0, m.KeptFraction);
    }

    [Fact]
    public void Weighted_cursor_is_seeded_and_resumes_where_it_stopped()
    {
        double[] w = [0.1, 0.5, 0.2, 0.9];
        var straight = new DataCursor(4, seed: 3, weights: w);
        var first = straight.Next(6);
        Assert.Equal(first, new DataCursor(4, seed: 3, weights: w).Next(6));
        Assert.NotEqual(first.Concat(straight.Next(20)), new DataCursor(4, seed: 4, weights: w).Next(26));
        // A cursor made from a checkpoint's (epoch, position) continues with the same draws.
        var a = new DataCursor(4, seed: 3, weights: w);
        a.Next(5);
        var resumed = new DataCursor(4, seed: 3, epoch: a.Epoch, position: a.Position, weights: w);
        Assert.Equal(a.Next(11), resumed.Next(11));
        Assert.Throws<ArgumentException>(() => new DataCursor(3, seed: 1, weights: w));
        Assert.Throws<ArgumentException>(() => DataOrder.WeightedDraws([0.0, 0.0], 1, 0));
        Assert.Throws<ArgumentException>(() => DataOrder.WeightedDraws([1.0, -0.5], 1, 0));
    }
}
