using Sharpen.Models;
using static TorchSharp.torch;

namespace Sharpen.Training.Rl;

/// <summary>
/// Out-of-sample values for A-LoL by K-fold cross-fitting over prompts. A-LoL (arXiv:2305.14718) fits V_πref on the
/// reference's own samples of separate (validation) prompts, then uses it on the training rows; a head fitted to the same
/// rows it scores can interpolate their rewards (A ≈ 0), so which rows are kept would be decided by fit residuals. Here
/// the rows' distinct prompts are dealt into K folds, and each fold's values come from a head fitted on the other folds'
/// rows only, so a prompt's rewards never enter its own V(x).
/// </summary>
static class ValueCrossFit
{
    /// <summary>
    /// The fold of each row: the distinct prompts, in order of first appearance, are shuffled with the seed
    /// (<see cref="DataOrder.Permutation"/> with epoch −1, an order apart from the data epochs) and dealt round-robin into
    /// min(<paramref name="folds"/>, P) folds, P the number of distinct prompts; all rows of a prompt share its fold. With
    /// <paramref name="folds"/> = 1 every row is in fold 0 (the in-sample fit). Throws when <paramref name="folds"/> ≥ 2 and
    /// there is a single prompt, since no other prompt is left to fit on.
    /// </summary>
    public static int[] PromptFolds(IReadOnlyList<string> prompts, int folds, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(folds);
        var distinct = prompts.Distinct().ToList();
        if (folds == 1) return new int[prompts.Count];
        if (distinct.Count < 2)
            throw new ArgumentException($"A-LoL: offline_pg.value_folds = {folds} fits each prompt's value V(x) on the other prompts' rows, " +
                $"but the data has {distinct.Count} distinct prompt; add prompts, or set value_folds: 1 for an in-sample fit " +
                "(the value head then sees the rewards it is compared with)");
        int k = Math.Min(folds, distinct.Count);
        var order = DataOrder.Permutation(distinct.Count, seed, epoch: -1);
        var foldOf = new Dictionary<string, int>();
        for (int i = 0; i < order.Length; i++) foldOf[distinct[order[i]]] = i % k;
        return prompts.Select(p => foldOf[p]).ToArray();
    }

    /// <summary>
    /// V per row: for each fold f, a zero-initialised <see cref="ScalarHead"/> fitted by <paramref name="steps"/> full-batch
    /// Adam steps (learning rate <paramref name="learningRate"/>) on the MSE to the targets of the rows <b>not</b> in fold f,
    /// then evaluated on the rows of fold f. With a single fold (all zeros) the head is fitted and evaluated on all rows.
    /// Deterministic: zero initialisation, full batches, fixed order.
    /// </summary>
    /// <param name="features">(N, C) constant features, one per row.</param>
    /// <param name="targets">N rewards.</param>
    /// <param name="fold">N fold indices in 0 … K−1.</param>
    /// <param name="steps">Adam steps per fold.</param>
    /// <param name="learningRate">Adam's learning rate.</param>
    public static float[] Fit(Tensor features, IReadOnlyList<float> targets, IReadOnlyList<int> fold, int steps, double learningRate)
    {
        int n = targets.Count;
        if (features.dim() != 2 || features.shape[0] != n || fold.Count != n)
            throw new ArgumentException($"features [{string.Join(", ", features.shape)}], {n} targets and {fold.Count} folds do not match");
        int k = fold.Max() + 1;
        var values = new float[n];
        for (int f = 0; f < k; f++)
        {
            using var scope = NewDisposeScope();
            var fitRows = Enumerable.Range(0, n).Where(i => k == 1 || fold[i] != f).ToArray();
            var evalRows = Enumerable.Range(0, n).Where(i => k == 1 || fold[i] == f).ToArray();
            if (evalRows.Length == 0) continue;
            var x = features.index_select(0, tensor(fitRows.Select(i => (long)i).ToArray())).unsqueeze(1);   // (n_fit, 1, C)
            var y = tensor(fitRows.Select(i => targets[i]).ToArray());                                        // (n_fit)
            using var head = new ScalarHead(features.shape[1]);
            using var opt = optim.Adam(head.parameters(), lr: learningRate);
            for (int s = 0; s < steps; s++)
            {
                using var stepScope = NewDisposeScope();
                opt.zero_grad();
                var v = head.forward(x).squeeze(1);                                                            // (n_fit)
                (v - y).pow(2).mean().backward();
                opt.step();
            }
            using (no_grad())
            {
                var xe = features.index_select(0, tensor(evalRows.Select(i => (long)i).ToArray())).unsqueeze(1);  // (n_eval, 1, C)
                var v = head.forward(xe).squeeze(1).to_type(ScalarType.Float32).data<float>().ToArray();           // (n_eval)
                for (int j = 0; j < evalRows.Length; j++) values[evalRows[j]] = v[j];
            }
        }
        return values;
    }
}
