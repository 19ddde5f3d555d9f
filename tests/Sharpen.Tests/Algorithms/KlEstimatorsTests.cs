using Sharpen.Algorithms;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

public class KlEstimatorsTests
{
    // Pairs (logp, refLogp): (-1, -2), (-2, -1), (-0.5, -0.5).
    //   d = logp − ref = 1, −1, 0;   log r = ref − logp = −1, 1, 0.
    //   k1 = d                         = 1, −1, 0
    //   k2 = ½ d²                      = 0.5, 0.5, 0
    //   k3 = e^{log r} − log r − 1     = e^{−1} + 1 − 1 = 0.367879,  e − 1 − 1 = 0.718282,  1 − 0 − 1 = 0
    static Tensor Logp() => Mat(1, -1f, -2f, -0.5f);
    static Tensor Ref() => Mat(1, -2f, -1f, -0.5f);

    [Fact]
    public void K1_K2_K3_by_hand()
    {
        using var scope = NewDisposeScope();
        Close([1, -1, 0], KlEstimators.K1(Logp(), Ref()));
        Close([0.5, 0.5, 0], KlEstimators.K2(Logp(), Ref()));
        Close([0.3678794, 0.7182818, 0], KlEstimators.K3(Logp(), Ref()));
    }

    [Fact]
    public void K3_is_non_negative_and_zero_where_the_policies_agree()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(7);
        var logp = -rand(8, 16, generator: gen) * 5;
        var refLogp = -rand(8, 16, generator: gen) * 5;
        Assert.True(KlEstimators.K3(logp, refLogp).min().item<float>() >= 0);
        Assert.Equal(0f, KlEstimators.K3(logp, logp).abs().max().item<float>());
    }

    [Fact]
    public void Registry_finds_each_name_and_lists_the_known_ones_for_an_unknown_one()
    {
        using var scope = NewDisposeScope();
        Assert.Equal(["k1", "k2", "k3"], KlEstimators.Names);
        Close([0.5, 0.5, 0], KlEstimators.Get("k2")(Logp(), Ref()));
        var e = Assert.Throws<ArgumentException>(() => KlEstimators.Get("k4"));
        Assert.Contains("k4", e.Message);
        Assert.Contains("k1, k2, k3", e.Message);
    }
}
