using Sharpen.Algorithms;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

public class ValueLossesTests
{
    [Fact]
    public void Clipped_mse_by_hand()
    {
        using var scope = NewDisposeScope();
        // ε = 0.2, V_old = 0.5 everywhere, so clip(V) ∈ [0.3, 0.7]. Per token ½ max((V−R)², (Vc−R)²):
        //   t0 V=1.0 R=1.0: Vc=0.7, (0)² vs (−0.3)² = 0.09 → clipped larger: 0.045, grad 0
        //   t1 V=0.6 R=1.0: Vc=0.6, both 0.16 → 0.08, grad V−R = −0.4 (not counted as clipped)
        //   t2 V=0.0 R=1.0: Vc=0.3, 1.0 vs 0.49 → 0.5, grad −1.0
        //   t3 V=1.2 R=0.0: Vc=0.7, 1.44 vs 0.49 → 0.72, grad 1.2
        //   t4 padding
        // TokenMean over 4: (0.045 + 0.08 + 0.5 + 0.72)/4 = 0.33625; grads / 4 = [0, −0.1, −0.25, 0.3, 0]; clip fraction 1/4.
        var values = Leaf(1, 1.0f, 0.6f, 0.0f, 1.2f, 5f);
        var (loss, clipFraction) = ValueLosses.ClippedMse(
            values, full(1, 5, 0.5f), Mat(1, 1, 1, 1, 0, 0), Mat(1, 1, 1, 1, 1, 0), 0.2, new Aggregation());
        Close(0.33625, loss.item<float>());
        loss.backward();
        Close([0, -0.1, -0.25, 0.3, 0], values.grad!);
        Close(0.25, clipFraction);
    }
}
