using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;

namespace Sharpen.Data;

/// <summary>
/// The files every training or evaluation command leaves in its output folder:
/// <c>metrics.jsonl</c> (one JSON object per logged step, appended and flushed as it goes) and
/// <c>summary.json</c> (written atomically at the end); beside them a TensorBoard event file with the same rows
/// (<see cref="TensorBoardEvents"/>; <c>tensorboard --logdir OUTPUT</c>).
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
        if (!append) foreach (var old in System.IO.Directory.EnumerateFiles(directory, "events.out.tfevents.*" + TensorBoardEvents.Suffix)) File.Delete(old);
    }

    /// <summary>Path of the TensorBoard event file (created with the first row).</summary>
    public string EventsPath => TensorBoardEvents.PathIn(Directory);

    int _appended;

    /// <summary>Appends one row. Non-finite numbers (a metric that had nothing to measure) are written as null.</summary>
    public void Metrics(JsonObject row)
    {
        var finite = Finite(row);
        File.AppendAllText(MetricsPath, finite.ToJsonString() + "\n");
        TensorBoardEvents.Append(EventsPath, finite, ++_appended);
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

    /// <summary>Keeps only rows whose <c>step</c> is at most <paramref name="step"/> (a resumed run drops rows logged after its checkpoint).
    /// A torn last line (a write cut short by a crash or power loss) is dropped, and <paramref name="warn"/> told.</summary>
    public void TruncateAfter(int step, Action<string>? warn = null)
    {
        if (!File.Exists(MetricsPath)) return;
        var keep = Rows(warn).Where(r => (r.Row["step"]?.GetValue<int>() ?? 0) <= step).Select(r => r.Line);
        AtomicFile.WriteAllText(MetricsPath, string.Concat(keep.Select(l => l + "\n")));
        TensorBoardEvents.Rewrite(EventsPath, ReadMetrics());
    }

    /// <summary>Rewrites metrics.jsonl without a torn last line (see <see cref="ReadMetrics"/>), telling <paramref name="warn"/>;
    /// a resumed run calls this before it appends, so its first row does not land on the torn one. Returns whether a line was dropped.</summary>
    public bool RepairTornLine(Action<string>? warn = null)
    {
        if (!File.Exists(MetricsPath)) return false;
        bool torn = false;
        var rows = Rows(m => { torn = true; warn?.Invoke(m); });
        if (torn)
        {
            AtomicFile.WriteAllText(MetricsPath, string.Concat(rows.Select(r => r.Line + "\n")));
            TensorBoardEvents.Rewrite(EventsPath, rows.Select(r => r.Row));
        }
        return torn;
    }

    /// <summary>Reads all rows back; a torn last line is skipped (and <paramref name="warn"/> told).</summary>
    public IReadOnlyList<JsonObject> ReadMetrics(Action<string>? warn = null) => Rows(warn).Select(r => r.Row).ToList();

    /// <summary>
    /// The rows of metrics.jsonl with their text. Only the last line may be malformed — what an interrupted append leaves —
    /// and it is dropped with a warning; a malformed line before it means the file was damaged otherwise, and throws
    /// <see cref="InvalidDataException"/> naming the file and line.
    /// </summary>
    List<(string Line, JsonObject Row)> Rows(Action<string>? warn)
    {
        if (!File.Exists(MetricsPath)) return [];
        var lines = File.ReadAllLines(MetricsPath);
        var rows = new List<(string, JsonObject)>();
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Length == 0) continue;
            JsonObject? row = null;
            try { row = JsonNode.Parse(lines[i]) as JsonObject; }
            catch (JsonException) { }
            if (row is not null) { rows.Add((lines[i], row)); continue; }
            if (lines.Skip(i + 1).Any(l => l.Length > 0))
                throw new InvalidDataException($"{MetricsPath}:{i + 1}: not a JSON object; only a torn last line is dropped, so the file is damaged");
            warn?.Invoke($"warning: {MetricsPath}:{i + 1}: dropped a torn last line (an append cut short by a crash)");
        }
        return rows;
    }

    /// <summary>The summary.json written so far (a trainer's), for a pipeline to add its fields to; empty if there is none.</summary>
    public JsonObject ReadSummary() =>
        File.Exists(SummaryPath) ? (JsonObject)JsonNode.Parse(File.ReadAllText(SummaryPath))! : new JsonObject();

    /// <summary>Writes summary.json.</summary>
    public void Summary(JsonObject summary) => AtomicFile.WriteAllText(SummaryPath, Finite(summary).ToJsonString(Pretty));

    /// <summary>Adds <paramref name="fields"/> to summary.json in order (replacing a field of the same name; the others stay):
    /// what a pipeline knows beyond its trainer, such as <c>skipped_lines</c> and <c>parameters</c>.</summary>
    public void AddToSummary(params (string Key, JsonNode? Value)[] fields)
    {
        var summary = ReadSummary();
        foreach (var (key, value) in fields) summary[key] = value;
        Summary(summary);
    }

}
