using Sharpen.Algorithms;
using Sharpen.Training.Rl;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary>f-DPG (arXiv:2302.08215): pseudo-rewards −f′(π/p) worked by hand, and the surrogate's gradient against ∇D_f computed from f itself.</summary>
public class FDivergencesTests
{
    // P = [1, 3] (unnormalised), π = [0.5, 0.25]: Ẑ = mean(P/π) = mean(2, 12) = 7; t = π·Ẑ/P = [3.5, 7/12].
    static readonly double[] T = [3.5, 7.0 / 12];

    [Theory]
    [InlineData(FDivergence.ReverseKl)]
    [InlineData(FDivergence.ForwardKl)]
    [InlineData(FDivergence.TotalVariation)]
    [InlineData(FDivergence.JensenShannon)]
    public void Pseudo_rewards_are_minus_f_prime_at_pi_over_p_with_the_batch_partition_estimate(FDivergence f)
    {
        using var scope = NewDisposeScope();
        var logPi = tensor(new[] { Math.Log(0.5), Math.Log(0.25) });
        var logP = tensor(new[] { 0.0, Math.Log(3) });
        Close(Math.Log(7), FDivergences.LogPartition(logPi, logP).item<double>(), 1e-9);
        double[] expected = f switch
        {
            FDivergence.ReverseKl => [.. T.Select(t => -(Math.Log(t) + 1))],          // f(t) = t log t
            FDivergence.ForwardKl => [.. T.Select(t => 1 / t)],                       // f(t) = −log t
            FDivergence.TotalVariation => [-0.5, 0.5],                                // f(t) = ½|t − 1|: t > 1 → −½, t < 1 → +½
            _ => [-0.5 * Math.Log(14.0 / 9), 0.5 * Math.Log(19.0 / 14)],             // −½ log(2t/(1+t)): 7/4.5 = 14/9; (7/6)/(19/12) = 14/19
        };
        Close(expected, FDivergences.PseudoRewards(logPi, logP, f), 1e-5);
    }

    // A categorical policy over 4 outcomes and a target p = P/Z: the surrogate −Σ_y π(y)·R(y)·log π_θ(y) (R = −f′(π/p) with the
    // exact Z, π detached) must have the gradient of D_f(π_θ ‖ p) = Σ_y p(y) f(π_θ(y)/p(y)), written here from each f's definition.
    [Theory]
    [InlineData(FDivergence.ReverseKl)]
    [InlineData(FDivergence.ForwardKl)]
    [InlineData(FDivergence.TotalVariation)]
    [InlineData(FDivergence.JensenShannon)]
    public void Surrogate_gradient_equals_the_gradient_of_the_divergence(FDivergence f)
    {
        using var scope = NewDisposeScope();
        var bigP = new[] { 1.0, 2.0, 0.5, 4.0 };
        double z = bigP.Sum();
        var logP = tensor(bigP.Select(v => Math.Log(v)).ToArray());
        var p = tensor(bigP.Select(v => v / z).ToArray());

        var theta1 = tensor(new[] { 0.3, -0.2, 0.9, 0.1 }).requires_grad_(true);
        var pi1 = theta1.softmax(0);
        var t = pi1 / p;
        Tensor fOfT = f switch
        {
            FDivergence.ReverseKl => t * t.log(),
            FDivergence.ForwardKl => -t.log(),
            FDivergence.TotalVariation => 0.5 * (t - 1).abs(),
            _ => 0.5 * (t * (2 * t / (1 + t)).log() + (2 / (1 + t)).log()),
        };
        (p * fOfT).sum().backward();
        var expected = theta1.grad!.clone();

        var theta2 = tensor(new[] { 0.3, -0.2, 0.9, 0.1 }).requires_grad_(true);
        var logPi = theta2.log_softmax(0);
        var r = FDivergences.PseudoRewards(logPi.detach(), logP, f, logZ: tensor(Math.Log(z))).to_type(ScalarType.Float64);
        (-(logPi.exp().detach() * r * logPi).sum()).backward();
        Close(Values(expected).Select(v => (double)v).ToArray(), theta2.grad!, 1e-5);
    }

    [Fact]
    public void Filter_target_gives_finite_bounded_rewards_where_the_constraint_fails()
    {
        using var scope = NewDisposeScope();
        var logBase = tensor(new[] { Math.Log(0.2), Math.Log(0.3), Math.Log(0.1) });
        var logTarget = FDivergences.LogTarget(logBase, Vec(1, 0, 1), EbmTarget.Filter, beta: 1);
        Assert.True(double.IsNegativeInfinity(logTarget[1].item<double>()));
        // π = a here: Ẑ = mean(1, 0, 1) = 2/3 (the passing mass), so for passing rows t = π·Ẑ/P = 2/3; failing rows t = ∞ (clamped).
        Close([1.5, Math.Exp(-FDivergences.MaxLogRatio), 1.5], FDivergences.PseudoRewards(logBase, logTarget, FDivergence.ForwardKl), 1e-6);
        Close([0.5, -0.5, 0.5], FDivergences.PseudoRewards(logBase, logTarget, FDivergence.TotalVariation));
        double js = -0.5 * Math.Log(2 * (2.0 / 3) / (1 + 2.0 / 3));                     // −½ log(4/5)
        double jsInf = -0.5 * (Math.Log(2) - Math.Log(1 + Math.Exp(-FDivergences.MaxLogRatio)));   // → −½ log 2 as t → ∞
        Close([js, jsInf, js], FDivergences.PseudoRewards(logBase, logTarget, FDivergence.JensenShannon), 1e-6);
        Close([-(Math.Log(2.0 / 3) + 1), -(FDivergences.MaxLogRatio + 1), -(Math.Log(2.0 / 3) + 1)],
            FDivergences.PseudoRewards(logBase, logTarget, FDivergence.ReverseKl), 1e-5);
        // No sample passes: no signal.
        var none = FDivergences.LogTarget(logBase, Vec(0, 0, 0), EbmTarget.Filter, beta: 1);
        Close([0, 0, 0], FDivergences.PseudoRewards(logBase, none, FDivergence.JensenShannon));
    }

    // Two rows of one group: log π = Σ old log-probs = [−1, −2]; Σ k1 = Σ(log π − log a) = [0.2, 0.4]; r = [1, 0], β = 0.5:
    // log π − log P = kl − r/β = [−1.8, 0.4]. Forward KL: R = 1/t = exp(−(log π − log P))/Ẑ with Ẑ = mean(e^{1.8}, e^{−0.4}),
    // so mean R = 1 and A = R − 1.
    [Fact]
    public void Fdpg_estimator_reads_the_reference_through_the_token_kl_and_centres_per_group()
    {
        using var scope = NewDisposeScope();
        var mask = ones(2, 2);
        var ctx = new AdvantageContext(Vec(1, 0), mask, 2, Mat(2, 0.1f, 0.1f, 0.2f, 0.2f), 0.5, true, null, null, new MovingAverageBaseline(0.9),
            1, 1, RewardScaling.None, OldLogProbs: Mat(2, -0.5f, -0.5f, -1, -1), Divergence: FDivergence.ForwardKl);
        var est = AdvantageEstimators.Registry.Get("fdpg").Estimate(ctx);
        double zHat = (Math.Exp(1.8) + Math.Exp(-0.4)) / 2;
        double a0 = Math.Exp(1.8) / zHat - 1, a1 = Math.Exp(-0.4) / zHat - 1;
        Close([a0, a0, a1, a1], est.Advantages, 1e-5);
        Close([Math.Exp(1.8) / zHat, Math.Exp(-0.4) / zHat], est.SequenceAdvantages, 1e-5);
    }

    [Fact]
    public void Fdpg_algorithm_is_registered_and_needs_a_positive_beta()
    {
        var o = RlOptions.For("fdpg");
        Assert.Equal(FDivergence.JensenShannon, o.Divergence);
        Assert.Equal("fdpg", RlAlgorithms.Get("fdpg").Name);
        var e = Assert.Throws<ArgumentException>(() => (o with { Beta = 0 }).Validate());
        Assert.Contains("rl.beta", e.Message);
    }
}
