namespace Sharpen.Checkpoints;

/// <summary>
/// The validated header of a safetensors file.
/// </summary>
/// <param name="Tensors">Every tensor in the file by name (ordinal comparison).</param>
/// <param name="Metadata">The <c>__metadata__</c> string map; empty when the file has none.</param>
/// <param name="DataStart">Absolute file offset of the data buffer: 8 + header length.</param>
public sealed record SafetensorsHeader(
    IReadOnlyDictionary<string, TensorEntry> Tensors,
    IReadOnlyDictionary<string, string> Metadata,
    long DataStart);
