using System.Text.Json;

namespace Sharpen.Data;

/// <summary>
/// One JSON object line of a dataset file, with accessors that throw <see cref="DatasetFormatException"/>
/// naming the file, the line, what is wrong and what was expected.
/// </summary>
public sealed class JsonRow
{
    internal JsonRow(string file, int line, JsonElement element, string expected)
    {
        File = file;
        Line = line;
        Element = element;
        Expected = expected;
    }

    /// <summary>The file as named to the loader.</summary>
    public string File { get; }

    /// <summary>1-based line number.</summary>
    public int Line { get; }

    /// <summary>The row object.</summary>
    public JsonElement Element { get; }

    /// <summary>A description of a well-formed row, used in error messages.</summary>
    public string Expected { get; }

    /// <summary>Whether the row has <paramref name="key"/>.</summary>
    public bool Has(string key) => Element.TryGetProperty(key, out _);

    /// <summary>The value of <paramref name="key"/>; throws when it is missing.</summary>
    public JsonElement Get(string key) =>
        Element.TryGetProperty(key, out var value) ? value : throw Error($"key \"{key}\" is missing");

    /// <summary>The string at <paramref name="key"/>; throws when it is missing, not a string, or
    /// (with <paramref name="nonEmpty"/>) empty or only whitespace.</summary>
    public string GetString(string key, bool nonEmpty = false) => AsString(Get(key), $"\"{key}\"", nonEmpty);

    /// <summary>The string in <paramref name="value"/>, described as <paramref name="what"/> in errors.</summary>
    public string AsString(JsonElement value, string what, bool nonEmpty = false)
    {
        if (value.ValueKind != JsonValueKind.String) throw Error($"{what} is {Describe(value.ValueKind)}, not a string");
        var s = value.GetString()!;
        if (nonEmpty && string.IsNullOrWhiteSpace(s)) throw Error($"{what} is empty");
        return s;
    }

    /// <summary>The keys not in <paramref name="known"/>: strings as they are, other values as raw JSON.</summary>
    public IReadOnlyDictionary<string, string> ExtraFields(params string[] known)
    {
        var fields = new Dictionary<string, string>();
        foreach (var p in Element.EnumerateObject())
        {
            if (Array.IndexOf(known, p.Name) >= 0) continue;
            fields[p.Name] = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : p.Value.GetRawText();
        }
        return fields;
    }

    /// <summary>An exception for this row: <c>file:line: problem (expected ...)</c>.</summary>
    public DatasetFormatException Error(string problem) => new(File, Line, problem, Expected);

    internal static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "undefined",
    };
}
