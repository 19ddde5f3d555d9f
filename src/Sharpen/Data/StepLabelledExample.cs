using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Sharpen.Data;

/// <summary>
/// A solution cut into reasoning steps, each with a label: the probability (or the fact, 0/1) that the solution is
/// still on a correct path after that step. The rows PRMs train on. JSONL:
/// <c>{"prompt": string, "steps": [string, ...], "labels": [bool or number in [0, 1], ...], ...fields}</c>,
/// as many labels as steps; other keys are kept as <see cref="Fields"/> (strings as they are, other values as raw JSON).
/// TRL's stepwise-supervision rows name the steps <c>completions</c>: <c>{"prompt", "completions": [...], "labels": [...]}</c>
/// is read the same way.
/// </summary>
/// <param name="Prompt">The problem text.</param>
/// <param name="Steps">The steps; they concatenate to the completion.</param>
/// <param name="Labels">One label in [0, 1] per step (true = 1, false = 0).</param>
/// <param name="Fields">Extra keys of the row.</param>
public sealed record StepLabelledExample(string Prompt, IReadOnlyList<string> Steps, IReadOnlyList<double> Labels,
    IReadOnlyDictionary<string, string> Fields)
{
    const string Expected = "{\"prompt\": string, \"steps\" (or TRL's \"completions\"): [string, ...], \"labels\": [true/false or a number in [0, 1], ...]} with one label per step";
    static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Reads a step-labelled file; a malformed line stops with <c>file:line</c>, or with <paramref name="skipBadLines"/> is counted and skipped.</summary>
    public static LoadResult<StepLabelledExample> Load(string path, bool skipBadLines = false) =>
        JsonlDataset.Read(path, Expected, Parse, skipBadLines);

    static StepLabelledExample Parse(JsonRow row)
    {
        var prompt = row.GetString("prompt", nonEmpty: true);
        if (row.Has("steps") && row.Has("completions")) throw row.Error("the row has both \"steps\" and \"completions\"; give the steps once");
        var key = row.Has("completions") ? "completions" : "steps";
        var stepsValue = row.Get(key);
        if (stepsValue.ValueKind != JsonValueKind.Array) throw row.Error($"\"{key}\" is {JsonRow.Describe(stepsValue.ValueKind)}, not a list of strings");
        var steps = new List<string>();
        foreach (var s in stepsValue.EnumerateArray())
        {
            var text = row.AsString(s, $"\"{key}\"[{steps.Count}]");
            if (text.Length == 0) throw row.Error($"\"{key}\"[{steps.Count}] is empty");
            steps.Add(text);
        }
        if (steps.Count == 0) throw row.Error($"\"{key}\" is empty; a solution needs at least one step");
        var labelsValue = row.Get("labels");
        if (labelsValue.ValueKind != JsonValueKind.Array) throw row.Error($"\"labels\" is {JsonRow.Describe(labelsValue.ValueKind)}, not a list");
        var labels = new List<double>();
        foreach (var l in labelsValue.EnumerateArray())
        {
            double v = l.ValueKind switch
            {
                JsonValueKind.True => 1.0,
                JsonValueKind.False => 0.0,
                JsonValueKind.Number => l.GetDouble(),
                _ => throw row.Error($"\"labels\"[{labels.Count}] is {JsonRow.Describe(l.ValueKind)}, not a boolean or a number in [0, 1]"),
            };
            if (!(v >= 0 && v <= 1)) throw row.Error($"\"labels\"[{labels.Count}] is {l.GetRawText()}, not in [0, 1]");
            labels.Add(v);
        }
        if (labels.Count != steps.Count) throw row.Error($"\"labels\" has {labels.Count} items but \"{key}\" has {steps.Count}; expected one per step");
        return new StepLabelledExample(prompt, steps, labels, row.ExtraFields("prompt", key, "labels"));
    }

    /// <summary>
    /// Writes rows to <paramref name="path"/> (through a temporary file and a rename); returns the row count. With
    /// <paramref name="hardLabels"/> labels are written as booleans (label ≥ 0.5), otherwise as numbers. A field whose value
    /// is valid JSON of a list or object (as the loader keeps such values) is written back as JSON, other fields as strings.
    /// </summary>
    public static int Write(string path, IEnumerable<StepLabelledExample> rows, bool hardLabels = false)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        int count = 0;
        try
        {
            using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            {
                foreach (var e in rows)
                {
                    if (e.Labels.Count != e.Steps.Count) throw new ArgumentException($"row {count}: {e.Labels.Count} labels for {e.Steps.Count} steps");
                    using (var w = new Utf8JsonWriter(stream, WriterOptions))
                    {
                        w.WriteStartObject();
                        w.WriteString("prompt", e.Prompt);
                        w.WriteStartArray("steps");
                        foreach (var s in e.Steps) w.WriteStringValue(s);
                        w.WriteEndArray();
                        w.WriteStartArray("labels");
                        foreach (var l in e.Labels)
                            if (hardLabels) w.WriteBooleanValue(l >= 0.5); else w.WriteNumberValue(Math.Round(l, 6));
                        w.WriteEndArray();
                        foreach (var (k, v) in e.Fields)
                        {
                            if (k is "prompt" or "steps" or "labels") continue;
                            if (v.Length > 0 && (v[0] == '[' || v[0] == '{') && IsJson(v)) { w.WritePropertyName(k); w.WriteRawValue(v); }
                            else w.WriteString(k, v);
                        }
                        w.WriteEndObject();
                    }
                    stream.WriteByte((byte)'\n');
                    count++;
                }
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
        return count;
    }

    static bool IsJson(string text)
    {
        try { using var _ = JsonDocument.Parse(text); return true; }
        catch (JsonException) { return false; }
    }

    /// <summary>A list of numbers as the JSON text a field holds (e.g. soft labels kept beside hard ones).</summary>
    public static string JsonList(IEnumerable<double> values) =>
        "[" + string.Join(",", values.Select(v => Math.Round(v, 6).ToString("R", CultureInfo.InvariantCulture))) + "]";
}

/// <summary>
/// A completion with an outcome label only (correct or not), the data of implicit PRMs. JSONL:
/// <c>{"prompt": string, "completion": string, "label": 0/1 or true/false}</c>, or <c>"reward"</c> (a number in [0, 1])
/// instead of <c>"label"</c>; other keys are kept as fields.
/// </summary>
/// <param name="Prompt">The problem text.</param>
/// <param name="Completion">The solution.</param>
/// <param name="Label">In [0, 1]: 1 = correct.</param>
/// <param name="Fields">Extra keys of the row.</param>
public sealed record OutcomeExample(string Prompt, string Completion, double Label, IReadOnlyDictionary<string, string> Fields)
{
    const string Expected = "{\"prompt\": string, \"completion\": string, \"label\": 0/1 or true/false} or a \"reward\" number in [0, 1] instead of \"label\"";

    /// <summary>Writes outcome rows as <c>{"prompt", "completion", "label", ...fields}</c> (label 0/1 as an integer, else a number;
    /// fields as strings), through a temporary file and a rename; returns the count.</summary>
    public static int Write(string path, IEnumerable<OutcomeExample> rows)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        int count = 0;
        using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            foreach (var r in rows)
            {
                using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
                {
                    w.WriteStartObject();
                    w.WriteString("prompt", r.Prompt);
                    w.WriteString("completion", r.Completion);
                    if (r.Label is 0 or 1) w.WriteNumber("label", (int)r.Label); else w.WriteNumber("label", r.Label);
                    foreach (var (k, v) in r.Fields) if (k is not ("prompt" or "completion" or "label" or "reward")) w.WriteString(k, v);
                    w.WriteEndObject();
                }
                stream.WriteByte((byte)'\n');
                count++;
            }
        File.Move(tmp, full, overwrite: true);
        return count;
    }

    /// <summary>Reads an outcome-labelled file; malformed lines stop with <c>file:line</c> or are counted and skipped.</summary>
    public static LoadResult<OutcomeExample> Load(string path, bool skipBadLines = false) =>
        JsonlDataset.Read(path, Expected, row =>
        {
            var prompt = row.GetString("prompt", nonEmpty: true);
            var completion = row.GetString("completion");
            string key = row.Has("label") ? "label" : row.Has("reward") ? "reward" : throw row.Error("neither \"label\" nor \"reward\" is given");
            var v = row.Get(key);
            double label = v.ValueKind switch
            {
                JsonValueKind.True => 1.0,
                JsonValueKind.False => 0.0,
                JsonValueKind.Number => v.GetDouble(),
                _ => throw row.Error($"\"{key}\" is {JsonRow.Describe(v.ValueKind)}, not a number in [0, 1]"),
            };
            if (!(label >= 0 && label <= 1)) throw row.Error($"\"{key}\" is {v.GetRawText()}, not in [0, 1]");
            return new OutcomeExample(prompt, completion, label, row.ExtraFields("prompt", "completion", "label", "reward"));
        }, skipBadLines);
}
