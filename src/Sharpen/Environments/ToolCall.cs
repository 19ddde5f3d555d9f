using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sharpen.Environments;

/// <summary>
/// A tool call in the Hermes/Qwen format that TRL and verl parse: a JSON object with <c>name</c> and <c>arguments</c>
/// between <c>&lt;tool_call&gt;</c> and <c>&lt;/tool_call&gt;</c> (whitespace and newlines inside are allowed):
/// <code>
/// &lt;tool_call&gt;{"name": "calc", "arguments": {"expression": "5*3+7"}}&lt;/tool_call&gt;
/// </code>
/// <c>arguments</c> may also be a JSON string holding the object (as OpenAI's <c>function.arguments</c> is). The
/// tool's answer comes back as a message with role <c>tool</c>; chat templates that have one wrap it in their own
/// markup (Qwen's <c>&lt;tool_response&gt;</c>).
/// </summary>
/// <param name="Name">The tool's name.</param>
/// <param name="Arguments">Its arguments.</param>
public sealed record ToolCall(string Name, JsonObject Arguments)
{
    /// <summary>The opening tag.</summary>
    public const string Open = "<tool_call>";
    /// <summary>The closing tag.</summary>
    public const string Close = "</tool_call>";

    /// <summary>True when <paramref name="text"/> contains an opening tag (the policy meant to call a tool).</summary>
    public static bool Mentions(string text) => text.Contains(Open, StringComparison.Ordinal);

    /// <summary>Reads the first tool call of <paramref name="text"/>. Returns false with a short reason (for the
    /// policy to read) when there is none or it is malformed; never throws.</summary>
    public static bool TryParse(string text, out ToolCall? call, out string error)
    {
        call = null;
        int start = text.IndexOf(Open, StringComparison.Ordinal);
        if (start < 0) { error = "no tool call"; return false; }
        start += Open.Length;
        int end = text.IndexOf(Close, start, StringComparison.Ordinal);
        if (end < 0) { error = "unclosed tool call"; return false; }
        var json = text[start..end];
        JsonNode? node;
        try { node = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = 16 }); }
        catch (JsonException) { error = "tool call is not json"; return false; }
        if (node is not JsonObject o) { error = "tool call is not an object"; return false; }
        if (o["name"] is not JsonValue nv || nv.GetValueKind() != JsonValueKind.String) { error = "tool call has no name"; return false; }
        JsonObject args;
        switch (o["arguments"])
        {
            case null: args = []; break;
            case JsonObject a: args = a; break;
            case JsonValue s when s.GetValueKind() == JsonValueKind.String:
                try
                {
                    if (JsonNode.Parse(s.GetValue<string>()) is JsonObject parsed) { args = parsed; break; }
                }
                catch (JsonException) { }
                error = "tool arguments are not an object";
                return false;
            default: error = "tool arguments are not an object"; return false;
        }
        call = new ToolCall(nv.GetValue<string>(), (JsonObject)args.DeepClone());
        error = "";
        return true;
    }

    /// <summary>The call as the policy writes it (one line).</summary>
    public override string ToString() =>
        Open + new JsonObject { ["name"] = Name, ["arguments"] = Arguments.DeepClone() }.ToJsonString(new JsonSerializerOptions { WriteIndented = false }) + Close;
}
