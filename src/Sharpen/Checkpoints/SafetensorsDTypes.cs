using TorchSharp;

namespace Sharpen.Checkpoints;

/// <summary>
/// The safetensors dtype strings Sharpen knows: their element sizes and torch types.
/// </summary>
internal static class SafetensorsDTypes
{
    // Element size in bytes, and the torch type we load it as (null: known to the format, not loadable here).
    static readonly Dictionary<string, (int Size, torch.ScalarType? Torch)> Table = new(StringComparer.Ordinal)
    {
        ["BOOL"] = (1, torch.ScalarType.Bool),
        ["U8"] = (1, torch.ScalarType.Byte),
        ["I8"] = (1, torch.ScalarType.Int8),
        ["I16"] = (2, torch.ScalarType.Int16),
        ["I32"] = (4, torch.ScalarType.Int32),
        ["I64"] = (8, torch.ScalarType.Int64),
        ["F16"] = (2, torch.ScalarType.Float16),
        ["BF16"] = (2, torch.ScalarType.BFloat16),
        ["F32"] = (4, torch.ScalarType.Float32),
        ["F64"] = (8, torch.ScalarType.Float64),
        ["U16"] = (2, null),
        ["U32"] = (4, null),
        ["U64"] = (8, null),
        ["F8_E4M3"] = (1, null),
        ["F8_E5M2"] = (1, null),
    };

    /// <summary>All known dtype strings, for error messages.</summary>
    public static string KnownList => string.Join(", ", Table.Keys);

    public static bool TryGetSize(string dtype, out int size)
    {
        var found = Table.TryGetValue(dtype, out var row);
        size = row.Size;
        return found;
    }

    /// <summary>The torch type a stored dtype loads as, or null when Sharpen cannot load it.</summary>
    public static torch.ScalarType? ToTorch(string dtype) => Table.TryGetValue(dtype, out var row) ? row.Torch : null;

    /// <summary>The safetensors string for a torch type, or null when the format has none.</summary>
    public static string? FromTorch(torch.ScalarType type) => type switch
    {
        torch.ScalarType.Bool => "BOOL",
        torch.ScalarType.Byte => "U8",
        torch.ScalarType.Int8 => "I8",
        torch.ScalarType.Int16 => "I16",
        torch.ScalarType.Int32 => "I32",
        torch.ScalarType.Int64 => "I64",
        torch.ScalarType.Float16 => "F16",
        torch.ScalarType.BFloat16 => "BF16",
        torch.ScalarType.Float32 => "F32",
        torch.ScalarType.Float64 => "F64",
        _ => null,
    };

    public static bool IsFloatingPoint(torch.ScalarType type) =>
        type is torch.ScalarType.Float16 or torch.ScalarType.BFloat16 or torch.ScalarType.Float32 or torch.ScalarType.Float64;
}
