using Sharpen.Torch;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sharpen.Algorithms;

/// <summary>
/// Preference losses for self-labelled pairs whose labels may be wrong, each weighting a pair by how far its label can be
/// trusted (<see cref="PreferenceInput.PairWeights"/>), and the helpers that compute those weights:
/// <list type="bullet">
/// <item>CREAM (Wang et al. 2024, "CREAM: Consistency Regularized Self-Rewarding Language Models", arXiv:2410.12735): the
/// model ranks its own samples by its implicit reward β·log π/π_ref; the consistency C of that ranking between the current
/// and the previous iterate (Kendall's τ mapped to [0, 1]) is the soft label of a DPO loss,
/// C·(−log σ(βh)) + (1 − C)·(−log σ(−βh)).</item>
/// <item>UPO (Wang et al. 2024, "Self-Evolutionary Large Language Models through Uncertainty-Enhanced Preference
/// Optimization", arXiv:2409.11212): the uncertainty of a pair's label from an ensemble (or MC-dropout passes) of a reward
/// model, reliable-pair sampling with probability growing with certainty, and a DPO loss weighted by certainty.</item>
/// </list>
/// h is the difference of the summed log-ratios, as in <see cref="PreferenceLosses"/>.
/// </summary>
public static class ReliablePairLosses
{
    /// <summary>
    /// Kendall's τ-a of two score lists over the same N items: (concordant − discordant) / (N(N−1)/2); a pair tied in
    /// either list counts as neither. 1 = same order, −1 = reversed.
    /// </summary>
    public static double KendallTau(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Count != b.Count || a.Count < 2) throw new ArgumentException($"need two lists of the same length ≥ 2, got {a.Count} and {b.Count}.");
        int n = a.Count, net = 0;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                net += Math.Sign(a[i] - a[j]) * Math.Sign(b[i] - b[j]);
        return net / (n * (n - 1) / 2.0);
    }

    /// <summary>
    /// CREAM's consistency rate of each prompt's ranking: C = (τ + 1)/2 with τ Kendall's τ between the implicit rewards of
    /// the prompt's N samples under the current and the previous iterate, <c>(B)</c> in [0, 1].
    /// </summary>
    /// <param name="current">β·log π_t/π_ref of each sample, <c>(B, N)</c>.</param>
    /// <param name="previous">β·log π_{t−1}/π_ref of the same samples, <c>(B, N)</c>.</param>
    public static double[] ConsistencyRates(Tensor current, Tensor previous)
    {
        TorchRuntime.EnsureLoaded();
        if (current.dim() != 2 || !current.shape.SequenceEqual(previous.shape))
            throw new ArgumentException($"current and previous must be the same (B, N), got [{string.Join(", ", current.shape)}] and [{string.Join(", ", previous.shape)}].");
        var c = Rows(current);
        var p = Rows(previous);
        return [.. c.Select((row, i) => (KendallTau(row, p[i]) + 1) / 2)];
    }

    /// <summary>
    /// The self-rewarding pair of each prompt: the samples of highest and lowest implicit reward (ties: lowest index), as
    /// (chosen, rejected) indices into the N samples.
    /// </summary>
    /// <param name="implicitRewards">β·log π/π_ref of each sample, <c>(B, N)</c>.</param>
    public static (int Chosen, int Rejected)[] SelfRewardedPairs(Tensor implicitRewards)
    {
        TorchRuntime.EnsureLoaded();
        if (implicitRewards.dim() != 2 || implicitRewards.shape[1] < 2) throw new ArgumentException("implicitRewards must be (B, N) with N ≥ 2.", nameof(implicitRewards));
        return [.. Rows(implicitRewards).Select(r =>
        {
            int best = 0, worst = 0;
            for (int j = 1; j < r.Length; j++) { if (r[j] > r[best]) best = j; if (r[j] < r[worst]) worst = j; }
            return (best, worst);
        })];
    }

    /// <summary>
    /// CREAM's consistency-regularised DPO: per pair C·(−log σ(βh)) + (1 − C)·(−log σ(−βh)) with C = <see cref="PreferenceInput.PairWeights"/>,
    /// mean over B. C = 1 is DPO; C = ½ (rankings uncorrelated) makes the loss indifferent to the label. Metrics as DPO's.
    /// </summary>
    public static (Tensor Loss, PreferenceMetrics Metrics) Cream(PreferenceInput x, double beta = 0.1)
    {
        var (chosen, rejected, w) = Prepare(x, beta);
        using var scope = NewDisposeScope();
        var h = chosen - rejected;                                                            // (B)
        var perPair = w * F.softplus(-beta * h) + (1 - w) * F.softplus(beta * h);             // CREAM: soft label C
        var loss = perPair.mean();
        return (loss.MoveToOuterDisposeScope(), Metrics(beta * chosen, beta * rejected));
    }

    /// <summary>
    /// UPO's uncertainty-weighted DPO: per pair c·(−log σ(βh)) with the certainty c = <see cref="PreferenceInput.PairWeights"/>
    /// (e.g. 1 − u/ln 2 from <see cref="LabelUncertainty"/>), divided by Σc (a weighted mean over B). All c = 1 is DPO.
    /// </summary>
    public static (Tensor Loss, PreferenceMetrics Metrics) Upo(PreferenceInput x, double beta = 0.1)
    {
        var (chosen, rejected, w) = Prepare(x, beta);
        using var scope = NewDisposeScope();
        var h = chosen - rejected;                                                            // (B)
        var loss = (w * F.softplus(-beta * h)).sum() / w.sum().clamp_min(1e-12);              // Σ c·ℓ_DPO / Σ c
        return (loss.MoveToOuterDisposeScope(), Metrics(beta * chosen, beta * rejected));
    }

    /// <summary>
    /// The label probabilities P_m(chosen ≻ rejected) = σ(r_m(chosen) − r_m(rejected)) of M reward models (ensemble members
    /// or MC-dropout passes of one), <c>(M, B)</c>.
    /// </summary>
    public static Tensor EnsembleProbabilities(Tensor chosenRewards, Tensor rejectedRewards)
    {
        TorchRuntime.EnsureLoaded();
        if (chosenRewards.dim() != 2 || !chosenRewards.shape.SequenceEqual(rejectedRewards.shape))
            throw new ArgumentException("chosenRewards and rejectedRewards must be the same (M, B).");
        using var noGrad = no_grad();
        return F.sigmoid(chosenRewards.detach() - rejectedRewards.detach());
    }

    /// <summary>
    /// The uncertainty of each pair's label from M probability samples <c>(M, B)</c>: the BALD mutual information
    /// H(p̄) − mean_m H(p_m) (in nats, in [0, ln 2]) with H the binary entropy and p̄ the mean probability, and the
    /// variance of the samples. Returns (mean probability, mutual information, variance), each <c>(B)</c>.
    /// </summary>
    public static (double[] MeanProbability, double[] MutualInformation, double[] Variance) LabelUncertainty(Tensor probabilities)
    {
        TorchRuntime.EnsureLoaded();
        if (probabilities.dim() != 2 || probabilities.shape[0] < 1) throw new ArgumentException("probabilities must be (M, B).", nameof(probabilities));
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var p = probabilities.detach().to_type(ScalarType.Float64).clamp(1e-12, 1 - 1e-12); // (M, B)
        static Tensor H(Tensor q) => -(q * q.log() + (1 - q) * (1 - q).log());
        var mean = p.mean([0L]);                                                              // (B)
        var mi = (H(mean) - H(p).mean([0L])).clamp_min(0);                                    // (B)  BALD
        var variance = p.var(0, unbiased: false);                                             // (B)
        return (Arr(mean), Arr(mi), Arr(variance));
    }

    /// <summary>
    /// UPO's reliable-pair sampling: draws <paramref name="count"/> distinct pairs, each draw picking a remaining pair with
    /// probability proportional to its certainty 1 − u/ln 2 (u the mutual information of <see cref="LabelUncertainty"/>),
    /// plus 1e-9 so that fully uncertain pairs are drawn last. Seeded; returns indices in draw order.
    /// </summary>
    public static int[] SampleReliablePairs(IReadOnlyList<double> mutualInformation, int count, int seed)
    {
        ArgumentNullException.ThrowIfNull(mutualInformation);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count > mutualInformation.Count) throw new ArgumentOutOfRangeException(nameof(count), count, $"cannot draw {count} of {mutualInformation.Count} pairs.");
        var weight = mutualInformation.Select(Certainty).Select(c => c + 1e-9).ToArray();
        var rng = new Random(seed);
        var picked = new List<int>(count);
        var left = Enumerable.Range(0, weight.Length).ToList();
        for (int k = 0; k < count; k++)
        {
            double total = left.Sum(i => weight[i]), u = rng.NextDouble() * total, acc = 0;
            int at = left.Count - 1;
            for (int j = 0; j < left.Count; j++) { acc += weight[left[j]]; if (u < acc) { at = j; break; } }
            picked.Add(left[at]);
            left.RemoveAt(at);
        }
        return [.. picked];
    }

    /// <summary>The certainty 1 − u/ln 2 of a label with mutual information u (nats), clamped to [0, 1].</summary>
    public static double Certainty(double mutualInformation) => Math.Clamp(1 - mutualInformation / Math.Log(2), 0, 1);

    static (Tensor Chosen, Tensor Rejected, Tensor Weights) Prepare(PreferenceInput x, double beta)
    {
        ArgumentNullException.ThrowIfNull(x);
        TorchRuntime.EnsureLoaded();
        if (!(beta > 0) || double.IsInfinity(beta)) throw new ArgumentOutOfRangeException(nameof(beta), beta, "beta must be a finite number > 0.");
        if (x.PolicyChosen.dim() != 1 || x.PolicyChosen.shape[0] == 0) throw new ArgumentException("PolicyChosen must be a non-empty (B) tensor.", nameof(x));
        foreach (var (t, name) in new[] { (x.PolicyRejected, "PolicyRejected"), (x.ReferenceChosen, "ReferenceChosen"), (x.ReferenceRejected, "ReferenceRejected"), (x.PairWeights, "PairWeights") })
        {
            if (t is null) throw new ArgumentException($"{name} is required by this loss.", nameof(x));
            if (!t.shape.SequenceEqual(x.PolicyChosen.shape)) throw new ArgumentException($"{name} has shape [{string.Join(", ", t.shape)}] but must match [{string.Join(", ", x.PolicyChosen.shape)}].", nameof(x));
        }
        var dtype = x.PolicyChosen.dtype;
        var w = x.PairWeights!.detach().to_type(dtype);
        using (no_grad())
            if ((w < 0).any().item<bool>() || (w > 1).any().item<bool>()) throw new ArgumentException("PairWeights must lie in [0, 1].", nameof(x));
        return (x.PolicyChosen - x.ReferenceChosen!.detach().to_type(dtype), x.PolicyRejected - x.ReferenceRejected!.detach().to_type(dtype), w);
    }

    static PreferenceMetrics Metrics(Tensor chosenReward, Tensor rejectedReward)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var c = chosenReward.detach().to_type(ScalarType.Float32);
        var r = rejectedReward.detach().to_type(ScalarType.Float32);
        return new PreferenceMetrics((c > r).to_type(ScalarType.Float32).mean().item<float>(), (c - r).mean().item<float>(),
            c.mean().item<float>(), r.mean().item<float>());
    }

    static double[][] Rows(Tensor t)
    {
        using var noGrad = no_grad();
        var flat = t.detach().to_type(ScalarType.Float64).contiguous().data<double>().ToArray();
        int n = (int)t.shape[1];
        return [.. Enumerable.Range(0, (int)t.shape[0]).Select(i => flat.AsSpan(i * n, n).ToArray())];
    }

    static double[] Arr(Tensor t) => t.contiguous().data<double>().ToArray();
}
