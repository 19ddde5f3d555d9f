namespace Sharpen.Tasks;

/// <summary>
/// The outcome of parsing an untrusted arithmetic expression. When <see cref="Error"/> is set the text
/// is not a well-formed expression (<c>unparsable</c>, <c>too_deep</c>, or <c>overflow</c> for a
/// literal wider than 18 digits) and nothing else is meaningful. Otherwise <see cref="Literals"/>
/// lists the numbers in the order written, and either <see cref="Value"/> holds the exact value or
/// <see cref="EvaluationError"/> says why there is none (<c>division_by_zero</c>, <c>overflow</c>,
/// <c>non_integer</c>).
/// </summary>
internal sealed record ParsedExpression(string? Error, IReadOnlyList<long> Literals, Rational? Value, string? EvaluationError);

/// <summary>
/// Parses and evaluates <c>+ - * /</c> expressions over non-negative integer literals with
/// parentheses, in one pass with exact rational arithmetic. Safe on any input: recursion happens
/// only at parentheses and is cut at <see cref="MaxDepth"/>, and arithmetic is checked.
/// No unary minus, no decimals, ASCII digits only; spaces and tabs are ignored.
/// </summary>
internal sealed class ArithmeticExpression
{
    /// <summary>Deepest parenthesis nesting accepted.</summary>
    public const int MaxDepth = 32;

    /// <summary>Widest literal accepted; 18 digits always fit in a long.</summary>
    public const int MaxLiteralDigits = 18;

    readonly string _text;
    readonly bool _integerDivisionOnly;
    readonly List<long> _literals = [];
    int _pos;
    string? _evalError;

    ArithmeticExpression(string text, bool integerDivisionOnly)
    {
        _text = text;
        _integerDivisionOnly = integerDivisionOnly;
    }

    /// <param name="text">The expression.</param>
    /// <param name="integerDivisionOnly">When true, a division with a remainder is a <c>non_integer</c> error.</param>
    public static ParsedExpression Parse(string text, bool integerDivisionOnly = false)
    {
        var p = new ArithmeticExpression(text, integerDivisionOnly);
        try
        {
            var value = p.ParseSum(0);
            p.SkipSpace();
            if (p._pos != text.Length) throw new SyntaxError(VerdictReasons.Unparsable);
            return new ParsedExpression(null, p._literals, p._evalError is null ? value : null, p._evalError);
        }
        catch (SyntaxError e)
        {
            return new ParsedExpression(e.Reason, p._literals, null, null);
        }
    }

    Rational ParseSum(int depth)
    {
        var acc = ParseProduct(depth);
        while (true)
        {
            SkipSpace();
            if (_pos >= _text.Length) return acc;
            var op = _text[_pos];
            if (op is not ('+' or '-')) return acc;
            _pos++;
            var rhs = ParseProduct(depth);
            acc = Apply(op, acc, rhs);
        }
    }

    Rational ParseProduct(int depth)
    {
        var acc = ParseAtom(depth);
        while (true)
        {
            SkipSpace();
            if (_pos >= _text.Length) return acc;
            var op = _text[_pos];
            if (op is not ('*' or '/')) return acc;
            _pos++;
            var rhs = ParseAtom(depth);
            acc = Apply(op, acc, rhs);
        }
    }

    Rational ParseAtom(int depth)
    {
        SkipSpace();
        if (_pos >= _text.Length) throw new SyntaxError(VerdictReasons.Unparsable);
        var c = _text[_pos];
        if (c == '(')
        {
            if (depth + 1 > MaxDepth) throw new SyntaxError(VerdictReasons.TooDeep);
            _pos++;
            var inner = ParseSum(depth + 1);
            SkipSpace();
            if (_pos >= _text.Length || _text[_pos] != ')') throw new SyntaxError(VerdictReasons.Unparsable);
            _pos++;
            return inner;
        }
        if (!char.IsAsciiDigit(c)) throw new SyntaxError(VerdictReasons.Unparsable);
        var start = _pos;
        while (_pos < _text.Length && char.IsAsciiDigit(_text[_pos])) _pos++;
        var digits = _text.AsSpan(start, _pos - start).TrimStart('0');
        if (digits.Length > MaxLiteralDigits) throw new SyntaxError(VerdictReasons.Overflow);
        long value = 0;
        foreach (var d in digits) value = value * 10 + (d - '0');
        _literals.Add(value);
        return Rational.Of(value);
    }

    Rational Apply(char op, Rational a, Rational b)
    {
        if (_evalError is not null) return default;   // keep parsing for syntax and literals only
        try
        {
            switch (op)
            {
                case '+': return a + b;
                case '-': return a - b;
                case '*': return a * b;
                default:
                    var q = a / b;
                    if (_integerDivisionOnly && !q.IsInteger) _evalError = VerdictReasons.NonInteger;
                    return q;
            }
        }
        catch (DivideByZeroException) { _evalError = VerdictReasons.DivisionByZero; }
        catch (OverflowException) { _evalError = VerdictReasons.Overflow; }
        return default;
    }

    void SkipSpace()
    {
        while (_pos < _text.Length && _text[_pos] is ' ' or '\t') _pos++;
    }

    sealed class SyntaxError(string reason) : Exception(reason)
    {
        public string Reason { get; } = reason;
    }
}
