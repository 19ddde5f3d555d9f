using System.Text;

namespace Sharpen.Export;

/// <summary>
/// Writes a GGUF version 3 file (llama.cpp's model format): the magic <c>GGUF</c>, version, tensor and key counts, the
/// metadata key/values, the tensor descriptions (name, dims with the fastest-varying first, ggml type, offset), then the
/// tensor data, each tensor aligned to <see cref="Alignment"/> bytes. Little-endian throughout. Tensor bytes are produced
/// one tensor at a time while writing, so a large model is never held twice.
/// </summary>
public sealed class GgufWriter
{
    /// <summary>Alignment of the data section and of every tensor in it (GGUF's default, written as <c>general.alignment</c>).</summary>
    public const int Alignment = 32;

    enum ValueType : uint { UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7, String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12 }

    /// <summary>ggml tensor types written by Sharpen.</summary>
    public enum TensorType : uint
    {
        /// <summary>GGML_TYPE_F32.</summary>
        F32 = 0,
        /// <summary>GGML_TYPE_F16.</summary>
        F16 = 1,
        /// <summary>GGML_TYPE_Q8_0.</summary>
        Q8_0 = 8,
    }

    readonly List<(string Key, Action<BinaryWriter> Write)> _metadata = [];
    readonly List<(string Name, long[] Dims, TensorType Type, Func<byte[]> Data)> _tensors = [];

    /// <summary>Adds a string value.</summary>
    public void Add(string key, string value) => AddKv(key, w => { w.Write((uint)ValueType.String); WriteString(w, value); });
    /// <summary>Adds a uint32 value.</summary>
    public void Add(string key, uint value) => AddKv(key, w => { w.Write((uint)ValueType.UInt32); w.Write(value); });
    /// <summary>Adds a float32 value.</summary>
    public void Add(string key, float value) => AddKv(key, w => { w.Write((uint)ValueType.Float32); w.Write(value); });
    /// <summary>Adds a bool value.</summary>
    public void Add(string key, bool value) => AddKv(key, w => { w.Write((uint)ValueType.Bool); w.Write((byte)(value ? 1 : 0)); });

    /// <summary>Adds an array of strings.</summary>
    public void Add(string key, IReadOnlyList<string> values) => AddKv(key, w =>
    {
        w.Write((uint)ValueType.Array);
        w.Write((uint)ValueType.String);
        w.Write((ulong)values.Count);
        foreach (var v in values) WriteString(w, v);
    });

    /// <summary>Adds an array of int32.</summary>
    public void Add(string key, IReadOnlyList<int> values) => AddKv(key, w =>
    {
        w.Write((uint)ValueType.Array);
        w.Write((uint)ValueType.Int32);
        w.Write((ulong)values.Count);
        foreach (var v in values) w.Write(v);
    });

    void AddKv(string key, Action<BinaryWriter> write)
    {
        if (_metadata.Any(m => m.Key == key)) throw new ArgumentException($"GGUF key '{key}' added twice");
        _metadata.Add((key, write));
    }

    /// <summary>
    /// Adds a tensor. <paramref name="dims"/> are in GGUF order (fastest-varying first: a torch (rows, cols) matrix is
    /// <c>[cols, rows]</c>); <paramref name="data"/> is called once while writing and must return exactly the tensor's bytes.
    /// </summary>
    public void AddTensor(string name, long[] dims, TensorType type, Func<byte[]> data)
    {
        if (_tensors.Any(t => t.Name == name)) throw new ArgumentException($"GGUF tensor '{name}' added twice");
        if (type == TensorType.Q8_0 && dims[0] % 32 != 0) throw new ArgumentException($"tensor '{name}': Q8_0 needs rows of a multiple of 32 values, got {dims[0]}");
        _tensors.Add((name, dims, type, data));
    }

    /// <summary>Bytes a tensor of <paramref name="dims"/> takes as <paramref name="type"/>.</summary>
    public static long ByteSize(long[] dims, TensorType type)
    {
        long n = dims.Aggregate(1L, (a, b) => a * b);
        return type switch
        {
            TensorType.F32 => 4 * n,
            TensorType.F16 => 2 * n,
            TensorType.Q8_0 => n / 32 * 34,
            _ => throw new ArgumentOutOfRangeException(nameof(type)),
        };
    }

    /// <summary>Writes the file (replacing it). A failure leaves no partial file at <paramref name="path"/>.</summary>
    public void Write(string path)
    {
        var tmp = path + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: false))
            {
                w.Write(0x46554747u);                       // "GGUF" little-endian
                w.Write(3u);                                // version
                w.Write((ulong)_tensors.Count);
                w.Write((ulong)_metadata.Count);
                foreach (var (key, write) in _metadata)
                {
                    WriteString(w, key);
                    write(w);
                }
                long offset = 0;
                var offsets = new long[_tensors.Count];
                for (int i = 0; i < _tensors.Count; i++)
                {
                    var (name, dims, type, _) = _tensors[i];
                    WriteString(w, name);
                    w.Write((uint)dims.Length);
                    foreach (var d in dims) w.Write((ulong)d);
                    w.Write((uint)type);
                    w.Write((ulong)offset);
                    offsets[i] = offset;
                    offset = Align(offset + ByteSize(dims, type));
                }
                Pad(w);
                long dataStart = stream.Position;
                for (int i = 0; i < _tensors.Count; i++)
                {
                    var (name, dims, type, data) = _tensors[i];
                    var bytes = data();
                    if (bytes.LongLength != ByteSize(dims, type))
                        throw new InvalidOperationException($"tensor '{name}' produced {bytes.LongLength} bytes, expected {ByteSize(dims, type)}");
                    w.Flush();
                    if (stream.Position - dataStart != offsets[i]) throw new InvalidOperationException($"tensor '{name}' is misplaced");
                    w.Write(bytes);
                    Pad(w);
                }
            }
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    static long Align(long x) => (x + Alignment - 1) / Alignment * Alignment;

    static void Pad(BinaryWriter w)
    {
        w.Flush();
        long pos = w.BaseStream.Position;
        long pad = Align(pos) - pos;
        for (long i = 0; i < pad; i++) w.Write((byte)0);
    }

    static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    // ---------------------------------------------------------------- encodings

    /// <summary>Float32 values as little-endian bytes.</summary>
    public static byte[] EncodeF32(float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return bytes;
    }

    /// <summary>Values rounded to IEEE half precision (nearest even), little-endian.</summary>
    public static byte[] EncodeF16(float[] values)
    {
        var bytes = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
        {
            ushort h = BitConverter.HalfToUInt16Bits((Half)values[i]);
            bytes[2 * i] = (byte)h;
            bytes[2 * i + 1] = (byte)(h >> 8);
        }
        return bytes;
    }

    /// <summary>
    /// ggml's Q8_0 (reference <c>quantize_row_q8_0</c>): for each block of 32 values, d = max|x| / 127 stored as F16, then
    /// q = round(x / d) (half away from zero) as signed bytes. The length must be a multiple of 32.
    /// </summary>
    public static byte[] EncodeQ8_0(float[] values)
    {
        if (values.Length % 32 != 0) throw new ArgumentException($"Q8_0 needs a multiple of 32 values, got {values.Length}");
        int blocks = values.Length / 32;
        var bytes = new byte[blocks * 34];
        for (int b = 0; b < blocks; b++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = Math.Max(amax, Math.Abs(values[b * 32 + j]));
            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            ushort h = BitConverter.HalfToUInt16Bits((Half)d);
            int o = b * 34;
            bytes[o] = (byte)h;
            bytes[o + 1] = (byte)(h >> 8);
            for (int j = 0; j < 32; j++)
                bytes[o + 2 + j] = (byte)(sbyte)MathF.Round(values[b * 32 + j] * id, MidpointRounding.AwayFromZero);
        }
        return bytes;
    }
}
