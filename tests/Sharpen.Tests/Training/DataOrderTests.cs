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
        // 70 000 draws with a fixed seed (deterministic, so not flaky); the sampling std of a share is √(3/7·4/7/70000) ≈ 0.0019.
        var draws = new DataCursor(3, seed: 1, weights: [0.3, 0.4, 0.0]).Next(70_000);
        Assert.DoesNotContain(2, draws);
        Close(3.0 / 7, draws.Count(i => i == 0) / 70_000.0, 0.01);
        Close(4.0 / 7, draws.Count(i => i == 1) / 70_000.0, 0.01);
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
        var draws = new DataCursor(2, seed: 7, weights: [0.3, 0.4]).Next(70_000);
        var pick = tensor(draws.Select(i => (long)i).ToArray());
        var logp = Vec(-4, -6).requires_grad_(true);
        var (loss, m) = OfflinePolicyLosses.Alol(logp.index_select(0, pick), Vec(-5, -6).index_select(0, pick),
            Vec(0.8f, 0.9f).index_select(0, pick), Vec(0.5f, 0.5f).index_select(0, pick), clip: 0.9);
        loss.backward();
        Close([-(3.0 / 7) * 0.3 * 1.9, -(4.0 / 7) * 0.4], logp.grad!, 0.005);
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
