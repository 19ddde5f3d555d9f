using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary>Small helpers for building hand tensors and comparing them with hand-worked numbers.</summary>
static class Tensors
{
    /// <summary>A float32 matrix with <paramref name="rows"/> rows from row-major values.</summary>
    public static Tensor Mat(int rows, params float[] values)
    {
        TorchRuntime.EnsureLoaded();
        return tensor(values).reshape(rows, -1);
    }

    /// <summary>A float32 vector.</summary>
    public static Tensor Vec(params float[] values)
    {
        TorchRuntime.EnsureLoaded();
        return tensor(values);
    }

    /// <summary>A leaf that requires grad.</summary>
    public static Tensor Leaf(int rows, params float[] values) => Mat(rows, values).requires_grad_(true);

    public static float[] Values(Tensor t) => t.detach().contiguous().to_type(ScalarType.Float32).data<float>().ToArray();

    public static void Close(double expected, double actual, double tol = 1e-5) =>
        Assert.True(Math.Abs(expected - actual) <= tol, $"expected {expected}, got {actual}");

    public static void Close(double[] expected, Tensor actual, double tol = 1e-5)
    {
        var got = Values(actual);
        Assert.Equal(expected.Length, got.Length);
        for (int i = 0; i < got.Length; i++)
            Assert.True(Math.Abs(expected[i] - got[i]) <= tol, $"at {i}: expected {expected[i]}, got {got[i]} (all: {string.Join(", ", got)})");
    }
}
