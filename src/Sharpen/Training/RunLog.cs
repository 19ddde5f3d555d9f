using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;

namespace Sharpen.Training;

/// <summary>
/// The files every training or evaluation command leaves in its output folder:
/// <c>metrics.jsonl</c> (one JSON object per logged step, appended and flushed as it goes) and
/// <c>summary.json</c> (written atomically at the end).
/// </summary>
public sealed class RunLog
{
    static readonly JsonSerializerOptions Pretty = new() { WriteIndented = true };

    /// <summary>The output folder.</summary>
    public string Directory { get; }
    /// <summary>Path of metrics.jsonl.</summary>
    public string MetricsPath => Path.Combine(Directory, "metrics.jsonl");
    /// <summary>Path of summary.json.</summary>
    public string SummaryPath => Path.Combine(Directory, "summary.json");

    /// <summary>Opens the folder; <paramref name="append"/> keeps existing metrics (a resumed run), otherwise they are cleared.</summary>
    public RunLog(string directory, bool append = false)
    {
        Directory = directory;
        System.IO.Directory.CreateDirectory(directory);
        if (!append && File.Exists(MetricsPath)) File.Delete(MetricsPath);
    }

    /// <summary>Appends one row. Non-finite numbers (a metric that had nothing to measure) are written as null.</summary>
    public void Metrics(JsonObject row)
    {
        File.AppendAllText(MetricsPath, Finite(row).ToJsonString() + "\n");
    }

    /// <summary>Replaces NaN and infinities (which JSON cannot hold) by null, recursively.</summary>
    static JsonObject Finite(JsonObject o)
    {
        foreach (var key in o.Select(kv => kv.Key).ToList())
        {
            switch (o[key])
            {
                case JsonValue v when v.TryGetValue(out double d) && !double.IsFinite(d): o[key] = null; break;
                case JsonValue v when v.TryGetValue(out float f) && !float.IsFinite(f): o[key] = null; break;
                case JsonObject inner: Finite(inner); break;
            }
        }
        return o;
    }

    /// <summary>Keeps only rows whose <c>step</c> is at most <paramref name="step"/> (a resumed run drops rows logged after its checkpoint).</summary>
    public void TruncateAfter(int step)
    {
        if (!File.Exists(MetricsPath)) return;
        var keep = File.ReadAllLines(MetricsPath)
            .Where(l => l.Length > 0 && (JsonNode.Parse(l)?["step"]?.GetValue<int>() ?? 0) <= step);
        AtomicFile.WriteAllText(MetricsPath, string.Concat(keep.Select(l => l + "\n")));
    }

    /// <summary>Reads all rows back.</summary>
    public IReadOnlyList<JsonObject> ReadMetrics() => File.Exists(MetricsPath)
        ? File.ReadAllLines(MetricsPath).Where(l => l.Length > 0).Select(l => (JsonObject)JsonNode.Parse(l)!).ToList()
        : [];

    /// <summary>The summary.json written so far (a trainer's), for a pipeline to add its fields to; empty if there is none.</summary>
    public JsonObject ReadSummary() =>
        File.Exists(SummaryPath) ? (JsonObject)JsonNode.Parse(File.ReadAllText(SummaryPath))! : new JsonObject();

    /// <summary>Writes summary.json.</summary>
    public void Summary(JsonObject summary) => AtomicFile.WriteAllText(SummaryPath, Finite(summary).ToJsonString(Pretty));

}
