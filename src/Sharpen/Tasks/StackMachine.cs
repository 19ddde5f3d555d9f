namespace Sharpen.Tasks;

/// <summary>
/// A tiny postfix stack language that Sharpen interprets itself, for program-synthesis tasks whose programs come from a
/// model: nothing of the host is reachable (no I/O, no calls, no reflection), and every run is bounded by
/// <see cref="StackLimits"/> in steps, stack depth and value size. Words are separated by spaces, tabs or newlines:
/// non-negative integer literals, <c>x</c> (the input), <c>+ - * / %</c>, <c>dup swap drop over</c>, and
/// <c>[ ... ]</c> blocks that pop a count n and run n times. A run succeeds when exactly one value is left.
/// Parsing and running never throw on program text; they report an error code instead.
/// </summary>
public static class StackMachine
{
    /// <summary>The text is not a program (unknown word, unmatched bracket, too long, too deep).</summary>
    public const string ParseError = "parse_error";
    /// <summary>An operation found fewer values on the stack than it needs.</summary>
    public const string StackUnderflow = "stack_underflow";
    /// <summary>The stack grew past <see cref="StackLimits.MaxStack"/> (the memory limit).</summary>
    public const string StackOverflow = "stack_overflow";
    /// <summary>The run took more than <see cref="StackLimits.MaxSteps"/> steps.</summary>
    public const string StepLimit = "step_limit";
    /// <summary>A result's magnitude passed <see cref="StackLimits.MaxValue"/>.</summary>
    public const string Overflow = "overflow";
    /// <summary><c>/</c> or <c>%</c> by zero.</summary>
    public const string DivisionByZero = "division_by_zero";
    /// <summary>A block's count was negative.</summary>
    public const string NegativeCount = "negative_count";
    /// <summary>The run ended with other than exactly one value on the stack.</summary>
    public const string BadEnd = "bad_end";

    /// <summary>Parses <paramref name="source"/>; false with a message naming the word and its position on bad text.</summary>
    public static bool TryParse(string source, StackLimits limits, out StackInstruction[] program, out string error)
    {
        program = [];
        error = "";
        var words = source.Split([' ', '\t', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0) { error = "empty program"; return false; }
        if (words.Length > limits.MaxWords) { error = $"{words.Length} words, more than the limit of {limits.MaxWords}"; return false; }
        var parsed = new StackInstruction[words.Length];
        var open = new Stack<int>();
        for (var i = 0; i < words.Length; i++)
        {
            var w = words[i];
            StackOp op;
            long value = 0;
            switch (w)
            {
                case "x": op = StackOp.Input; break;
                case "+": op = StackOp.Add; break;
                case "-": op = StackOp.Sub; break;
                case "*": op = StackOp.Mul; break;
                case "/": op = StackOp.Div; break;
                case "%": op = StackOp.Mod; break;
                case "dup": op = StackOp.Dup; break;
                case "swap": op = StackOp.Swap; break;
                case "drop": op = StackOp.Drop; break;
                case "over": op = StackOp.Over; break;
                case "[":
                    if (open.Count >= limits.MaxNesting) { error = $"word {i + 1}: blocks nested deeper than {limits.MaxNesting}"; return false; }
                    open.Push(i);
                    op = StackOp.LoopStart;
                    break;
                case "]":
                    if (open.Count == 0) { error = $"word {i + 1}: ']' without '['"; return false; }
                    var start = open.Pop();
                    parsed[start] = new StackInstruction(StackOp.LoopStart, i);
                    op = StackOp.LoopEnd;
                    value = start;
                    break;
                default:
                    if (!IsLiteral(w, limits.MaxValue, out value)) { error = $"word {i + 1}: unknown word '{Clip(w)}'"; return false; }
                    op = StackOp.Push;
                    break;
            }
            parsed[i] = new StackInstruction(op, op == StackOp.LoopStart ? -1 : value);
        }
        if (open.Count > 0) { error = $"word {open.Peek() + 1}: '[' without ']'"; return false; }
        program = parsed;
        return true;
    }

    /// <summary>Runs <paramref name="program"/> on <paramref name="input"/> under <paramref name="limits"/>.</summary>
    public static StackRun Run(ReadOnlySpan<StackInstruction> program, long input, StackLimits limits)
    {
        var stack = new long[limits.MaxStack];
        var depth = 0;
        var loops = new (int Start, long Left)[limits.MaxNesting];
        var loopDepth = 0;
        var steps = 0;
        var pc = 0;
        while (pc < program.Length)
        {
            if (++steps > limits.MaxSteps) return Fail(StepLimit, steps - 1, $"more than {limits.MaxSteps} steps");
            var ins = program[pc];
            switch (ins.Op)
            {
                case StackOp.Push:
                case StackOp.Input:
                    if (depth == limits.MaxStack) return Fail(StackOverflow, steps, $"more than {limits.MaxStack} values on the stack");
                    stack[depth++] = ins.Op == StackOp.Push ? ins.Value : input;
                    break;
                case StackOp.Add or StackOp.Sub or StackOp.Mul or StackOp.Div or StackOp.Mod:
                {
                    if (depth < 2) return Fail(StackUnderflow, steps, $"'{Word(ins.Op)}' at word {pc + 1} needs two values");
                    long a = stack[depth - 2], b = stack[depth - 1];
                    if (ins.Op is StackOp.Div or StackOp.Mod && b == 0) return Fail(DivisionByZero, steps, $"'{Word(ins.Op)}' by zero at word {pc + 1}");
                    // |a|, |b| ≤ MaxValue ≤ 2^62 would overflow a product; Int128 holds every case.
                    Int128 r = ins.Op switch
                    {
                        StackOp.Add => (Int128)a + b,
                        StackOp.Sub => (Int128)a - b,
                        StackOp.Mul => (Int128)a * b,
                        StackOp.Div => a / b,
                        _ => a % b,
                    };
                    if (r > limits.MaxValue || r < -limits.MaxValue) return Fail(Overflow, steps, $"'{Word(ins.Op)}' at word {pc + 1} gives a value beyond ±{limits.MaxValue}");
                    depth--;
                    stack[depth - 1] = (long)r;
                    break;
                }
                case StackOp.Dup or StackOp.Drop:
                    if (depth < 1) return Fail(StackUnderflow, steps, $"'{Word(ins.Op)}' at word {pc + 1} needs a value");
                    if (ins.Op == StackOp.Drop) { depth--; break; }
                    if (depth == limits.MaxStack) return Fail(StackOverflow, steps, $"more than {limits.MaxStack} values on the stack");
                    stack[depth] = stack[depth - 1];
                    depth++;
                    break;
                case StackOp.Swap or StackOp.Over:
                    if (depth < 2) return Fail(StackUnderflow, steps, $"'{Word(ins.Op)}' at word {pc + 1} needs two values");
                    if (ins.Op == StackOp.Swap) { (stack[depth - 2], stack[depth - 1]) = (stack[depth - 1], stack[depth - 2]); break; }
                    if (depth == limits.MaxStack) return Fail(StackOverflow, steps, $"more than {limits.MaxStack} values on the stack");
                    stack[depth] = stack[depth - 2];
                    depth++;
                    break;
                case StackOp.LoopStart:
                {
                    if (depth < 1) return Fail(StackUnderflow, steps, $"'[' at word {pc + 1} needs a count");
                    var n = stack[--depth];
                    if (n < 0) return Fail(NegativeCount, steps, $"'[' at word {pc + 1} got the count {n}");
                    if (n == 0) { pc = (int)ins.Value + 1; continue; }
                    loops[loopDepth++] = (pc + 1, n);
                    break;
                }
                case StackOp.LoopEnd:
                {
                    ref var frame = ref loops[loopDepth - 1];
                    if (--frame.Left > 0) { pc = frame.Start; continue; }
                    loopDepth--;
                    break;
                }
            }
            pc++;
        }
        return depth == 1
            ? new StackRun(true, stack[0], steps, null, null)
            : Fail(BadEnd, steps, $"the program ends with {depth} values on the stack, not one");
    }

    /// <summary>Parses and runs; a parse failure is a run with <see cref="ParseError"/> and 0 steps.</summary>
    public static StackRun Run(string source, long input, StackLimits limits) =>
        TryParse(source, limits, out var program, out var error)
            ? Run(program, input, limits)
            : new StackRun(false, 0, 0, ParseError, error);

    /// <summary>The program's words joined by single spaces (the canonical text of a parsed program).</summary>
    public static string Normalize(string source) =>
        string.Join(' ', source.Split([' ', '\t', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries));

    static StackRun Fail(string code, int steps, string message) => new(false, 0, steps, code, message);

    static bool IsLiteral(string w, long maxValue, out long value)
    {
        value = 0;
        if (w.Length > 19) return false;
        foreach (var c in w)
        {
            if (!char.IsAsciiDigit(c)) return false;
            value = value * 10 + (c - '0');
            if (value > maxValue) return false;
        }
        return true;
    }

    static string Word(StackOp op) => op switch
    {
        StackOp.Add => "+", StackOp.Sub => "-", StackOp.Mul => "*", StackOp.Div => "/", StackOp.Mod => "%",
        StackOp.Dup => "dup", StackOp.Swap => "swap", StackOp.Drop => "drop", StackOp.Over => "over",
        _ => op.ToString(),
    };

    static string Clip(string w) => w.Length <= 16 ? w : w[..16] + "…";
}
