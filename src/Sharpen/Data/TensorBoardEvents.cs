using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using System.Text.Json.Nodes;

namespace Sharpen.Data;

/// <summary>
/// TensorBoard's event file (<c>events.out.tfevents.*</c>) for the rows of metrics.jsonl, written by hand: TFRecord framing
/// (little-endian u64 length, masked CRC-32C of the length, the bytes, masked CRC-32C of the bytes) around protobuf
/// <c>Event</c> messages — first <c>file_version: "brain.Event:2"</c>, then one event per row with <c>wall_time</c>,
/// <c>step</c> and a <c>Summary</c> holding every finite number of the row as a <c>simple_value</c> (nested objects'
/// keys joined with <c>/</c>). <see cref="RunLog"/> keeps the file beside metrics.jsonl.
/// </summary>
public static class TensorBoardEvents
{
    /// <summary>The ending of the event files Sharpen writes (TensorBoard reads any name containing <c>tfevents</c>).</summary>
    public const string Suffix = ".sharpen";

    /// <summary>The event file in <paramref name="dir"/>, or a new name (<c>events.out.tfevents.SECONDS.HOST.sharpen</c>).</summary>
    public static string PathIn(string dir) =>
        Directory.EnumerateFiles(dir, "events.out.tfevents.*" + Suffix).Order(StringComparer.Ordinal).FirstOrDefault()
        ?? Path.Combine(dir, $"events.out.tfevents.{DateTimeOffset.UtcNow.ToUnixTimeSeconds()}.{Environment.MachineName}{Suffix}");

    /// <summary>Writes the file afresh: the version event, then one event per row.</summary>
    public static void Rewrite(string path, IEnumerable<JsonObject> rows)
    {
        using var ms = new MemoryStream();
        Record(ms, Event(Now(), 0, version: "brain.Event:2", null));
        int i = 0;
        foreach (var row in rows) Record(ms, RowEvent(row, ++i));
        Checkpoints.AtomicFile.WriteAllBytes(path, ms.ToArray());
    }

    /// <summary>Appends one row's event; creates the file with its version event first if it does not exist.</summary>
    public static void Append(string path, JsonObject row, int index)
    {
        using var ms = new MemoryStream();
        if (!File.Exists(path)) Record(ms, Event(Now(), 0, version: "brain.Event:2", null));
        Record(ms, RowEvent(row, index));
        using var f = new FileStream(path, FileMode.Append, FileAccess.Write);
        ms.Position = 0;
        ms.CopyTo(f);
    }

    static double Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

    /// <summary>The step of a row: its <c>step</c>, else <c>iteration</c>, else its 1-based position.</summary>
    static long StepOf(JsonObject row, int index) =>
        row["step"] is JsonValue s && s.TryGetValue(out long a) ? a : row["iteration"] is JsonValue it && it.TryGetValue(out long b) ? b : index;

    static byte[] RowEvent(JsonObject row, int index)
    {
        var values = new List<(string, float)>();
        Flatten(row, "", values);
        return Event(Now(), StepOf(row, index), null, values);
    }

    static void Flatten(JsonObject o, string prefix, List<(string, float)> into)
    {
        foreach (var (k, v) in o)
        {
            var tag = prefix + k;
            if (v is JsonObject inner) Flatten(inner, tag + "/", into);
            else if (v is JsonValue j && k is not "step" && j.GetValueKind() == System.Text.Json.JsonValueKind.Number
                     && double.TryParse(j.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture, out var d) && double.IsFinite(d))
                into.Add((tag, (float)d));
        }
    }

    /// <summary>A protobuf <c>Event</c>: wall_time (1, double), step (2, int64), file_version (3, string), summary (5).</summary>
    static byte[] Event(double wallTime, long step, string? version, List<(string Tag, float Value)>? values)
    {
        var e = new List<byte> { 0x09 };
        e.AddRange(BitConverter.GetBytes(wallTime));
        e.Add(0x10); Varint(e, (ulong)step);
        if (version is not null) { e.Add(0x1A); Bytes(e, Encoding.UTF8.GetBytes(version)); }
        if (values is { Count: > 0 })
        {
            var summary = new List<byte>();
            foreach (var (tag, value) in values)
            {
                // Summary.Value: tag (1, string), simple_value (2, float).
                var v = new List<byte> { 0x0A };
                Bytes(v, Encoding.UTF8.GetBytes(tag));
                v.Add(0x15); v.AddRange(BitConverter.GetBytes(value));
                summary.Add(0x0A); Bytes(summary, [.. v]);
            }
            e.Add(0x2A); Bytes(e, [.. summary]);
        }
        return [.. e];
    }

    static void Varint(List<byte> b, ulong v)
    {
        while (v >= 0x80) { b.Add((byte)(v | 0x80)); v >>= 7; }
        b.Add((byte)v);
    }

    static void Bytes(List<byte> b, byte[] data) { Varint(b, (ulong)data.Length); b.AddRange(data); }

    static void Record(Stream s, byte[] data)
    {
        Span<byte> head = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(head, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(head[8..], MaskedCrc(head[..8]));
        s.Write(head);
        s.Write(data);
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(tail, MaskedCrc(data));
        s.Write(tail);
    }

    /// <summary>CRC-32C (Castagnoli) of <paramref name="data"/>.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = ~0u;
        foreach (var b in data) crc = BitOperations.Crc32C(crc, b);
        return ~crc;
    }

    /// <summary>TFRecord's masked CRC: rotate right by 15, add 0xa282ead8.</summary>
    public static uint MaskedCrc(ReadOnlySpan<byte> data)
    {
        uint crc = Crc32C(data);
        return unchecked(((crc >> 15) | (crc << 17)) + 0xa282ead8u);
    }
}
