using System.Text.Json;
using Sharpen.Data;
using Sharpen.Tasks;

namespace Sharpen.Environments;

/// <summary>
/// Countdown with a calculator tool: the problem of <see cref="CountdownTask"/> for the seed; each turn the policy either
/// calls the calculator (see <see cref="ToolCall"/> for the format) and gets its result as a <c>tool</c> message, or
/// answers with <c>answer: EXPRESSION</c>, which <see cref="CountdownTask.Verify"/> scores and ends the episode.
/// <code>
/// 3 5 7 -> 22:                                                           (first observation)
/// &lt;tool_call&gt;{"name": "calc", "arguments": {"expression": "5*3+7"}}&lt;/tool_call&gt;  → tool: 22
/// answer: 5*3+7                                                          → correct (reward 1, done)
/// </code>
/// A malformed call or an unknown tool gets a <c>tool</c> message starting <c>error:</c> (as verl's tool agents return
/// tool errors as the tool's response); text that is neither a call nor an answer gets <c>invalid</c>. Each costs a turn.
/// Info: <c>outcome</c>, <c>valid</c>, <c>tool_calls</c> (so far), and <c>reason</c> (the verdict) at the answer.
/// </summary>
public sealed class CountdownToolEnvironment : TextEnvironment
{
    /// <summary>The calculator's name.</summary>
    public const string Calculator = "calc";

    // Every text after "error: " that the calculator can answer (the alphabet must cover them).
    static readonly string[] ErrorTexts =
    [
        "no tool call", "unclosed tool call", "tool call is not json", "tool call is not an object", "tool call has no name",
        "tool arguments are not an object", "unknown tool", "expression missing", "too long",
        VerdictReasons.Unparsable, "too_deep", "overflow", "division_by_zero", "non_integer",
    ];

    readonly CountdownTask _task;
    Problem? _problem;
    int _toolCalls;

    /// <summary>A game with <paramref name="options"/>.</summary>
    public CountdownToolEnvironment(CountdownToolOptions? options = null)
    {
        Options = options ?? new CountdownToolOptions();
        Options.Validate();
        _task = new CountdownTask(Options.Task);
        Alphabet = AlphabetOf(CountdownTask.Characters, "<tool_call>{\"name\": \"calc\", \"arguments\": {\"expression\": \"\"}}</tool_call>",
            "invalid lost correct wrong", string.Concat(ErrorTexts));
    }

    /// <summary>The options.</summary>
    public CountdownToolOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "countdown-tool";

    /// <inheritdoc />
    public override string Alphabet { get; }

    /// <summary>The current problem.</summary>
    public Problem? Problem => _problem;

    /// <inheritdoc />
    protected override IReadOnlyList<ChatMessage> OnReset(int seed)
    {
        _problem = _task.Generate(1, seed)[0];
        _toolCalls = 0;
        return User(_problem.Prompt);
    }

    /// <inheritdoc />
    protected override EnvironmentStep OnStep(string action)
    {
        bool last = Turns >= Options.MaxTurns;
        if (ToolCall.Mentions(action))
        {
            _toolCalls++;
            var result = Calculate(action);
            bool valid = !result.StartsWith("error:", StringComparison.Ordinal);
            if (last) return Answer("lost", 0, true, ("outcome", "lost"), ("valid", valid ? "true" : "false"), ("tool_calls", _toolCalls.ToString()));
            return new EnvironmentStep([new ChatMessage("tool", result)], 0, false,
                new Dictionary<string, string> { ["outcome"] = "playing", ["valid"] = valid ? "true" : "false", ["tool_calls"] = _toolCalls.ToString() });
        }
        if (action.Contains(AnswerText.Marker, StringComparison.OrdinalIgnoreCase))
        {
            var v = _task.Verify(_problem!, action);
            return Answer(v.Correct ? "correct" : "wrong", v.Reward, true, ("outcome", v.Correct ? "won" : "lost"), ("valid", "true"),
                ("tool_calls", _toolCalls.ToString()), ("reason", v.Reason));
        }
        if (last) return Answer("lost", 0, true, ("outcome", "lost"), ("valid", "false"), ("tool_calls", _toolCalls.ToString()));
        return Answer("invalid", 0, false, ("outcome", "playing"), ("valid", "false"), ("tool_calls", _toolCalls.ToString()));
    }

    /// <summary>The calculator's answer to the call in <paramref name="action"/>: the exact value (e.g. <c>22</c>,
    /// <c>7/2</c>) or <c>error: ...</c>.</summary>
    public static string Calculate(string action)
    {
        if (!ToolCall.TryParse(action, out var call, out var error)) return "error: " + error;
        if (call!.Name != Calculator) return "error: unknown tool";
        if (call.Arguments["expression"] is not System.Text.Json.Nodes.JsonValue e || e.GetValueKind() != JsonValueKind.String)
            return "error: expression missing";
        var text = e.GetValue<string>();
        if (text.Length > 200) return "error: too long";
        var parsed = ArithmeticExpression.Parse(text);
        if (parsed.Error is not null) return "error: " + parsed.Error;
        if (parsed.EvaluationError is not null) return "error: " + parsed.EvaluationError;
        return parsed.Value!.Value.ToString();
    }
}
