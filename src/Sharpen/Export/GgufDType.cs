namespace Sharpen.Export;

/// <summary>How <see cref="GgufExporter"/> stores the 2-D weight matrices. Norms, biases and rope factors stay F32 (as
/// llama.cpp's own converter keeps them).</summary>
public enum GgufDType
{
    /// <summary>32-bit floats: the exact weights.</summary>
    F32,
    /// <summary>IEEE half precision (round to nearest even).</summary>
    F16,
    /// <summary>ggml's Q8_0: blocks of 32 values as one F16 scale (max |x| / 127) and 32 signed bytes. Matrices whose rows are
    /// not a multiple of 32 long fall back to F16.</summary>
    Q8_0,
}
