using System.Buffers.Binary;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using Sharpen.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace Sharpen.Checkpoints;

/// <summary>
/// Reads and writes the safetensors format (https://github.com/huggingface/safetensors): an
/// 8-byte little-endian header length N, N bytes of UTF-8 JSON describing each tensor
/// (<c>dtype</c>, <c>shape</c>, <c>data_offsets</c> relative to the data buffer) plus an optional
/// <c>__metadata__</c> string map, then the raw little-endian tensor bytes.
/// Files are treated as untrusted: a malformed one raises <see cref="SafetensorsFormatException"/>
/// naming the file, the tensor and the problem.
/// </summary>
public static class Safetensors
{
    // Largest slice read or written per call; keeps spans below int.MaxValue for multi-GB tensors.
    internal const long DefaultChunkBytes = 1L << 28;

    /// <summary>Reads and validates the header only; no tensor data is read.</summary>
    public static SafetensorsHeader ReadHeader(string path)
    {
        EnsureLittleEndian();
        return SafetensorsHeaderParser.Read(path);
    }

    /// <summary>
    /// Loads every tensor of a file, or only <paramref name="names"/>. Floating-point tensors
    /// (F16, BF16, F32, F64) are converted to <paramref name="dtype"/>; BOOL, U8, I8, I16, I32 and
    /// I64 keep their own type. Each tensor's bytes are read straight into its storage.
    /// </summary>
    /// <param name="path">The .safetensors file.</param>
    /// <param name="dtype">Floating-point type for the loaded float tensors (default Float32).</param>
    /// <param name="names">Tensors to load; every one must be in the file. Null loads all.</param>
    /// <returns>Fresh CPU tensors owned by the caller (they live in the caller's dispose scope, if any).</returns>
    public static Dictionary<string, Tensor> Load(string path, ScalarType dtype = ScalarType.Float32, IReadOnlyCollection<string>? names = null) =>
        Load(path, dtype, names, DefaultChunkBytes);

    // chunkBytes is a parameter so tests can exercise the multi-chunk path on small tensors. A null dtype keeps every
    // tensor in its stored type (a BF16 checkpoint then takes half the memory of its float32 conversion while it is copied
    // into a model).
    internal static Dictionary<string, Tensor> Load(string path, ScalarType? dtype, IReadOnlyCollection<string>? names, long chunkBytes)
    {
        EnsureLittleEndian();
        if (dtype is { } d && !SafetensorsDTypes.IsFloatingPoint(d))
            throw new ArgumentException($"dtype must be a floating-point type, got {dtype}", nameof(dtype));
        TorchRuntime.EnsureLoaded();

        using var stream = SafetensorsHeaderParser.OpenForRead(path);
        var header = SafetensorsHeaderParser.Read(stream, path);
        var wanted = names ?? header.Tensors.Keys.ToArray();
        var entries = new List<TensorEntry>(wanted.Count);
        foreach (var name in wanted)
        {
            if (!header.Tensors.TryGetValue(name, out var entry))
                throw new SafetensorsFormatException(path, name, "requested but not present in the file");
            if (SafetensorsDTypes.ToTorch(entry.DType) is null)
                throw new SafetensorsFormatException(path, name, $"dtype {entry.DType} is valid safetensors but Sharpen cannot load it");
            entries.Add(entry);
        }

        using var scope = NewDisposeScope();
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var entry in entries.OrderBy(e => e.Begin))   // sequential reads
        {
            var tensor = ReadTensor(stream.SafeFileHandle, path, header.DataStart, entry, chunkBytes);
            if (dtype is { } want && SafetensorsDTypes.IsFloatingPoint(tensor.dtype) && tensor.dtype != want)
            {
                var stored = tensor;
                tensor = stored.to_type(want);
                stored.Dispose();                                         // only one tensor's stored copy is alive at a time
            }
            result[entry.Name] = tensor;
        }
        foreach (var tensor in result.Values) tensor.MoveToOuterDisposeScope();
        return result;
    }

    /// <summary>
    /// Writes <paramref name="tensors"/> in name order (ordinal). Floating-point tensors are stored
    /// as <paramref name="storeAs"/> (Float32, BFloat16 or Float16); integer and bool tensors as their
    /// own type. The header is padded with spaces to a multiple of 8 bytes. The file is written to a
    /// temporary name beside <paramref name="path"/> and renamed, so a reader never sees half a file.
    /// </summary>
    /// <param name="path">Destination; an existing file is replaced.</param>
    /// <param name="tensors">Tensors by name, on any device; they are not modified or disposed.</param>
    /// <param name="storeAs">Stored type for floating-point tensors.</param>
    /// <param name="metadata">Optional <c>__metadata__</c> string map (e.g. <c>{"format": "pt"}</c>).</param>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, ScalarType storeAs = ScalarType.Float32,
                            IReadOnlyDictionary<string, string>? metadata = null) =>
        Save(path, tensors, storeAs, metadata, DefaultChunkBytes);

    /// <summary>Shard file name Hugging Face gives shard <paramref name="index"/> (1-based) of <paramref name="count"/>:
    /// <c>model-00001-of-00004.safetensors</c>.</summary>
    public static string ShardFileName(int index, int count) => $"model-{index:D5}-of-{count:D5}.safetensors";

    /// <summary>
    /// Writes <paramref name="tensors"/> the way Hugging Face's <c>save_pretrained(max_shard_size=…)</c> does: in the given
    /// order, a new shard starts when the next tensor would take the current one past <paramref name="maxShardBytes"/> (a
    /// tensor larger than that gets a shard of its own); shards are named <see cref="ShardFileName"/> and
    /// <paramref name="indexFileName"/> holds <c>{"metadata": {"total_size": stored bytes}, "weight_map": {tensor: shard}}</c>.
    /// When everything fits in one shard, <paramref name="singleFileName"/> is written instead and no index (as Hugging
    /// Face does). Returns the files written, names only.
    /// </summary>
    public static IReadOnlyList<string> SaveSharded(string directory, IReadOnlyList<(string Name, Tensor Tensor)> tensors, long maxShardBytes,
        ScalarType storeAs = ScalarType.Float32, IReadOnlyDictionary<string, string>? metadata = null,
        string singleFileName = "model.safetensors", string indexFileName = "model.safetensors.index.json")
    {
        if (maxShardBytes <= 0) throw new ArgumentOutOfRangeException(nameof(maxShardBytes), maxShardBytes, "must be positive");
        var shards = new List<List<(string Name, Tensor Tensor)>>();
        long current = 0, total = 0;
        foreach (var (name, tensor) in tensors)
        {
            var stored = SafetensorsDTypes.IsFloatingPoint(tensor.dtype) ? storeAs : tensor.dtype;
            var dtype = SafetensorsDTypes.FromTorch(stored)
                        ?? throw new ArgumentException($"tensor '{name}' has type {tensor.dtype}, which safetensors cannot store", nameof(tensors));
            SafetensorsDTypes.TryGetSize(dtype, out var size);
            var bytes = tensor.numel() * size;
            if (shards.Count == 0 || (current > 0 && current + bytes > maxShardBytes)) { shards.Add([]); current = 0; }
            shards[^1].Add((name, tensor));
            current += bytes;
            total += bytes;
        }
        Directory.CreateDirectory(directory);
        if (shards.Count <= 1)
        {
            Save(Path.Combine(directory, singleFileName), tensors.ToDictionary(t => t.Name, t => t.Tensor, StringComparer.Ordinal), storeAs, metadata);
            return [singleFileName];
        }
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var files = new List<string>();
        for (var i = 0; i < shards.Count; i++)
        {
            var file = ShardFileName(i + 1, shards.Count);
            Save(Path.Combine(directory, file), shards[i].ToDictionary(t => t.Name, t => t.Tensor, StringComparer.Ordinal), storeAs, metadata);
            foreach (var (name, _) in shards[i])
                if (!map.TryAdd(name, file)) throw new ArgumentException($"tensor '{name}' appears twice", nameof(tensors));
            files.Add(file);
        }
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteNumber("total_size", total);
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            foreach (var (name, file) in map) json.WriteString(name, file);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        AtomicFile.WriteAllBytes(Path.Combine(directory, indexFileName), buffer.ToArray());
        files.Add(indexFileName);
        return files;
    }

    internal static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, ScalarType storeAs,
                              IReadOnlyDictionary<string, string>? metadata, long chunkBytes)
    {
        EnsureLittleEndian();
        ArgumentNullException.ThrowIfNull(tensors);
        if (storeAs is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16))
            throw new ArgumentException($"storeAs must be Float32, BFloat16 or Float16, got {storeAs}", nameof(storeAs));
        TorchRuntime.EnsureLoaded();

        var names = tensors.Keys.OrderBy(n => n, StringComparer.Ordinal).ToArray();
        var entries = new List<TensorEntry>(names.Length);
        var offset = 0L;
        foreach (var name in names)
        {
            if (name.Length == 0 || name == "__metadata__")
                throw new ArgumentException($"'{name}' cannot be a tensor name in a safetensors file", nameof(tensors));
            var tensor = tensors[name];
            var stored = SafetensorsDTypes.IsFloatingPoint(tensor.dtype) ? storeAs : tensor.dtype;
            var dtype = SafetensorsDTypes.FromTorch(stored)
                        ?? throw new ArgumentException($"tensor '{name}' has type {tensor.dtype}, which safetensors cannot store", nameof(tensors));
            if (SafetensorsDTypes.IsFloatingPoint(tensor.dtype) && NonFinite(tensor, stored) is { } bad)
                throw new CheckpointException($"{path}: tensor '{name}' holds {bad}; refusing to write weights that cannot be trained or sampled from " +
                    "(the run diverged: check the rewards and the learning rate)");
            SafetensorsDTypes.TryGetSize(dtype, out var size);
            var bytes = tensor.numel() * size;
            entries.Add(new TensorEntry(name, dtype, tensor.shape, offset, offset + bytes));
            offset += bytes;
        }

        var header = BuildHeader(entries, metadata);
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 20))
            {
                Span<byte> prefix = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
                stream.Write(prefix);
                stream.Write(header);
                foreach (var entry in entries)
                    WriteTensor(stream, tensors[entry.Name], SafetensorsDTypes.ToTorch(entry.DType)!.Value, chunkBytes);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>What is wrong with the values of floating-point <paramref name="tensor"/> stored as <paramref name="stored"/>:
    /// "N non-finite values (NaN or Inf)", or values beyond float16's range when stored as float16; null when nothing is.</summary>
    internal static string? NonFinite(Tensor tensor, ScalarType stored)
    {
        if (tensor.numel() == 0) return null;
        using var scope = NewDisposeScope();
        var bad = (~isfinite(tensor)).sum().item<long>();
        if (bad > 0) return $"{bad} non-finite value{(bad == 1 ? "" : "s")} (NaN or Inf)";
        if (stored == ScalarType.Float16 && tensor.abs().max().item<float>() > 65504f)
            return "values beyond float16's range (|x| > 65504), which would be stored as Inf";
        return null;
    }

    /// <summary>
    /// Loads a sharded checkpoint from its index, e.g. <c>model.safetensors.index.json</c>:
    /// <c>{"metadata": {...}, "weight_map": {"tensor name": "shard file name", ...}}</c>. Shard
    /// files are resolved beside the index and must stay inside its folder. Every referenced file
    /// must exist and hold every tensor mapped to it; both are checked before any data is read.
    /// </summary>
    public static Dictionary<string, Tensor> LoadSharded(string indexJsonPath, ScalarType dtype = ScalarType.Float32) =>
        LoadSharded(indexJsonPath, (ScalarType?)dtype);

    /// <summary>As <see cref="LoadSharded(string, ScalarType)"/>; a null <paramref name="dtype"/> keeps every tensor in its
    /// stored type (BF16 stays BF16: half the memory of float32 while the weights are copied into a model).</summary>
    public static Dictionary<string, Tensor> LoadSharded(string indexJsonPath, ScalarType? dtype)
    {
        EnsureLittleEndian();
        var shards = ReadIndex(indexJsonPath);
        var directory = Path.GetDirectoryName(Path.GetFullPath(indexJsonPath))!;

        var files = new List<(string Path, List<string> Names)>();
        foreach (var (file, names) in shards)
        {
            var shardPath = Path.GetFullPath(Path.Combine(directory, file));
            if (!File.Exists(shardPath))
                throw new SafetensorsFormatException(indexJsonPath, names[0], $"weight_map names shard '{file}', which does not exist ({shardPath})");
            var header = ReadHeader(shardPath);
            var missing = names.FirstOrDefault(n => !header.Tensors.ContainsKey(n));
            if (missing is not null)
                throw new SafetensorsFormatException(indexJsonPath, missing, $"weight_map places it in '{file}', but that shard has no such tensor");
            files.Add((shardPath, names));
        }

        using var scope = NewDisposeScope();
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (shardPath, names) in files)
            foreach (var (name, tensor) in Load(shardPath, dtype, names, DefaultChunkBytes))
                result[name] = tensor;
        foreach (var tensor in result.Values) tensor.MoveToOuterDisposeScope();
        return result;
    }

    // Shard file name → tensor names mapped to it, in first-seen order.
    static Dictionary<string, List<string>> ReadIndex(string indexPath)
    {
        byte[] json;
        try
        {
            var info = new FileInfo(indexPath);
            if (!info.Exists) throw new SafetensorsFormatException(indexPath, null, "index file not found");
            if (info.Length > SafetensorsHeaderParser.MaxHeaderBytes)
                throw new SafetensorsFormatException(indexPath, null, $"index is {info.Length} bytes, more than the limit of {SafetensorsHeaderParser.MaxHeaderBytes}");
            json = File.ReadAllBytes(indexPath);
        }
        catch (DirectoryNotFoundException e)
        {
            throw new SafetensorsFormatException(indexPath, null, "index file not found", e);
        }

        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new SafetensorsFormatException(indexPath, null, $"index is not valid JSON: {e.Message}", e); }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object
                || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new SafetensorsFormatException(indexPath, null, "index must be a JSON object with a 'weight_map' object");

            var seen = new HashSet<string>(StringComparer.Ordinal);
            var shards = new Dictionary<string, List<string>>(StringComparer.Ordinal);
            foreach (var item in map.EnumerateObject())
            {
                if (!seen.Add(item.Name))
                    throw new SafetensorsFormatException(indexPath, item.Name, "appears twice in weight_map");
                if (item.Value.ValueKind != JsonValueKind.String || item.Value.GetString() is not { Length: > 0 } file)
                    throw new SafetensorsFormatException(indexPath, item.Name, "weight_map value must be a shard file name");
                if (Path.IsPathRooted(file) || file.Contains("..", StringComparison.Ordinal) || file.IndexOfAny(['/', '\\']) >= 0)
                    throw new SafetensorsFormatException(indexPath, item.Name, $"shard '{file}' must be a plain file name beside the index");
                if (!shards.TryGetValue(file, out var names)) shards[file] = names = [];
                names.Add(item.Name);
            }
            return shards;
        }
    }

    static Tensor ReadTensor(SafeFileHandle handle, string path, long dataStart, TensorEntry entry, long chunkBytes)
    {
        var type = SafetensorsDTypes.ToTorch(entry.DType)!.Value;
        var count = entry.ElementCount;
        var flat = empty(count, type);                                    // (numel,)
        var elementSize = entry.ByteCount / Math.Max(count, 1);
        var perChunk = Math.Max(1, chunkBytes / Math.Max(elementSize, 1));
        var position = dataStart + entry.Begin;
        for (var first = 0L; first < count; first += perChunk)
        {
            using var part = flat.narrow(0, first, Math.Min(perChunk, count - first));
            var span = part.bytes;
            while (!span.IsEmpty)
            {
                var read = RandomAccess.Read(handle, span, position);
                if (read == 0)
                    throw new SafetensorsFormatException(path, entry.Name, $"file ended at byte {position} while reading the tensor's data");
                span = span[read..];
                position += read;
            }
        }
        return flat.reshape(entry.Shape);                                 // (*shape)
    }

    static void WriteTensor(FileStream stream, Tensor source, ScalarType stored, long chunkBytes)
    {
        using var scope = NewDisposeScope();
        var flat = source.detach().cpu().to_type(stored).contiguous().reshape(-1);   // (numel,)
        var count = flat.numel();
        var perChunk = Math.Max(1, chunkBytes / flat.ElementSize);
        for (var first = 0L; first < count; first += perChunk)
        {
            using var part = flat.narrow(0, first, Math.Min(perChunk, count - first));
            stream.Write(part.bytes);
        }
    }

    static byte[] BuildHeader(List<TensorEntry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                    json.WriteString(key, value);
                json.WriteEndObject();
            }
            foreach (var entry in entries)
            {
                json.WriteStartObject(entry.Name);
                json.WriteString("dtype", entry.DType);
                json.WriteStartArray("shape");
                foreach (var dim in entry.Shape) json.WriteNumberValue(dim);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(entry.Begin);
                json.WriteNumberValue(entry.End);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        // Pad with spaces so the data buffer starts 8-byte aligned, as Hugging Face's writer does.
        var padding = (int)((8 - buffer.Length % 8) % 8);
        buffer.Write(Encoding.ASCII.GetBytes(new string(' ', padding)));
        return buffer.ToArray();
    }

    static void EnsureLittleEndian()
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("Sharpen's safetensors reader and writer run only on little-endian hosts.");
    }
}
