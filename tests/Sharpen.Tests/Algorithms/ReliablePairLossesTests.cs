using Sharpen.Algorithms;
using Sharpen.Training.Preference;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary>CREAM (Kendall's τ, consistency rate, soft-label DPO) and UPO (ensemble uncertainty, reliable-pair sampling,
/// certainty-weighted DPO) against numbers worked out by hand.</summary>
public class ReliablePairLossesTests
{
    // β = 1. Pair 0: log-ratios chosen +0.5, rejected −0.5 → h = 1. Pair 1: chosen −0.5, rejected +0.5 → h = −1.
    static PreferenceInput Pairs(params float[] weights) =>
        new(Vec(-1, -2).requires_grad_(true), Vec(-2, -1).requires_grad_(true), Vec(-1.5f, -1.5f), Vec(-1.5f, -1.5f), PairWeights: Vec(weights));

    [Fact]
    public void Kendall_tau_and_the_consistency_rate_by_hand()
    {
        Close(1, ReliablePairLosses.KendallTau([1, 2, 3], [10, 20, 30]));
        Close(-1, ReliablePairLosses.KendallTau([1, 2, 3], [3, 2, 1]));
        // 6 pairs, one discordant (items 1 and 2): (5 − 1)/6.
        Close(4.0 / 6, ReliablePairLosses.KendallTau([1, 2, 3, 4], [1, 3, 2, 4]));
        // A tie in one list counts as neither: 2 concordant of 3 pairs.
        Close(2.0 / 3, ReliablePairLosses.KendallTau([1, 1, 2], [1, 2, 3]));
        using var scope = NewDisposeScope();
        // C = (τ + 1)/2 per prompt: prompt 0 as above → (2/3 + 1)/2 = 5/6; prompt 1 reversed → 0.
        var c = ReliablePairLosses.ConsistencyRates(Mat(2, 1, 2, 3, 4, 1, 2, 3, 4), Mat(2, 1, 3, 2, 4, 4, 3, 2, 1));
        Close(5.0 / 6, c[0]); Close(0, c[1]);
        // Self-rewarded pairs: highest and lowest implicit reward of each prompt.
        Assert.Equal([(3, 0), (0, 3)], ReliablePairLosses.SelfRewardedPairs(Mat(2, 1, 2, 3, 4, 4, 3, 2, 1)));
    }

    [Fact]
    public void Cream_uses_the_consistency_rate_as_a_soft_label()
    {
        using var scope = NewDisposeScope();
        // C = [1, 0.75]: pair 0 → −log σ(1) = 0.3132617; pair 1 → 0.75·(−log σ(−1)) + 0.25·(−log σ(1)) = 0.75·1.3132617 + 0.25·0.3132617.
        //   mean = (0.3132617 + 1.0632617)/2 = 0.6882617.
        var x = Pairs(1, 0.75f);
        var (loss, m) = ReliablePairLosses.Cream(x, beta: 1);
        Close(0.6882617, loss.item<float>());
        loss.backward();
        // ∂/∂π(c) per pair = [−C σ(−h) + (1 − C) σ(h)]/B: pair 0 → −σ(−1)/2 = −0.1344707; pair 1 → (−0.75σ(1) + 0.25σ(−1))/2 = −0.2405997.
        Close([-0.1344707, -0.2405293], x.PolicyChosen.grad!);
        Close(0.5, m.Accuracy); Close(0, m.Margin);
        // All C = 1 is DPO.
        Close(PreferenceLosses.Dpo(Pairs(1, 1), 1).Loss.item<float>(), ReliablePairLosses.Cream(Pairs(1, 1), 1).Loss.item<float>());
    }

    [Fact]
    public void Upo_weights_each_pair_by_its_certainty()
    {
        using var scope = NewDisposeScope();
        // c = [1, 0.5]: (1·0.3132617 + 0.5·1.3132617)/1.5 = 0.6465950.
        Close(0.6465950, ReliablePairLosses.Upo(Pairs(1, 0.5f), beta: 1).Loss.item<float>());
        Close(PreferenceLosses.Dpo(Pairs(1, 1), 1).Loss.item<float>(), ReliablePairLosses.Upo(Pairs(1, 1), 1).Loss.item<float>());
        Assert.Throws<ArgumentException>(() => ReliablePairLosses.Upo(Pairs(1, 1.5f), 1));
        Assert.Throws<ArgumentException>(() => ReliablePairLosses.Upo(Pairs(1, 1) with { PairWeights = null }, 1));
    }

    [Fact]
    public void Ensemble_uncertainty_is_the_bald_mutual_information()
    {
        using var scope = NewDisposeScope();
        // Two members: σ(1 − 0) = 0.7310586 and σ(0 − 0) = 0.5.
        Close([0.7310586, 0.5], ReliablePairLosses.EnsembleProbabilities(Mat(2, 1, 0), Mat(2, 0, 0)).reshape(-1));
        // Pair 0: both members say ½ → no disagreement, MI 0. Pair 1: 0.9 vs 0.1 → mean ½, MI = ln 2 − H(0.9) = 0.3680642,
        // variance ((0.4)² + (0.4)²)/2 = 0.16.
        var (mean, mi, variance) = ReliablePairLosses.LabelUncertainty(Mat(2, 0.5f, 0.9f, 0.5f, 0.1f));
        Close(0.5, mean[1]); Close(0, mi[0]); Close(0.3680642, mi[1]); Close(0, variance[0]); Close(0.16, variance[1]);
        Close(1 - 0.3680642 / Math.Log(2), ReliablePairLosses.Certainty(mi[1]));
    }

    [Fact]
    public void Reliable_pair_sampling_draws_certain_pairs_first()
    {
        // Certainties [1, 0, 1]: the fully uncertain pair 1 is only drawn once the others are gone, for every seed.
        double[] mi = [0, Math.Log(2), 0];
        for (int seed = 0; seed < 5; seed++)
        {
            var two = ReliablePairLosses.SampleReliablePairs(mi, 2, seed);
            Assert.Equal([0, 2], two.Order());
            Assert.Equal(1, ReliablePairLosses.SampleReliablePairs(mi, 3, seed)[2]);
        }
        Assert.Equal(ReliablePairLosses.SampleReliablePairs(mi, 2, 7), ReliablePairLosses.SampleReliablePairs(mi, 2, 7));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReliablePairLosses.SampleReliablePairs(mi, 4, 0));
    }

    [Fact]
    public void Cream_and_upo_are_registered_with_their_weight_columns_and_refused_online()
    {
        Assert.Equal("consistency", PreferenceLosses.Registry.Get("cream").PairWeightField);
        Assert.Equal("certainty", PreferenceLosses.Registry.Get("upo").PairWeightField);
        Assert.Contains("cream", PreferenceLosses.Names);
        var e = Assert.Throws<ArgumentException>(() => new OnlineDpoOptions { Loss = "upo" }.Validate());
        Assert.Contains("certainty", e.Message);
    }
}
