using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Sharpen.Checkpoints;

/// <summary>
/// Reads and validates a safetensors header. The file is untrusted: every length, offset and
/// shape is checked before anything is allocated from it.
/// </summary>
internal static class SafetensorsHeaderParser
{
    /// <summary>Largest header we accept (the reference implementation uses the same bound).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    const string MetadataKey = "__metadata__";

    public static SafetensorsHeader Read(string path)
    {
        using var stream = OpenForRead(path);
        return Read(stream, path);
    }

    public static FileStream OpenForRead(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.RandomAccess);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new SafetensorsFormatException(path, null, "file not found", e);
        }
    }

    public static SafetensorsHeader Read(FileStream stream, string path)
    {
        var fileLength = stream.Length;
        if (fileLength < 8)
            throw Fail(path, $"file is {fileLength} bytes, shorter than the 8-byte header length prefix");

        Span<byte> prefix = stackalloc byte[8];
        stream.Position = 0;
        stream.ReadExactly(prefix);
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > MaxHeaderBytes)
            throw Fail(path, $"header length {headerLength} exceeds the limit of {MaxHeaderBytes} bytes");
        if ((long)headerLength > fileLength - 8)
            throw Fail(path, $"header length {headerLength} exceeds the {fileLength - 8} bytes that follow the length prefix (file is {fileLength} bytes)");
        if (headerLength == 0)
            throw Fail(path, "header is empty (length 0)");

        var json = new byte[headerLength];
        stream.ReadExactly(json);

        var dataStart = 8 + (long)headerLength;
        var bufferLength = fileLength - dataStart;

        try
        {
            _ = StrictUtf8.GetCharCount(json);
        }
        catch (DecoderFallbackException e)
        {
            throw Fail(path, $"header is not valid UTF-8 (byte {8 + e.Index} of the file): tensor names and metadata must be UTF-8 text", e);
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw Fail(path, $"header is not valid JSON: {e.Message}", e);
        }

        using (doc)
        {
            try
            {
                return Entries(path, doc, bufferLength, dataStart);
            }
            catch (InvalidOperationException e)
            {
                // GetString rejects an escape that is not valid UTF-16 (a lone surrogate such as \ud800) in a name or value.
                throw Fail(path, $"header holds a string escape that is not valid UTF-16 (a lone surrogate such as \\ud800): {e.Message}", e);
            }
        }
    }

    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    static SafetensorsHeader Entries(string path, JsonDocument doc, long bufferLength, long dataStart)
    {
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw Fail(path, $"header must be a JSON object, found {doc.RootElement.ValueKind}");

            var tensors = new Dictionary<string, TensorEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seenMetadata = false;
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    if (seenMetadata) throw Fail(path, $"duplicate key '{MetadataKey}'");
                    seenMetadata = true;
                    ReadMetadata(path, property.Value, metadata);
                    continue;
                }
                if (tensors.ContainsKey(property.Name))
                    throw new SafetensorsFormatException(path, property.Name, "duplicate key in header");
                tensors.Add(property.Name, ReadEntry(path, property.Name, property.Value, bufferLength));
            }

            CheckOverlaps(path, tensors.Values);
            return new SafetensorsHeader(tensors, metadata, dataStart);
        }
    }

    static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind == JsonValueKind.Null) return;
        if (value.ValueKind != JsonValueKind.Object)
            throw Fail(path, $"'{MetadataKey}' must be an object of strings, found {value.ValueKind}");
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                throw Fail(path, $"'{MetadataKey}' value for key '{item.Name}' must be a string, found {item.Value.ValueKind}");
            if (!metadata.TryAdd(item.Name, item.Value.GetString()!))
                throw Fail(path, $"'{MetadataKey}' has duplicate key '{item.Name}'");
        }
    }

    static TensorEntry ReadEntry(string path, string name, JsonElement value, long bufferLength)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new SafetensorsFormatException(path, name, $"entry must be an object with dtype, shape and data_offsets, found {value.ValueKind}");

        JsonElement? dtypeElement = null, shapeElement = null, offsetsElement = null;
        foreach (var field in value.EnumerateObject())
        {
            ref JsonElement? slot = ref dtypeElement;
            switch (field.Name)
            {
                case "dtype": slot = ref dtypeElement; break;
                case "shape": slot = ref shapeElement; break;
                case "data_offsets": slot = ref offsetsElement; break;
                default: throw new SafetensorsFormatException(path, name, $"unexpected field '{field.Name}' (expected dtype, shape, data_offsets)");
            }
            if (slot is not null) throw new SafetensorsFormatException(path, name, $"duplicate field '{field.Name}'");
            slot = field.Value;
        }

        if (dtypeElement is not { ValueKind: JsonValueKind.String } d)
            throw new SafetensorsFormatException(path, name, "missing or non-string 'dtype'");
        var dtype = d.GetString()!;
        if (!SafetensorsDTypes.TryGetSize(dtype, out var elementSize))
            throw new SafetensorsFormatException(path, name, $"unknown dtype '{dtype}' (known: {SafetensorsDTypes.KnownList})");

        var shape = ReadIntArray(path, name, "shape", shapeElement);
        var offsets = ReadIntArray(path, name, "data_offsets", offsetsElement);
        if (offsets.Length != 2)
            throw new SafetensorsFormatException(path, name, $"data_offsets must hold exactly 2 integers, found {offsets.Length}");
        var (begin, end) = (offsets[0], offsets[1]);
        if (begin > end)
            throw new SafetensorsFormatException(path, name, $"data_offsets begin {begin} is greater than end {end}");
        if (end > bufferLength)
            throw new SafetensorsFormatException(path, name, $"data_offsets [{begin}, {end}] run past the end of the data buffer ({bufferLength} bytes); the file may be truncated");

        long byteCount;
        try
        {
            var count = 1L;
            foreach (var dim in shape) count = checked(count * dim);
            byteCount = checked(count * elementSize);
        }
        catch (OverflowException)
        {
            throw new SafetensorsFormatException(path, name, $"shape [{string.Join(", ", shape)}] has too many elements (overflow)");
        }
        if (byteCount != end - begin)
            throw new SafetensorsFormatException(path, name,
                $"shape [{string.Join(", ", shape)}] × {dtype} ({elementSize} bytes) needs {byteCount} bytes but data_offsets [{begin}, {end}] span {end - begin}");

        return new TensorEntry(name, dtype, shape, begin, end);
    }

    static long[] ReadIntArray(string path, string name, string field, JsonElement? element)
    {
        if (element is not { ValueKind: JsonValueKind.Array } array)
            throw new SafetensorsFormatException(path, name, $"missing or non-array '{field}'");
        var result = new long[array.GetArrayLength()];
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out var v))
                throw new SafetensorsFormatException(path, name, $"'{field}' must hold integers, found {item.GetRawText()}");
            if (v < 0)
                throw new SafetensorsFormatException(path, name, $"'{field}' holds a negative value {v}");
            result[i++] = v;
        }
        return result;
    }

    static void CheckOverlaps(string path, IEnumerable<TensorEntry> entries)
    {
        // Zero-size tensors occupy no bytes and cannot overlap anything.
        TensorEntry? previous = null;
        foreach (var entry in entries.Where(e => e.End > e.Begin).OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (previous is not null && entry.Begin < previous.End)
                throw new SafetensorsFormatException(path, entry.Name,
                    $"bytes [{entry.Begin}, {entry.End}] overlap tensor '{previous.Name}' at [{previous.Begin}, {previous.End}]");
            previous = entry;
        }
    }

    static SafetensorsFormatException Fail(string path, string problem, Exception? inner = null) => new(path, null, problem, inner);
}
