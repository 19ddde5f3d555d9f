using Sharpen.Models;
using Sharpen.Tokenizers;
namespace Sharpen.Training;

/// <summary>The seeded order in which every trainer walks its data, and the token layout of a completion.</summary>
static class DataOrder
{
    /// <summary>
    /// The order of an epoch: a Fisher–Yates shuffle seeded by (seed, epoch), so a resumed run that
    /// knows (epoch, position) replays exactly the batches an uninterrupted run would have seen.
    /// </summary>
    public static int[] Permutation(int n, int seed, int epoch)
    {
        var rng = Rng(seed, epoch);
        var idx = Enumerable.Range(0, n).ToArray();
        for (int i = n - 1; i > 0; i--) { int j = rng.Next(i + 1); (idx[i], idx[j]) = (idx[j], idx[i]); }
        return idx;
    }

    /// <summary>
    /// The draws of one "epoch" of priority sampling: <c>weights.Count</c> indices drawn independently <b>with replacement</b>,
    /// index i with probability <c>weights[i] / Σ weights</c> (inverse CDF on the cumulative sums), seeded by (seed, epoch) as
    /// <see cref="Permutation"/> is. Weights must be finite and ≥ 0 with a positive sum; a zero weight is never drawn.
    /// </summary>
    public static int[] WeightedDraws(IReadOnlyList<double> weights, int seed, int epoch)
    {
        int n = weights.Count;
        var cumulative = new double[n];
        double total = 0;
        for (int i = 0; i < n; i++)
        {
            if (!(weights[i] >= 0) || double.IsInfinity(weights[i]))
                throw new ArgumentException($"sampling weight {i} is {weights[i]}; weights must be finite and ≥ 0");
            cumulative[i] = total += weights[i];
        }
        if (!(total > 0)) throw new ArgumentException("sampling weights must have a positive sum");
        var rng = Rng(seed, epoch);
        var draws = new int[n];
        for (int d = 0; d < n; d++)
        {
            double u = rng.NextDouble() * total;                          // u in [0, total)
            int lo = 0, hi = n - 1;                                       // first i with cumulative[i] > u
            while (lo < hi) { int mid = (lo + hi) / 2; if (cumulative[mid] > u) hi = mid; else lo = mid + 1; }
            draws[d] = lo;
        }
        return draws;
    }

    static Random Rng(int seed, int epoch) =>
        new(unchecked(seed * 1_000_003 + epoch) & int.MaxValue);   // not HashCode: that is randomised per process
}

/// <summary>
/// A walk through <c>count</c> items in the seeded epoch orders of <see cref="DataOrder.Permutation"/>, batch after batch,
/// wrapping into the next epoch mid-batch. With <paramref name="weights"/> (one per item), an epoch is instead
/// <c>count</c> draws with replacement in proportion to the weights (<see cref="DataOrder.WeightedDraws"/>: priority
/// sampling). (<see cref="Epoch"/>, <see cref="Position"/>) is what a checkpoint stores: a cursor made from them (and the
/// same weights) continues with exactly the batches the uninterrupted walk would have given.
/// </summary>
sealed class DataCursor(int count, int seed, int epoch = 0, int position = 0, IReadOnlyList<double>? weights = null)
{
    readonly IReadOnlyList<double>? _weights = weights is null || weights.Count == count ? weights
        : throw new ArgumentException($"{weights.Count} sampling weights for {count} items");
    int[] _order = Order(count, seed, epoch, weights);

    static int[] Order(int count, int seed, int epoch, IReadOnlyList<double>? weights) =>
        weights is null ? DataOrder.Permutation(count, seed, epoch) : DataOrder.WeightedDraws(weights, seed, epoch);

    /// <summary>The epoch the next index comes from.</summary>
    public int Epoch { get; private set; } = epoch;

    /// <summary>How many indices of the current epoch's order have been handed out.</summary>
    public int Position { get; private set; } = position;

    /// <summary>Passes over the data so far, as a fraction (items handed out / count): what transformers and TRL log as
    /// <c>epoch</c>, e.g. 0.25 after 4 of 16 items. Rounded to 4 decimals.</summary>
    public double Fraction => Math.Round(Epoch + (double)Position / count, 4);

    /// <summary>The trainer state a checkpoint stores for this walk (read back by <see cref="TrainingCheckpoint.Resume"/>):
    /// <c>epoch</c> as transformers writes it (<see cref="Fraction"/>), and the resume keys <c>data_epoch</c> (completed
    /// passes), <c>position</c> and <c>seed</c>.</summary>
    public System.Text.Json.Nodes.JsonObject CheckpointState() =>
        new() { ["epoch"] = Fraction, ["data_epoch"] = Epoch, ["position"] = Position, ["seed"] = seed };

    /// <summary>The next <paramref name="size"/> indices.</summary>
    public List<int> Next(int size)
    {
        var batch = new List<int>(size);
        while (batch.Count < size)
        {
            if (Position == count) { Epoch++; Position = 0; _order = Order(count, seed, Epoch, _weights); }
            batch.Add(_order[Position++]);
        }
        return batch;
    }
}
