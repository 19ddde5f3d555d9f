using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Sharpen.Data;

namespace Sharpen.Tests.Data;

/// <summary>The TensorBoard event file beside metrics.jsonl, read back with TorchSharp's own protobuf classes for TensorBoard's
/// <c>Event</c> (an independent decoder) and a bitwise CRC-32C written here.</summary>
public class TensorBoardEventsTests
{
    /// <summary>CRC-32C, bit by bit (reflected polynomial 0x82F63B78), independent of the writer's.</summary>
    static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        return ~crc;
    }

    static uint Masked(ReadOnlySpan<byte> data) { uint c = Crc32C(data); return unchecked(((c >> 15) | (c << 17)) + 0xa282ead8u); }

    /// <summary>The events of a TFRecord file; every length and data CRC checked.</summary>
    static List<Tensorboard.Event> Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var events = new List<Tensorboard.Event>();
        int at = 0;
        while (at < bytes.Length)
        {
            var head = bytes.AsSpan(at, 8);
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(head);
            Assert.Equal(Masked(head), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8, 4)));
            var data = bytes.AsSpan(at + 12, (int)length);
            Assert.Equal(Masked(data), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + (int)length, 4)));
            events.Add(Tensorboard.Event.Parser.ParseFrom(data.ToArray()));
            at += 16 + (int)length;
        }
        return events;
    }

    [Fact]
    public void Crc32c_matches_the_standard_check_value()
    {
        Assert.Equal(0xE3069283u, TensorBoardEvents.Crc32C("123456789"u8));   // the CRC-32C catalogue's check value
        Assert.Equal(0xE3069283u, Crc32C("123456789"u8));
    }

    [Fact]
    public void Metrics_rows_are_events_beside_metrics_jsonl()
    {
        using var dir = new TempDir();
        var log = new RunLog(dir.Path);
        log.Metrics(new JsonObject { ["step"] = 1, ["loss"] = 2.5, ["lr"] = 0.001 });
        log.Metrics(new JsonObject { ["step"] = 2, ["loss"] = double.NaN, ["reward"] = new JsonObject { ["mean"] = 0.75 }, ["name"] = "x" });
        log.Metrics(new JsonObject { ["step"] = 3, ["loss"] = 1.25 });

        var files = Directory.GetFiles(dir.Path, "events.out.tfevents.*");
        Assert.Single(files);
        var events = Read(files[0]);
        Assert.Equal(4, events.Count);
        Assert.Equal("brain.Event:2", events[0].FileVersion);
        Assert.Equal([1L, 2L, 3L], events.Skip(1).Select(e => e.Step));
        Assert.Equal([("loss", 2.5f), ("lr", 0.001f)], events[1].Summary.Value.Select(v => (v.Tag, v.SimpleValue)));
        Assert.Equal([("reward/mean", 0.75f)], events[2].Summary.Value.Select(v => (v.Tag, v.SimpleValue)));   // NaN (null) and text left out
        Assert.True(events[3].WallTime > 1.7e9);

        // A resumed run keeps rows up to its checkpoint: the event file is rewritten to match.
        new RunLog(dir.Path, append: true).TruncateAfter(2);
        Assert.Equal([1L, 2L], Read(files[0]).Skip(1).Select(e => e.Step));
        // A fresh run starts a fresh file.
        new RunLog(dir.Path).Metrics(new JsonObject { ["step"] = 1, ["loss"] = 9.0 });
        var again = Directory.GetFiles(dir.Path, "events.out.tfevents.*");
        Assert.Single(again);
        Assert.Equal([("loss", 9f)], Read(again[0])[1].Summary.Value.Select(v => (v.Tag, v.SimpleValue)));
    }
}
