namespace Sharpen.Tokenizers.Jinja;

/// <summary>
/// A Jinja template parsed once and rendered many times, behaving like jinja2 3.x configured as Hugging Face
/// transformers configures it for chat templates: an immutable sandbox (no mutation of lists or dicts; only
/// <c>namespace()</c> objects take attribute assignment), <c>trim_blocks</c> and <c>lstrip_blocks</c>, loop controls
/// (<c>break</c>/<c>continue</c>), <c>{% generation %}</c> blocks, <c>tojson</c> without HTML escaping and without
/// escaping non-ASCII, and the globals <c>raise_exception</c>, <c>strftime_now</c>, <c>range</c>, <c>namespace</c>, <c>dict</c>.
/// </summary>
/// <remarks>
/// Templates are untrusted input: parsing bounds nesting depth, and rendering bounds output size, loop iterations and
/// macro recursion (<see cref="JinjaLimits"/>). Every error is a <see cref="JinjaTemplateException"/> naming the
/// template, line and column. Not supported (rejected with a clear error when met): template inheritance and includes
/// (<c>extends</c>, <c>block</c>, <c>include</c>, <c>import</c>), recursive loops, <c>%</c>-formatting beyond <c>%s</c>/<c>%d</c>.
/// </remarks>
public sealed class JinjaTemplate
{
    readonly List<Node> _body;

    JinjaTemplate(string name, List<Node> body)
    {
        Name = name;
        _body = body;
    }

    /// <summary>The name used in error messages (usually a file name).</summary>
    public string Name { get; }

    /// <summary>Parses <paramref name="source"/>.</summary>
    /// <param name="source">The template text.</param>
    /// <param name="name">Names the template in errors, e.g. <c>tokenizer_config.json:chat_template</c>.</param>
    /// <exception cref="JinjaTemplateException">The template has a syntax error.</exception>
    public static JinjaTemplate Parse(string source, string name = "template")
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(name);
        return new JinjaTemplate(name, JinjaParser.Parse(source, name));
    }

    /// <summary>Renders the template.</summary>
    /// <param name="variables">Template variables: <c>null</c>, <c>bool</c>, integers, floating point numbers, strings,
    /// lists (<see cref="System.Collections.IEnumerable"/>), dictionaries with string keys, or
    /// <see cref="System.Text.Json.JsonElement"/>s.</param>
    /// <param name="limits">Bounds on the work one render may do; null for <see cref="JinjaLimits.Default"/>.</param>
    /// <param name="now">The clock <c>strftime_now</c> reads; null for the local time.</param>
    /// <exception cref="JinjaTemplateException">Rendering failed (the message names template, line and column);
    /// <see cref="JinjaRaiseException"/> when the template called <c>raise_exception</c>.</exception>
    public string Render(IReadOnlyDictionary<string, object?> variables, JinjaLimits? limits = null, Func<DateTime>? now = null) =>
        Render(variables, out _, limits, now);

    /// <summary>Renders the template and reports the character spans of the output that <c>{% generation %}</c> blocks produced.</summary>
    /// <inheritdoc cref="Render(IReadOnlyDictionary{string, object?}, JinjaLimits?, Func{DateTime}?)"/>
    public string Render(IReadOnlyDictionary<string, object?> variables, out IReadOnlyList<(int Start, int End)> generationSpans,
        JinjaLimits? limits = null, Func<DateTime>? now = null)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var evaluator = new JinjaEvaluator(Name, limits ?? JinjaLimits.Default, now ?? (() => DateTime.Now));
        var text = evaluator.Run(_body, variables);
        generationSpans = evaluator.GenerationSpans;
        return text;
    }
}

/// <summary>Bounds on one render, so an untrusted template cannot run forever or exhaust memory.</summary>
public sealed record JinjaLimits
{
    /// <summary>Characters of output before rendering stops with an error. Default 16 M.</summary>
    public int MaxOutputChars { get; init; } = 16 << 20;
    /// <summary>Loop iterations over the whole render. Default 1 M.</summary>
    public long MaxLoopIterations { get; init; } = 1_000_000;
    /// <summary>Nested macro calls. Default 64.</summary>
    public int MaxCallDepth { get; init; } = 64;

    /// <summary>The defaults.</summary>
    public static JinjaLimits Default { get; } = new();
}

/// <summary>A template could not be parsed or rendered. The message reads <c>name:line:column: problem</c>.</summary>
public class JinjaTemplateException : FormatException
{
    /// <summary>Creates the exception.</summary>
    public JinjaTemplateException(string templateName, int line, int column, string problem)
        : base($"{templateName}:{line}:{column}: {problem}")
    {
        TemplateName = templateName;
        Line = line;
        Column = column;
        Problem = problem;
    }

    /// <summary>The template's name (usually its file).</summary>
    public string TemplateName { get; }
    /// <summary>1-based line of the failing construct.</summary>
    public int Line { get; }
    /// <summary>1-based column of the failing construct.</summary>
    public int Column { get; }
    /// <summary>What went wrong, without the position.</summary>
    public string Problem { get; }
}

/// <summary>The template called <c>raise_exception(message)</c>, as chat templates do for conversations they reject
/// (e.g. "Conversation roles must alternate user/assistant/user/assistant/...").</summary>
public sealed class JinjaRaiseException(string templateName, int line, int column, string raisedMessage)
    : JinjaTemplateException(templateName, line, column, "raise_exception: " + raisedMessage)
{
    /// <summary>The message the template passed to <c>raise_exception</c>.</summary>
    public string RaisedMessage { get; } = raisedMessage;
}
