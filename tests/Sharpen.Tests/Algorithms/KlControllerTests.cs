using Sharpen.Algorithms;
using static Sharpen.Tests.Algorithms.Tensors;

namespace Sharpen.Tests.Algorithms;

public class KlControllerTests
{
    [Fact]
    public void Adaptive_controller_over_a_few_updates()
    {
        // β0 = 0.1, target 6, horizon 10000; β ← β(1 + clip(KL/6 − 1, ±0.2)·steps/10000).
        IKlController kl = new AdaptiveKlController(0.1, 6, 10000);
        kl.Update(9, 1000);      // e = clip(0.5) = 0.2 → 0.1 · (1 + 0.2·0.1) = 0.102
        Close(0.102, kl.Value, 1e-12);
        kl.Update(6, 1000);      // e = 0 → 0.102
        Close(0.102, kl.Value, 1e-12);
        kl.Update(3, 1000);      // e = clip(−0.5) = −0.2 → 0.102 · 0.98 = 0.09996
        Close(0.09996, kl.Value, 1e-12);
        kl.Update(5.4, 5000);    // e = −0.1 → 0.09996 · (1 − 0.1·0.5) = 0.09996 · 0.95 = 0.094962
        Close(0.094962, kl.Value, 1e-12);
    }

    [Fact]
    public void Fixed_controller_never_moves_and_bad_arguments_throw()
    {
        IKlController kl = new FixedKlController(0.05);
        kl.Update(100, 1000);
        Assert.Equal(0.05, kl.Value);
        Assert.Throws<ArgumentOutOfRangeException>(() => new FixedKlController(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AdaptiveKlController(0.1, 0, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AdaptiveKlController(0.1, 6, 0));
    }
}
