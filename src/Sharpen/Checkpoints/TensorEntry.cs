namespace Sharpen.Checkpoints;

/// <summary>
/// One tensor as the safetensors header describes it.
/// </summary>
/// <param name="Name">The tensor's key in the header.</param>
/// <param name="DType">The safetensors dtype string, e.g. <c>F32</c>, <c>BF16</c>, <c>I64</c>.</param>
/// <param name="Shape">Dimensions; empty for a scalar.</param>
/// <param name="Begin">Start of the tensor's bytes, relative to the data buffer.</param>
/// <param name="End">End (exclusive) of the tensor's bytes, relative to the data buffer.</param>
public sealed record TensorEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    /// <summary>Number of elements: the product of <see cref="Shape"/> (1 for a scalar).</summary>
    public long ElementCount => Shape.Aggregate(1L, (n, d) => n * d);

    /// <summary>Number of bytes in the data buffer: <see cref="End"/> − <see cref="Begin"/>.</summary>
    public long ByteCount => End - Begin;
}
