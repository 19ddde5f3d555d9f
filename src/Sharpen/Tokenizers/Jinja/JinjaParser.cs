using System.Globalization;

namespace Sharpen.Tokenizers.Jinja;

/// <summary>
/// Recursive-descent parser for the jinja2 subset chat templates use, with jinja2's operator precedence
/// (lowest first): inline <c>if</c>, <c>or</c>, <c>and</c>, <c>not</c>, comparisons and <c>in</c>, <c>+ -</c>, <c>~</c>,
/// <c>* / // %</c>, <c>**</c>, unary <c>- +</c>, then primaries with their <c>.attr</c>, <c>[index]</c>, calls,
/// <c>| filters</c> and <c>is tests</c>.
/// </summary>
internal sealed class JinjaParser
{
    /// <summary>Deepest nesting of blocks and expressions accepted, so a hostile template cannot overflow the stack.</summary>
    public const int MaxDepth = 200;

    readonly List<JinjaToken> _t;
    readonly string _name;
    int _i;
    int _depth;

    JinjaParser(List<JinjaToken> tokens, string name)
    {
        _t = tokens;
        _name = name;
    }

    public static List<Node> Parse(string source, string name)
    {
        var p = new JinjaParser(JinjaLexer.Tokenize(source, name), name);
        var body = p.ParseBody(out var end);
        if (end is not null) throw p.Error(p._t[p._i - 2], $"unexpected '{{% {end} %}}' with no block open");
        return body;
    }

    JinjaToken Cur => _t[_i];
    JinjaToken Peek(int k = 1) => _t[Math.Min(_i + k, _t.Count - 1)];
    JinjaToken Next() => _t[_i++];

    JinjaTemplateException Error(JinjaToken at, string message) => new(_name, at.Line, at.Column, message);

    JinjaToken Expect(TokenKind kind, string? value, string what)
    {
        var t = Cur;
        if (t.Kind != kind || (value is not null && t.Value != value)) throw Error(t, $"expected {what}, found {t}");
        _i++;
        return t;
    }

    void ExpectOp(string op) => Expect(TokenKind.Operator, op, $"'{op}'");
    void ExpectBlockEnd() => Expect(TokenKind.BlockEnd, null, "'%}'");

    string ExpectName(string what) => Expect(TokenKind.Name, null, what).Value;

    void Enter(JinjaToken at)
    {
        if (++_depth > MaxDepth) throw Error(at, $"the template nests deeper than {MaxDepth} levels");
    }

    // ------------------------------------------------------------------ statements

    /// <summary>Parses nodes until end of input or a block tag this level does not own; returns that tag's name in <paramref name="end"/>.</summary>
    List<Node> ParseBody(out string? end, params string[] endTags)
    {
        Enter(Cur);
        var nodes = new List<Node>();
        end = null;
        while (Cur.Kind != TokenKind.Eof)
        {
            var t = Next();
            switch (t.Kind)
            {
                case TokenKind.Text:
                    nodes.Add(new TextNode(t.Value, t.Line, t.Column));
                    break;
                case TokenKind.VarBegin:
                    var e = ParseTuple(withCondExpr: true);
                    Expect(TokenKind.VarEnd, null, "'}}'");
                    nodes.Add(new OutputNode(e, t.Line, t.Column));
                    break;
                case TokenKind.BlockBegin:
                    var tag = Cur;
                    if (tag.Kind != TokenKind.Name) throw Error(tag, $"expected a tag name after '{{%', found {tag}");
                    if (endTags.Contains(tag.Value) || tag.Value.StartsWith("end", StringComparison.Ordinal) || tag.Value is "elif" or "else")
                    {
                        _i++;
                        end = tag.Value;
                        if (!endTags.Contains(tag.Value))
                            throw Error(tag, endTags.Length == 0
                                ? $"unexpected '{tag.Value}' with no block open"
                                : $"unexpected '{tag.Value}'; expected {string.Join(" or ", endTags.Select(x => $"'{x}'"))}");
                        _depth--;
                        return nodes;
                    }
                    nodes.Add(ParseStatement(t));
                    break;
                default:
                    throw Error(t, $"unexpected {t}");
            }
        }
        if (endTags.Length > 0) throw Error(Cur, $"the template ended inside a block; expected {string.Join(" or ", endTags.Select(x => $"'{{% {x} %}}'"))}");
        _depth--;
        return nodes;
    }

    Node ParseStatement(JinjaToken begin)
    {
        var tag = Next();
        switch (tag.Value)
        {
            case "if": return ParseIf(tag);
            case "for": return ParseFor(tag);
            case "set": return ParseSet(tag);
            case "macro": return ParseMacro(tag);
            case "call":
            {
                var call = ParseExpression();
                ExpectBlockEnd();
                var body = ParseBody(out _, "endcall");
                ExpectBlockEnd();
                return new CallBlockNode(call, body, tag.Line, tag.Column);
            }
            case "filter":
            {
                var name = ExpectName("a filter name");
                var args = new List<Expr>();
                if (Cur.IsOp("(")) ParseCallArgs(args, []);
                ExpectBlockEnd();
                var body = ParseBody(out _, "endfilter");
                ExpectBlockEnd();
                return new FilterBlockNode(name, args, body, tag.Line, tag.Column);
            }
            case "generation":
            {
                ExpectBlockEnd();
                var body = ParseBody(out _, "endgeneration");
                ExpectBlockEnd();
                return new GenerationNode(body, tag.Line, tag.Column);
            }
            case "break":
                ExpectBlockEnd();
                return new BreakNode(tag.Line, tag.Column);
            case "continue":
                ExpectBlockEnd();
                return new ContinueNode(tag.Line, tag.Column);
            default:
                throw Error(tag, $"unknown tag '{tag.Value}' (supported: if, for, set, macro, call, filter, generation, break, continue, raw)");
        }
    }

    Node ParseIf(JinjaToken tag)
    {
        var branches = new List<(Expr, List<Node>)>();
        List<Node>? elseBody = null;
        var test = ParseTuple(withCondExpr: false);
        while (true)
        {
            ExpectBlockEnd();
            var body = ParseBody(out var end, "elif", "else", "endif");
            branches.Add((test, body));
            if (end == "elif") { test = ParseTuple(withCondExpr: false); continue; }
            if (end == "else")
            {
                ExpectBlockEnd();
                elseBody = ParseBody(out _, "endif");
            }
            ExpectBlockEnd();
            return new IfNode(branches, elseBody, tag.Line, tag.Column);
        }
    }

    Node ParseFor(JinjaToken tag)
    {
        var targets = new List<string> { ExpectName("a loop variable name") };
        while (Cur.IsOp(","))
        {
            _i++;
            targets.Add(ExpectName("a loop variable name"));
        }
        Expect(TokenKind.Name, "in", "'in'");
        var iterable = ParseTuple(withCondExpr: false);
        Expr? filter = null;
        if (Cur.IsName("if"))
        {
            _i++;
            filter = ParseExpression();
        }
        if (Cur.IsName("recursive")) throw Error(Cur, "recursive for loops are not supported");
        ExpectBlockEnd();
        var body = ParseBody(out var end, "else", "endfor");
        List<Node>? elseBody = null;
        if (end == "else")
        {
            ExpectBlockEnd();
            elseBody = ParseBody(out _, "endfor");
        }
        ExpectBlockEnd();
        return new ForNode(targets, iterable, filter, body, elseBody, tag.Line, tag.Column);
    }

    Node ParseSet(JinjaToken tag)
    {
        var first = ExpectName("a variable name");
        if (Cur.IsOp("."))
        {
            _i++;
            var attr = ExpectName("an attribute name");
            ExpectOp("=");
            var v = ParseTuple(withCondExpr: true);
            ExpectBlockEnd();
            return new SetNode([first], attr, v, tag.Line, tag.Column);
        }
        var targets = new List<string> { first };
        while (Cur.IsOp(","))
        {
            _i++;
            targets.Add(ExpectName("a variable name"));
        }
        if (Cur.Kind == TokenKind.BlockEnd && targets.Count == 1)
        {
            _i++;
            var body = ParseBody(out _, "endset");
            ExpectBlockEnd();
            return new SetBlockNode(first, body, tag.Line, tag.Column);
        }
        ExpectOp("=");
        var value = ParseTuple(withCondExpr: true);
        ExpectBlockEnd();
        return new SetNode(targets, null, value, tag.Line, tag.Column);
    }

    Node ParseMacro(JinjaToken tag)
    {
        var name = ExpectName("a macro name");
        ExpectOp("(");
        var parameters = new List<(string, Expr?)>();
        while (!Cur.IsOp(")"))
        {
            if (parameters.Count > 0) ExpectOp(",");
            if (Cur.IsOp(")")) break;
            var p = ExpectName("a parameter name");
            Expr? def = null;
            if (Cur.IsOp("="))
            {
                _i++;
                def = ParseExpression();
            }
            parameters.Add((p, def));
        }
        _i++;
        ExpectBlockEnd();
        var body = ParseBody(out _, "endmacro");
        if (Cur.Kind == TokenKind.Name && Cur.Value == name) _i++;
        ExpectBlockEnd();
        return new MacroNode(name, parameters, body, tag.Line, tag.Column);
    }

    // ------------------------------------------------------------------ expressions

    /// <summary>An expression, or several separated by commas (a tuple without parentheses).</summary>
    Expr ParseTuple(bool withCondExpr)
    {
        var start = Cur;
        var first = withCondExpr ? ParseExpression() : ParseOr();
        if (!Cur.IsOp(",")) return first;
        var items = new List<Expr> { first };
        while (Cur.IsOp(","))
        {
            _i++;
            if (Cur.Kind is TokenKind.BlockEnd or TokenKind.VarEnd || Cur.IsName("if") || Cur.IsOp(")")) break;
            items.Add(withCondExpr ? ParseExpression() : ParseOr());
        }
        return new ListExpr(items, IsTuple: true, start.Line, start.Column);
    }

    Expr ParseExpression()
    {
        Enter(Cur);
        var e = ParseOr();
        while (Cur.IsName("if"))
        {
            var t = Next();
            var test = ParseOr();
            Expr? other = null;
            if (Cur.IsName("else"))
            {
                _i++;
                other = ParseExpression();
            }
            e = new CondExpr(test, e, other, t.Line, t.Column);
        }
        _depth--;
        return e;
    }

    Expr ParseOr()
    {
        var e = ParseAnd();
        while (Cur.IsName("or"))
        {
            var t = Next();
            e = new BinaryExpr("or", e, ParseAnd(), t.Line, t.Column);
        }
        return e;
    }

    Expr ParseAnd()
    {
        var e = ParseNot();
        while (Cur.IsName("and"))
        {
            var t = Next();
            e = new BinaryExpr("and", e, ParseNot(), t.Line, t.Column);
        }
        return e;
    }

    Expr ParseNot()
    {
        if (!Cur.IsName("not")) return ParseCompare();
        var t = Next();
        Enter(t);
        var operand = ParseNot();
        _depth--;
        return new UnaryExpr("not", operand, t.Line, t.Column);
    }

    Expr ParseCompare()
    {
        var start = Cur;
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Cur.Kind == TokenKind.Operator && Cur.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                var op = Next().Value;
                rest.Add((op, ParseMath1()));
            }
            else if (Cur.IsName("in"))
            {
                _i++;
                rest.Add(("in", ParseMath1()));
            }
            else if (Cur.IsName("not") && Peek().IsName("in"))
            {
                _i += 2;
                rest.Add(("notin", ParseMath1()));
            }
            else break;
        }
        return rest.Count == 0 ? first : new CompareExpr(first, rest, start.Line, start.Column);
    }

    Expr ParseMath1()
    {
        var e = ParseConcat();
        while (Cur.Kind == TokenKind.Operator && Cur.Value is "+" or "-")
        {
            var t = Next();
            e = new BinaryExpr(t.Value, e, ParseConcat(), t.Line, t.Column);
        }
        return e;
    }

    Expr ParseConcat()
    {
        var e = ParseMath2();
        while (Cur.IsOp("~"))
        {
            var t = Next();
            e = new BinaryExpr("~", e, ParseMath2(), t.Line, t.Column);
        }
        return e;
    }

    Expr ParseMath2()
    {
        var e = ParsePow();
        while (Cur.Kind == TokenKind.Operator && Cur.Value is "*" or "/" or "//" or "%")
        {
            var t = Next();
            e = new BinaryExpr(t.Value, e, ParsePow(), t.Line, t.Column);
        }
        return e;
    }

    Expr ParsePow()
    {
        var e = ParseUnary(withFilter: true);
        while (Cur.IsOp("**"))
        {
            var t = Next();
            e = new BinaryExpr("**", e, ParseUnary(withFilter: true), t.Line, t.Column);
        }
        return e;
    }

    Expr ParseUnary(bool withFilter)
    {
        var t = Cur;
        Expr e;
        if (t.IsOp("-") || t.IsOp("+"))
        {
            _i++;
            Enter(t);
            e = new UnaryExpr(t.Value, ParseUnary(withFilter: false), t.Line, t.Column);
            _depth--;
        }
        else e = ParsePrimary();
        e = ParsePostfix(e);
        if (withFilter) e = ParseFilterExpr(e);
        return e;
    }

    Expr ParsePrimary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokenKind.Name:
                return t.Value switch
                {
                    "true" or "True" => new ConstExpr(true, t.Line, t.Column),
                    "false" or "False" => new ConstExpr(false, t.Line, t.Column),
                    "none" or "None" => new ConstExpr(null, t.Line, t.Column),
                    _ => new NameExpr(t.Value, t.Line, t.Column),
                };
            case TokenKind.String:
            {
                var s = t.Value;
                while (Cur.Kind == TokenKind.String) s += Next().Value; // adjacent literals concatenate
                return new ConstExpr(s, t.Line, t.Column);
            }
            case TokenKind.Integer:
                return long.TryParse(t.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n)
                    ? new ConstExpr(n, t.Line, t.Column)
                    : throw Error(t, $"integer literal {t.Value} is too large");
            case TokenKind.Float:
                return new ConstExpr(double.Parse(t.Value, CultureInfo.InvariantCulture), t.Line, t.Column);
            case TokenKind.Operator when t.Value == "(":
            {
                Enter(t);
                if (Cur.IsOp(")")) { _i++; _depth--; return new ListExpr([], IsTuple: true, t.Line, t.Column); }
                var inner = ParseExpression();
                if (Cur.IsOp(","))
                {
                    var items = new List<Expr> { inner };
                    while (Cur.IsOp(","))
                    {
                        _i++;
                        if (Cur.IsOp(")")) break;
                        items.Add(ParseExpression());
                    }
                    inner = new ListExpr(items, IsTuple: true, t.Line, t.Column);
                }
                ExpectOp(")");
                _depth--;
                return inner;
            }
            case TokenKind.Operator when t.Value == "[":
            {
                Enter(t);
                var items = new List<Expr>();
                while (!Cur.IsOp("]"))
                {
                    if (items.Count > 0) ExpectOp(",");
                    if (Cur.IsOp("]")) break;
                    items.Add(ParseExpression());
                }
                _i++;
                _depth--;
                return new ListExpr(items, IsTuple: false, t.Line, t.Column);
            }
            case TokenKind.Operator when t.Value == "{":
            {
                Enter(t);
                var items = new List<(Expr, Expr)>();
                while (!Cur.IsOp("}"))
                {
                    if (items.Count > 0) ExpectOp(",");
                    if (Cur.IsOp("}")) break;
                    var k = ParseExpression();
                    ExpectOp(":");
                    items.Add((k, ParseExpression()));
                }
                _i++;
                _depth--;
                return new DictExpr(items, t.Line, t.Column);
            }
            default:
                throw Error(t, $"expected an expression, found {t}");
        }
    }

    Expr ParsePostfix(Expr e)
    {
        while (true)
        {
            var t = Cur;
            if (t.IsOp("."))
            {
                _i++;
                var name = Next();
                if (name.Kind == TokenKind.Name) e = new AttrExpr(e, name.Value, t.Line, t.Column);
                else if (name.Kind == TokenKind.Integer) e = new ItemExpr(e, new ConstExpr(long.Parse(name.Value, CultureInfo.InvariantCulture), name.Line, name.Column), t.Line, t.Column);
                else throw Error(name, $"expected an attribute name after '.', found {name}");
            }
            else if (t.IsOp("["))
            {
                _i++;
                e = ParseSubscript(e, t);
            }
            else if (t.IsOp("(")) e = ParseCall(e);
            else return e;
        }
    }

    Expr ParseSubscript(Expr target, JinjaToken t)
    {
        Expr? start = null, stop = null, step = null;
        var isSlice = false;
        if (!Cur.IsOp(":")) start = ParseExpression();
        if (Cur.IsOp(":"))
        {
            isSlice = true;
            _i++;
            if (!Cur.IsOp("]") && !Cur.IsOp(":")) stop = ParseExpression();
            if (Cur.IsOp(":"))
            {
                _i++;
                if (!Cur.IsOp("]")) step = ParseExpression();
            }
        }
        ExpectOp("]");
        return isSlice ? new SliceExpr(target, start, stop, step, t.Line, t.Column) : new ItemExpr(target, start!, t.Line, t.Column);
    }

    Expr ParseCall(Expr callee)
    {
        var t = Cur;
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        ParseCallArgs(args, kwargs);
        return new CallExpr(callee, args, kwargs, t.Line, t.Column);
    }

    void ParseCallArgs(List<Expr> args, List<(string, Expr)> kwargs)
    {
        Enter(Cur);
        ExpectOp("(");
        while (!Cur.IsOp(")"))
        {
            if (args.Count + kwargs.Count > 0) ExpectOp(",");
            if (Cur.IsOp(")")) break;
            if (Cur.Kind == TokenKind.Name && Peek().IsOp("="))
            {
                var name = Next().Value;
                _i++;
                kwargs.Add((name, ParseExpression()));
            }
            else if (kwargs.Count > 0) throw Error(Cur, "a positional argument follows a keyword argument");
            else args.Add(ParseExpression());
        }
        _i++;
        _depth--;
    }

    Expr ParseFilterExpr(Expr e)
    {
        while (true)
        {
            if (Cur.IsOp("|"))
            {
                var t = Next();
                var name = ExpectName("a filter name");
                while (Cur.IsOp(".") && Peek().Kind == TokenKind.Name) { _i++; name += "." + Next().Value; }
                var args = new List<Expr>();
                var kwargs = new List<(string, Expr)>();
                if (Cur.IsOp("(")) ParseCallArgs(args, kwargs);
                e = new FilterExpr(e, name, args, kwargs, t.Line, t.Column);
            }
            else if (Cur.IsName("is"))
            {
                var t = Next();
                var negated = false;
                if (Cur.IsName("not")) { _i++; negated = true; }
                var name = ExpectName("a test name");
                var args = new List<Expr>();
                if (Cur.IsOp("("))
                {
                    var kw = new List<(string, Expr)>();
                    ParseCallArgs(args, kw);
                }
                else if (Cur.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float
                         || (Cur.Kind == TokenKind.Name && Cur.Value is not ("else" or "or" or "and" or "if" or "is" or "in" or "not"))
                         || Cur.IsOp("[") || Cur.IsOp("{"))
                {
                    args.Add(ParsePostfix(ParsePrimary()));
                }
                e = new TestExpr(e, name, args, negated, t.Line, t.Column);
            }
            else if (Cur.IsOp("(")) e = ParseCall(e);
            else return e;
        }
    }
}
