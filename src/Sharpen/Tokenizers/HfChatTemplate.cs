using System.Text.Json;
using Sharpen.Tokenizers.Jinja;

namespace Sharpen.Tokenizers;

/// <summary>
/// A checkpoint's chat template (Jinja) rendered as Hugging Face transformers' <c>apply_chat_template</c> renders it:
/// the variables are <c>messages</c>, <c>tools</c> (None when absent), <c>documents</c> (None),
/// <c>add_generation_prompt</c>, and the special-token strings of <c>tokenizer_config.json</c> (<c>bos_token</c>,
/// <c>eos_token</c>, <c>unk_token</c>, <c>pad_token</c>, ...), plus any extra variables the caller passes
/// (e.g. <c>enable_thinking</c>, <c>date_string</c>).
/// </summary>
/// <remarks>
/// The template comes from <c>chat_template.jinja</c> when that file exists, else from <c>tokenizer_config.json</c>'s
/// <c>chat_template</c>: a string, or a list of <c>{"name", "template"}</c> of which the one named <c>default</c> is used.
/// Messages are JSON-like values: dictionaries with <c>role</c>, <c>content</c> (a string or a list of content parts),
/// and optionally <c>tool_calls</c>, <c>reasoning_content</c>, <c>name</c>, ...; or <see cref="JsonElement"/>s.
/// </remarks>
public sealed class HfChatTemplate
{
    /// <summary>The file transformers (≥ 4.47) writes the template to.</summary>
    public const string TemplateFileName = "chat_template.jinja";

    static readonly string[] SpecialTokenKeys = ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"];

    readonly JinjaTemplate _template;
    readonly Dictionary<string, object?> _specialTokens;

    HfChatTemplate(string source, string sourceName, Dictionary<string, object?> specialTokens)
    {
        Source = source;
        SourceName = sourceName;
        _template = JinjaTemplate.Parse(source, sourceName);
        _specialTokens = specialTokens;
    }

    /// <summary>The template text.</summary>
    public string Source { get; }

    /// <summary>Where the template came from, as named in errors (e.g. <c>.../tokenizer_config.json:chat_template</c>).</summary>
    public string SourceName { get; }

    /// <summary>The special-token variables passed to every render (<c>bos_token</c>, <c>eos_token</c>, ...).</summary>
    public IReadOnlyDictionary<string, object?> SpecialTokens => _specialTokens;

    /// <summary>The BOS token's text, when tokenizer_config.json names one.</summary>
    public string? BosToken => _specialTokens.GetValueOrDefault("bos_token") as string;

    /// <summary>The clock <c>strftime_now</c> reads (Llama 3.x templates print today's date); null for local time.</summary>
    public Func<DateTime>? Clock { get; private init; }

    /// <summary>Bounds on one render; null for <see cref="JinjaLimits.Default"/>.</summary>
    public JinjaLimits? Limits { get; private init; }

    /// <summary>A copy that reads <paramref name="clock"/> for <c>strftime_now</c> and renders within <paramref name="limits"/>
    /// (each left as it is when null).</summary>
    public HfChatTemplate With(Func<DateTime>? clock = null, JinjaLimits? limits = null) =>
        new(this) { Clock = clock ?? Clock, Limits = limits ?? Limits };

    HfChatTemplate(HfChatTemplate other)
    {
        Source = other.Source;
        SourceName = other.SourceName;
        _template = other._template;
        _specialTokens = other._specialTokens;
    }

    /// <summary>Builds a template from its text and the special-token strings.</summary>
    /// <param name="template">Jinja source.</param>
    /// <param name="specialTokens">Variables such as <c>bos_token</c> → <c>"&lt;s&gt;"</c>.</param>
    /// <param name="sourceName">Names the template in errors.</param>
    /// <exception cref="JinjaTemplateException">The template does not parse.</exception>
    public static HfChatTemplate Create(string template, IReadOnlyDictionary<string, string>? specialTokens = null, string sourceName = "chat_template")
    {
        ArgumentNullException.ThrowIfNull(template);
        var tokens = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (specialTokens is not null) foreach (var (k, v) in specialTokens) tokens[k] = v;
        return new HfChatTemplate(template, sourceName, tokens);
    }

    /// <summary>
    /// The chat template of the checkpoint in <paramref name="directory"/>, or null when it has none (no
    /// <c>chat_template.jinja</c>, and no <c>chat_template</c> in <c>tokenizer_config.json</c>).
    /// </summary>
    /// <exception cref="TokenizerFileException">tokenizer_config.json is malformed or its chat_template has the wrong shape.</exception>
    /// <exception cref="JinjaTemplateException">The template does not parse.</exception>
    public static HfChatTemplate? TryLoad(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var configPath = Path.Combine(directory, HfTokenizer.ConfigFileName);
        var configJson = File.Exists(configPath) ? File.ReadAllText(configPath) : null;
        var jinjaPath = Path.Combine(directory, TemplateFileName);
        var jinja = File.Exists(jinjaPath) ? File.ReadAllText(jinjaPath) : null;
        return FromFiles(configJson, configPath, jinja, jinjaPath);
    }

    /// <summary>As <see cref="TryLoad"/>, from file contents.</summary>
    /// <param name="configJson">tokenizer_config.json's text, or null.</param>
    /// <param name="configPath">Names that file in errors.</param>
    /// <param name="jinja">chat_template.jinja's text, or null (it wins over the config's template when present).</param>
    /// <param name="jinjaPath">Names that file in errors.</param>
    public static HfChatTemplate? FromFiles(string? configJson, string configPath = HfTokenizer.ConfigFileName,
        string? jinja = null, string jinjaPath = TemplateFileName)
    {
        var tokens = new Dictionary<string, object?>(StringComparer.Ordinal);
        string? template = jinja;
        var sourceName = jinjaPath;
        if (configJson is not null)
        {
            var file = new JsonFile(configPath);
            using var doc = file.Parse(configJson);
            var cfg = doc.RootElement;
            if (cfg.ValueKind != JsonValueKind.Object) throw file.Error("(root)", "expected a JSON object");
            foreach (var key in SpecialTokenKeys)
                if (JsonFile.Optional(cfg, key) is { } e) tokens[key] = TokenText(file, e, key);
            if (JsonFile.Optional(cfg, "additional_special_tokens") is { ValueKind: JsonValueKind.Array } extra)
                tokens["additional_special_tokens"] = extra.EnumerateArray().Select((e, i) => (object?)TokenText(file, e, $"additional_special_tokens[{i}]")).ToList();
            if (template is null && JsonFile.Optional(cfg, "chat_template") is { } t)
            {
                sourceName = configPath + ":chat_template";
                template = t.ValueKind switch
                {
                    JsonValueKind.String => t.GetString()!,
                    JsonValueKind.Array => NamedTemplate(file, t),
                    _ => throw file.Error("chat_template", $"is {t.ValueKind}; expected a string or a list of {{\"name\", \"template\"}}"),
                };
            }
        }
        return template is null ? null : new HfChatTemplate(template, sourceName, tokens);
    }

    static string NamedTemplate(JsonFile file, JsonElement list)
    {
        var names = new List<string>();
        var i = 0;
        foreach (var item in list.EnumerateArray())
        {
            var key = $"chat_template[{i++}]";
            var name = file.RequireString(item, key, "name");
            names.Add(name);
            if (name == "default") return file.RequireString(item, key, "template");
        }
        throw file.Error("chat_template", $"lists templates named {string.Join(", ", names.Select(n => $"'{n}'"))} but none named 'default'");
    }

    static string TokenText(JsonFile file, JsonElement e, string key) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString()!,
        JsonValueKind.Object => file.RequireString(e, key, "content"),
        _ => throw file.Error(key, $"is {e.ValueKind}; expected a token string or an object with \"content\""),
    };

    /// <summary>Renders a conversation.</summary>
    /// <param name="messages">The messages (dictionaries or <see cref="JsonElement"/>s).</param>
    /// <param name="addGenerationPrompt">End with the assistant header, so a completion follows.</param>
    /// <param name="tools">Tool schemas (JSON-like), or null.</param>
    /// <param name="extra">Further template variables, e.g. <c>enable_thinking</c>.</param>
    /// <exception cref="JinjaTemplateException">Rendering failed; <see cref="JinjaRaiseException"/> when the template rejected the conversation.</exception>
    public string Render(IReadOnlyList<object?> messages, bool addGenerationPrompt, IReadOnlyList<object?>? tools = null,
        IReadOnlyDictionary<string, object?>? extra = null) => Render(messages, addGenerationPrompt, out _, tools, extra);

    /// <summary>Renders a conversation and reports the spans of the text inside <c>{% generation %}</c> blocks
    /// (the assistant turns, in templates that mark them).</summary>
    /// <inheritdoc cref="Render(IReadOnlyList{object?}, bool, IReadOnlyList{object?}?, IReadOnlyDictionary{string, object?}?)"/>
    public string Render(IReadOnlyList<object?> messages, bool addGenerationPrompt, out IReadOnlyList<(int Start, int End)> generationSpans,
        IReadOnlyList<object?>? tools = null, IReadOnlyDictionary<string, object?>? extra = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var vars = new Dictionary<string, object?>(_specialTokens, StringComparer.Ordinal)
        {
            ["messages"] = messages,
            ["tools"] = tools,
            ["documents"] = null,
            ["add_generation_prompt"] = addGenerationPrompt,
        };
        if (extra is not null) foreach (var (k, v) in extra) vars[k] = v;
        return _template.Render(vars, out generationSpans, Limits, Clock);
    }

    /// <summary>Whether the template marks assistant text with <c>{% generation %}</c> (needed by TRL's
    /// <c>assistant_only_loss</c> in transformers; Sharpen can also mask without it, see <see cref="AssistantSpans"/>).</summary>
    public bool HasGenerationMarkers => Source.Contains("generation", StringComparison.Ordinal)
                                        && System.Text.RegularExpressions.Regex.IsMatch(Source, @"\{%-?\s*generation\s*-?%\}");

    /// <summary>
    /// The character spans of <paramref name="rendered"/> (the full conversation, rendered without a generation prompt)
    /// that the assistant wrote: from <c>{% generation %}</c> blocks when the template has them, otherwise by rendering
    /// prefixes. For each assistant message i, the text between <c>render(messages[..i], add_generation_prompt=true)</c>
    /// and <c>render(messages[..i+1])</c> is its span. This is what a model must learn to produce after the assistant
    /// header, including the end-of-turn token. A prefix that does not match (templates that rewrite history, such as
    /// Qwen3 dropping earlier reasoning) is an error naming the message.
    /// </summary>
    /// <exception cref="InvalidOperationException">The template renders a prefix that is not a prefix of the whole.</exception>
    public IReadOnlyList<(int Start, int End)> AssistantSpans(IReadOnlyList<object?> messages, string rendered,
        IReadOnlyList<object?>? tools = null, IReadOnlyDictionary<string, object?>? extra = null)
    {
        if (HasGenerationMarkers)
        {
            var full = Render(messages, false, out var spans, tools, extra);
            if (full != rendered) throw new InvalidOperationException("the rendered text does not match this template's rendering of the messages");
            return spans;
        }
        var result = new List<(int, int)>();
        for (var i = 0; i < messages.Count; i++)
        {
            if (Role(messages[i]) != "assistant") continue;
            var before = Render(messages.Take(i).ToList(), true, tools, extra);
            var through = Render(messages.Take(i + 1).ToList(), false, tools, extra);
            if (!rendered.StartsWith(before, StringComparison.Ordinal) || !rendered.StartsWith(through, StringComparison.Ordinal) || through.Length < before.Length
                || !through.StartsWith(before, StringComparison.Ordinal))
                throw new InvalidOperationException(
                    $"{SourceName}: rendering messages[0..{i}] is not a prefix of the whole conversation, so assistant message {i} cannot be located " +
                    "(the template rewrites earlier turns); train on the last assistant turn only, or on the whole text");
            result.Add((before.Length, through.Length));
        }
        return result;
    }

    static string? Role(object? message) => message switch
    {
        JsonElement { ValueKind: JsonValueKind.Object } e when e.TryGetProperty("role", out var r) => r.GetString(),
        IReadOnlyDictionary<string, object?> d => d.GetValueOrDefault("role") as string,
        IDictionary<string, object?> d => d.TryGetValue("role", out var r) ? r as string : null,
        _ => null,
    };
}
