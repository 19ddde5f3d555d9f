using System.Text.Json;

namespace Sharpen.Tokenizers;

/// <summary>Reads keys out of a tokenizer JSON file and turns every problem into a
/// <see cref="TokenizerFileException"/> that names the file and the key.</summary>
internal sealed class JsonFile(string path)
{
    public string Path { get; } = path;

    /// <summary>Parses <paramref name="text"/>; malformed JSON is reported with its line and byte position.</summary>
    public JsonDocument Parse(string text)
    {
        try
        {
            return JsonDocument.Parse(text, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw Error("(root)", $"is not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}): {e.Message}", e);
        }
    }

    public TokenizerFileException Error(string key, string problem, Exception? inner = null) => new(Path, key, problem, inner);

    /// <summary>The member <paramref name="name"/> of <paramref name="parent"/>, which must be an object.</summary>
    public JsonElement RequireObject(JsonElement parent, string parentKey, string name, string expected = "an object") =>
        Require(parent, parentKey, name, JsonValueKind.Object, expected);

    public JsonElement RequireArray(JsonElement parent, string parentKey, string name) =>
        Require(parent, parentKey, name, JsonValueKind.Array, "an array");

    public string RequireString(JsonElement parent, string parentKey, string name) =>
        Require(parent, parentKey, name, JsonValueKind.String, "a string").GetString()!;

    public int RequireInt(JsonElement parent, string parentKey, string name)
    {
        var e = Require(parent, parentKey, name, JsonValueKind.Number, "an integer");
        return e.TryGetInt32(out var v) && v >= 0 ? v : throw Error(Join(parentKey, name), $"is {e.GetRawText()}; expected a non-negative 32-bit integer");
    }

    /// <summary>The member <paramref name="name"/>, or <c>null</c> when it is absent or JSON <c>null</c>.</summary>
    public static JsonElement? Optional(JsonElement parent, string name) =>
        parent.ValueKind == JsonValueKind.Object && parent.TryGetProperty(name, out var e) && e.ValueKind != JsonValueKind.Null ? e : null;

    public bool OptionalBool(JsonElement parent, string parentKey, string name, bool fallback)
    {
        if (Optional(parent, name) is not { } e) return fallback;
        return e.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error(Join(parentKey, name), $"is {e.ValueKind}; expected true or false"),
        };
    }

    public string? OptionalString(JsonElement parent, string parentKey, string name)
    {
        if (Optional(parent, name) is not { } e) return null;
        return e.ValueKind == JsonValueKind.String ? e.GetString() : throw Error(Join(parentKey, name), $"is {e.ValueKind}; expected a string");
    }

    public static string Join(string parentKey, string name) => parentKey.Length == 0 ? name : $"{parentKey}.{name}";

    JsonElement Require(JsonElement parent, string parentKey, string name, JsonValueKind kind, string expected)
    {
        var key = Join(parentKey, name);
        if (parent.ValueKind != JsonValueKind.Object || !parent.TryGetProperty(name, out var e))
            throw Error(key, $"is missing; expected {expected}");
        if (e.ValueKind != kind)
            throw Error(key, $"is {Describe(e)}; expected {expected}");
        return e;
    }

    static string Describe(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Null => "null",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => "a boolean",
    };
}
