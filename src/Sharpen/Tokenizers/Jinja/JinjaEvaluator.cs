using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Sharpen.Tokenizers.Jinja;

/// <summary>Walks the syntax tree with jinja2's semantics (scoping, Undefined, Python operators).</summary>
internal sealed partial class JinjaEvaluator(string name, JinjaLimits limits, Func<DateTime> now)
{
    sealed class Frame(Frame? parent)
    {
        public readonly Dictionary<string, object?> Vars = new(StringComparer.Ordinal);
        public Frame? Parent { get; } = parent;

        public bool TryGet(string key, out object? value)
        {
            for (var f = this; f is not null; f = f.Parent)
                if (f.Vars.TryGetValue(key, out value)) return true;
            value = null;
            return false;
        }
    }

    enum Flow { Normal, Break, Continue }

    StringBuilder _out = new();
    StringBuilder _main = new();
    long _iterations;
    int _callDepth;
    readonly List<(int, int)> _spans = [];

    public IReadOnlyList<(int Start, int End)> GenerationSpans => _spans;

    public string Run(List<Node> body, IReadOnlyDictionary<string, object?> variables)
    {
        var globals = new Frame(null);
        AddGlobals(globals);
        var top = new Frame(globals);
        foreach (var (k, v) in variables) top.Vars[k] = ConvertIn(v, 0);
        _main = _out;
        var flow = RenderNodes(body, top, inLoop: false);
        if (flow != Flow.Normal) throw new JinjaTemplateException(name, 1, 1, "'break' or 'continue' outside a loop");
        return _out.ToString();
    }

    JinjaTemplateException At(Node n, string message) => new(name, n.Line, n.Column, message);

    // ------------------------------------------------------------------ input conversion

    static object? ConvertIn(object? v, int depth)
    {
        if (depth > 64) throw new JinjaRuntimeException("a template variable nests deeper than 64 levels");
        switch (v)
        {
            case null or bool or long or double or string or Undefined or JinjaNamespace or JinjaCallable: return v;
            case int i: return (long)i;
            case short s: return (long)s;
            case float f: return (double)f;
            case decimal m: return (double)m;
            case JsonElement e: return Py.FromJson(e);
            case Dictionary<object, object?> d: return d;
            case IDictionary dict:
            {
                var d = Py.NewDict();
                foreach (DictionaryEntry kv in dict) d[ConvertIn(kv.Key, depth + 1) ?? "None"] = ConvertIn(kv.Value, depth + 1);
                return d;
            }
            case IEnumerable<KeyValuePair<string, object?>> pairs:
            {
                var d = Py.NewDict();
                foreach (var (k, val) in pairs) d[k] = ConvertIn(val, depth + 1);
                return d;
            }
            case IEnumerable seq: return seq.Cast<object?>().Select(x => ConvertIn(x, depth + 1)).ToList();
            default: throw new ArgumentException($"template variable of type {v.GetType().Name} is not supported");
        }
    }

    // ------------------------------------------------------------------ statements

    void Write(string s)
    {
        _out.Append(s);
        if (_out.Length > limits.MaxOutputChars)
            throw new JinjaRuntimeException($"the output exceeds {limits.MaxOutputChars} characters");
    }

    Flow RenderNodes(List<Node> nodes, Frame frame, bool inLoop)
    {
        foreach (var node in nodes)
        {
            var flow = RenderNode(node, frame, inLoop);
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    Flow RenderNode(Node node, Frame frame, bool inLoop)
    {
        try
        {
            switch (node)
            {
                case TextNode t: Write(t.Text); return Flow.Normal;
                case OutputNode o: Write(Py.Str(Eval(o.Value, frame))); return Flow.Normal;
                case IfNode i:
                    foreach (var (test, body) in i.Branches)
                        if (Py.Truthy(Eval(test, frame))) return RenderNodes(body, frame, inLoop);
                    return i.Else is null ? Flow.Normal : RenderNodes(i.Else, frame, inLoop);
                case ForNode f: RenderFor(f, frame); return Flow.Normal;
                case SetNode s: Assign(s, frame); return Flow.Normal;
                case SetBlockNode sb: frame.Vars[sb.Target] = Capture(sb.Body, frame); return Flow.Normal;
                case MacroNode m: frame.Vars[m.Name] = MakeMacro(m, frame); return Flow.Normal;
                case CallBlockNode c: RenderCallBlock(c, frame); return Flow.Normal;
                case FilterBlockNode fb:
                    Write(Py.Str(ApplyFilter(fb.Filter, Capture(fb.Body, frame), fb.Args.Select(a => Eval(a, frame)).ToList(), [], frame)));
                    return Flow.Normal;
                case GenerationNode g:
                {
                    var start = _out.Length;
                    var flow = RenderNodes(g.Body, frame, inLoop);
                    if (ReferenceEquals(_out, _main)) _spans.Add((start, _out.Length));
                    return flow;
                }
                case BreakNode:
                    return inLoop ? Flow.Break : throw At(node, "'break' outside a loop");
                case ContinueNode:
                    return inLoop ? Flow.Continue : throw At(node, "'continue' outside a loop");
                default: throw At(node, $"cannot render a {node.GetType().Name}");
            }
        }
        catch (JinjaRuntimeException e)
        {
            throw At(node, e.Message);
        }
    }

    string Capture(List<Node> body, Frame frame)
    {
        var saved = _out;
        _out = new StringBuilder();
        try
        {
            RenderNodes(body, frame, inLoop: false);
            return _out.ToString();
        }
        finally
        {
            _out = saved;
        }
    }

    void RenderFor(ForNode f, Frame frame)
    {
        var source = Py.Iterate(Eval(f.Iterable, frame));
        var items = new List<object?>(source.Count);
        foreach (var item in source)
        {
            if (f.Filter is null) { items.Add(item); continue; }
            var probe = new Frame(frame);
            Bind(f.Targets, item, probe);
            if (Py.Truthy(Eval(f.Filter, probe))) items.Add(item);
        }
        var loop = new LoopInfo(items);
        for (var i = 0; i < items.Count; i++)
        {
            if (++_iterations > limits.MaxLoopIterations)
                throw new JinjaRuntimeException($"the template ran more than {limits.MaxLoopIterations} loop iterations");
            loop.Index0 = i;
            var iteration = new Frame(frame); // jinja2: names set in the body are local to one iteration
            Bind(f.Targets, items[i], iteration);
            iteration.Vars["loop"] = loop;
            if (RenderNodes(f.Body, iteration, inLoop: true) == Flow.Break) break;
        }
        if (items.Count == 0 && f.Else is not null) RenderNodes(f.Else, frame, inLoop: false);
    }

    static void Bind(List<string> targets, object? value, Frame frame)
    {
        if (targets.Count == 1) { frame.Vars[targets[0]] = value; return; }
        var parts = Py.Iterate(value);
        if (parts.Count != targets.Count)
            throw new JinjaRuntimeException($"cannot unpack {parts.Count} value(s) into {targets.Count} names ({string.Join(", ", targets)})");
        for (var i = 0; i < targets.Count; i++) frame.Vars[targets[i]] = parts[i];
    }

    void Assign(SetNode s, Frame frame)
    {
        var value = Eval(s.Value, frame);
        if (s.Attribute is { } attr)
        {
            frame.TryGet(s.Targets[0], out var target);
            if (target is not JinjaNamespace ns)
                throw new JinjaRuntimeException($"cannot set attribute '{attr}' on '{s.Targets[0]}', a {Py.TypeName(target)}; only namespace() objects take attributes");
            ns.Values[attr] = value;
            return;
        }
        Bind(s.Targets, value, frame);
    }

    JinjaCallable MakeMacro(MacroNode m, Frame defining) => new(m.Name, (args, kwargs) =>
    {
        if (args.Count > m.Parameters.Count)
            throw new JinjaRuntimeException($"macro '{m.Name}' takes at most {m.Parameters.Count} argument(s), got {args.Count}");
        if (++_callDepth > limits.MaxCallDepth)
            throw new JinjaRuntimeException($"macro calls nest deeper than {limits.MaxCallDepth} (runaway recursion?)");
        try
        {
            var f = new Frame(defining);
            for (var i = 0; i < m.Parameters.Count; i++)
            {
                var (p, def) = m.Parameters[i];
                f.Vars[p] = i < args.Count ? args[i]
                    : kwargs.TryGetValue(p, out var kv) ? kv
                    : def is not null ? Eval(def, f) : new Undefined($"'{p}' is undefined");
            }
            foreach (var (k, v) in kwargs)
            {
                if (k == "caller") { f.Vars["caller"] = v; continue; }
                if (!m.Parameters.Any(p => p.Name == k)) throw new JinjaRuntimeException($"macro '{m.Name}' has no parameter '{k}'");
            }
            return Capture(m.Body, f);
        }
        finally
        {
            _callDepth--;
        }
    });

    void RenderCallBlock(CallBlockNode c, Frame frame)
    {
        if (c.Call is not CallExpr call) throw new JinjaRuntimeException("'{% call %}' expects a macro call");
        var caller = new JinjaCallable("caller", (_, _) => Capture(c.Body, frame));
        var callee = Eval(call.Callee, frame);
        var args = call.Args.Select(a => Eval(a, frame)).ToList();
        var kwargs = call.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, frame));
        kwargs["caller"] = caller;
        Write(Py.Str(Invoke(callee, args, kwargs)));
    }

    // ------------------------------------------------------------------ expressions

    object? Eval(Expr e, Frame frame)
    {
        try
        {
            return EvalCore(e, frame);
        }
        catch (JinjaRuntimeException ex)
        {
            throw At(e, ex.Message);
        }
    }

    object? EvalCore(Expr e, Frame frame)
    {
        switch (e)
        {
            case ConstExpr c: return c.Value;
            case NameExpr n: return frame.TryGet(n.Name, out var v) ? v : new Undefined($"'{n.Name}' is undefined");
            case ListExpr l:
            {
                var items = l.Items.Select(x => Eval(x, frame)).ToList();
                return l.IsTuple ? items.ToArray() : items;
            }
            case DictExpr d:
            {
                var dict = Py.NewDict();
                foreach (var (k, val) in d.Items)
                    dict[Eval(k, frame) ?? throw new JinjaRuntimeException("a dict key is None")] = Eval(val, frame);
                return dict;
            }
            case AttrExpr a: return GetAttr(Eval(a.Target, frame), a.Name);
            case ItemExpr i: return GetItem(Eval(i.Target, frame), Eval(i.Key, frame));
            case SliceExpr s:
                return Slice(Eval(s.Target, frame), s.Start is null ? null : Eval(s.Start, frame),
                    s.Stop is null ? null : Eval(s.Stop, frame), s.Step is null ? null : Eval(s.Step, frame));
            case CallExpr c:
            {
                var callee = Eval(c.Callee, frame);
                var args = c.Args.Select(x => Eval(x, frame)).ToList();
                var kwargs = c.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, frame));
                try
                {
                    return Invoke(callee, args, kwargs);
                }
                catch (RaiseSignal r)
                {
                    throw new JinjaRaiseException(name, c.Line, c.Column, r.Message);
                }
            }
            case FilterExpr f:
                return ApplyFilter(f.Name, Eval(f.Target, frame), f.Args.Select(x => Eval(x, frame)).ToList(),
                    f.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, frame)), frame);
            case TestExpr t:
            {
                var result = ApplyTest(t.Name, Eval(t.Target, frame), t.Args.Select(x => Eval(x, frame)).ToList());
                return t.Negated ? !result : result;
            }
            case UnaryExpr u:
            {
                var x = Eval(u.Operand, frame);
                return u.Op switch
                {
                    "not" => !Py.Truthy(x),
                    "-" => x switch
                    {
                        long l => (object?)checked(-l),
                        double d => (object?)-d,
                        bool b => (object?)(b ? -1L : 0L),
                        _ => throw new JinjaRuntimeException($"bad operand type for unary -: {Py.TypeName(x)}"),
                    },
                    _ => Py.IsNumber(x) ? (x is bool b2 ? (object?)(b2 ? 1L : 0L) : x) : throw new JinjaRuntimeException($"bad operand type for unary +: {Py.TypeName(x)}"),
                };
            }
            case BinaryExpr b:
            {
                if (b.Op == "and")
                {
                    var l = Eval(b.Left, frame);
                    return Py.Truthy(l) ? Eval(b.Right, frame) : l;
                }
                if (b.Op == "or")
                {
                    var l = Eval(b.Left, frame);
                    return Py.Truthy(l) ? l : Eval(b.Right, frame);
                }
                return Binary(b.Op, Eval(b.Left, frame), Eval(b.Right, frame));
            }
            case CompareExpr c:
            {
                var left = Eval(c.First, frame);
                foreach (var (op, rightExpr) in c.Rest)
                {
                    var right = Eval(rightExpr, frame);
                    var ok = op switch
                    {
                        "==" => Py.Equals(left, right),
                        "!=" => !Py.Equals(left, right),
                        "<" => Py.Compare(left, right) < 0,
                        ">" => Py.Compare(left, right) > 0,
                        "<=" => Py.Compare(left, right) <= 0,
                        ">=" => Py.Compare(left, right) >= 0,
                        "in" => Contains(right, left),
                        _ => !Contains(right, left),
                    };
                    if (!ok) return false;
                    left = right;
                }
                return true;
            }
            case CondExpr c:
                return Py.Truthy(Eval(c.Test, frame)) ? Eval(c.Then, frame)
                    : c.Else is null ? new Undefined("the inline if had no else") : Eval(c.Else, frame);
            default: throw new JinjaRuntimeException($"cannot evaluate a {e.GetType().Name}");
        }
    }

    static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal)
            : throw new JinjaRuntimeException($"'in <string>' requires a string as left operand, not {Py.TypeName(item)}"),
        List<object?> l => l.Any(x => Py.Equals(x, item)),
        object?[] t => t.Any(x => Py.Equals(x, item)),
        Dictionary<object, object?> d => item is not null && d.ContainsKey(item),
        Undefined => false,
        _ => throw new JinjaRuntimeException($"argument of type '{Py.TypeName(container)}' is not iterable"),
    };

    static object? Binary(string op, object? a, object? b)
    {
        if (op == "~") return Py.Str(a) + Py.Str(b);
        if (a is Undefined ua) throw new JinjaRuntimeException($"{ua.Description}; cannot use it with '{op}'");
        if (b is Undefined ub) throw new JinjaRuntimeException($"{ub.Description}; cannot use it with '{op}'");
        var ints = a is long or bool && b is long or bool;
        var nums = Py.IsNumber(a) && Py.IsNumber(b);
        try
        {
            switch (op)
            {
                case "+":
                    if (ints) return checked(Py.ToLong(a) + Py.ToLong(b));
                    if (nums) return Py.ToDouble(a) + Py.ToDouble(b);
                    if (a is string sa && b is string sb) return sa + sb;
                    if (a is List<object?> la && b is List<object?> lb) return la.Concat(lb).ToList();
                    if (a is object?[] ta && b is object?[] tb) return ta.Concat(tb).ToArray();
                    break;
                case "-":
                    if (ints) return checked(Py.ToLong(a) - Py.ToLong(b));
                    if (nums) return Py.ToDouble(a) - Py.ToDouble(b);
                    break;
                case "*":
                    if (ints) return checked(Py.ToLong(a) * Py.ToLong(b));
                    if (nums) return Py.ToDouble(a) * Py.ToDouble(b);
                    if (a is string s1 && b is long or bool) return Repeat(s1, Py.ToLong(b));
                    if (b is string s2 && a is long or bool) return Repeat(s2, Py.ToLong(a));
                    if (a is List<object?> l1 && b is long n1) return Enumerable.Repeat(l1, (int)Math.Clamp(n1, 0, 1_000_000)).SelectMany(x => x).ToList();
                    break;
                case "/":
                    if (nums)
                    {
                        var d = Py.ToDouble(b);
                        return d == 0 ? throw new JinjaRuntimeException("division by zero") : Py.ToDouble(a) / d;
                    }
                    break;
                case "//":
                    if (ints)
                    {
                        long x = Py.ToLong(a), y = Py.ToLong(b);
                        if (y == 0) throw new JinjaRuntimeException("integer division by zero");
                        var q = x / y;
                        return (x % y != 0) && ((x < 0) != (y < 0)) ? q - 1 : q;
                    }
                    if (nums)
                    {
                        var y = Py.ToDouble(b);
                        return y == 0 ? throw new JinjaRuntimeException("float floor division by zero") : Math.Floor(Py.ToDouble(a) / y);
                    }
                    break;
                case "%":
                    if (ints)
                    {
                        long x = Py.ToLong(a), y = Py.ToLong(b);
                        if (y == 0) throw new JinjaRuntimeException("integer modulo by zero");
                        var r = x % y;
                        return r != 0 && ((r < 0) != (y < 0)) ? r + y : r;
                    }
                    if (nums)
                    {
                        double x = Py.ToDouble(a), y = Py.ToDouble(b);
                        if (y == 0) throw new JinjaRuntimeException("float modulo by zero");
                        var r = x % y;
                        return r != 0 && ((r < 0) != (y < 0)) ? r + y : r;
                    }
                    if (a is string fmt) return PercentFormat(fmt, b);
                    break;
                case "**":
                    if (ints && Py.ToLong(b) >= 0)
                    {
                        long x = Py.ToLong(a), r = 1;
                        for (var k = Py.ToLong(b); k > 0; k--) r = checked(r * x);
                        return r;
                    }
                    if (nums) return Math.Pow(Py.ToDouble(a), Py.ToDouble(b));
                    break;
            }
        }
        catch (OverflowException)
        {
            throw new JinjaRuntimeException($"integer overflow in '{op}'");
        }
        throw new JinjaRuntimeException($"unsupported operand type(s) for {op}: '{Py.TypeName(a)}' and '{Py.TypeName(b)}'");
    }

    static string Repeat(string s, long n)
    {
        if (n <= 0) return "";
        if (s.Length * n > 16 << 20) throw new JinjaRuntimeException("string repetition is too large");
        return new StringBuilder().Insert(0, s, (int)n).ToString();
    }

    /// <summary>Python's <c>fmt % args</c> for <c>%s</c>, <c>%d</c>, <c>%r</c> and <c>%%</c>.</summary>
    static string PercentFormat(string fmt, object? args)
    {
        var values = args is object?[] t ? t : [args];
        var sb = new StringBuilder();
        var k = 0;
        for (var i = 0; i < fmt.Length; i++)
        {
            if (fmt[i] != '%' || i + 1 >= fmt.Length) { sb.Append(fmt[i]); continue; }
            var spec = fmt[++i];
            if (spec == '%') { sb.Append('%'); continue; }
            if (k >= values.Length) throw new JinjaRuntimeException("not enough arguments for format string");
            var v = values[k++];
            sb.Append(spec switch
            {
                's' => Py.Str(v),
                'r' => Py.Repr(v),
                'd' or 'i' => Py.IsNumber(v) ? ((long)Math.Truncate(Py.ToDouble(v))).ToString(CultureInfo.InvariantCulture) : throw new JinjaRuntimeException("%d format: a number is required"),
                _ => throw new JinjaRuntimeException($"unsupported format character '{spec}'"),
            });
        }
        if (k < values.Length) throw new JinjaRuntimeException("not all arguments converted during string formatting");
        return sb.ToString();
    }

    object? Invoke(object? callee, List<object?> args, Dictionary<string, object?> kwargs) => callee switch
    {
        JinjaCallable c => c.Invoke(args, kwargs),
        Undefined u => throw new JinjaRuntimeException($"{u.Description}; it cannot be called"),
        _ => throw new JinjaRuntimeException($"a {Py.TypeName(callee)} is not callable"),
    };

    // ------------------------------------------------------------------ attribute and item access

    static readonly HashSet<string> DictMethods = ["items", "keys", "values", "get"];

    object? GetAttr(object? obj, string attr)
    {
        switch (obj)
        {
            case Undefined u: throw new JinjaRuntimeException($"{u.Description}; cannot read attribute '{attr}' of it");
            case Dictionary<object, object?> d:
                if (DictMethods.Contains(attr)) return DictMethod(d, attr);
                return d.TryGetValue(attr, out var v) ? v : new Undefined($"'dict object' has no attribute '{attr}'");
            case string s: return (object?)StringMethod(s, attr) ?? new Undefined($"'str object' has no attribute '{attr}'");
            case JinjaNamespace ns: return ns.Values.TryGetValue(attr, out var nv) ? nv : new Undefined($"namespace has no attribute '{attr}'");
            case LoopInfo loop: return loop.Get(attr);
            default: return new Undefined($"'{Py.TypeName(obj)} object' has no attribute '{attr}'");
        }
    }

    object? GetItem(object? obj, object? key)
    {
        switch (obj)
        {
            case Undefined u: throw new JinjaRuntimeException($"{u.Description}; cannot index it");
            case Dictionary<object, object?> d:
                if (key is not null && d.TryGetValue(key, out var v)) return v;
                return key is string ks ? GetAttr(obj, ks) : new Undefined($"'dict object' has no item {Py.Repr(key)}");
            case IReadOnlyList<object?> list when key is long or bool:
            {
                var i = Py.ToLong(key);
                if (i < 0) i += list.Count;
                return i >= 0 && i < list.Count ? list[(int)i] : new Undefined($"index {Py.ToLong(key)} is out of range for a {Py.TypeName(obj)} of {list.Count}");
            }
            case string s when key is long or bool:
            {
                var runes = Runes(s);
                var i = Py.ToLong(key);
                if (i < 0) i += runes.Count;
                return i >= 0 && i < runes.Count ? runes[(int)i] : new Undefined($"string index {Py.ToLong(key)} is out of range");
            }
            case LoopInfo loop when key is string k: return loop.Get(k);
            case JinjaNamespace ns when key is string k: return GetAttr(ns, k);
            case string s when key is string k: return GetAttr(s, k);
            default: return new Undefined($"'{Py.TypeName(obj)} object' has no item {Py.Repr(key)}");
        }
    }

    static List<string> Runes(string s) => s.EnumerateRunes().Select(r => r.ToString()).ToList();

    static object? Slice(object? obj, object? start, object? stop, object? step)
    {
        long? Opt(object? x, string what) => x switch
        {
            null => null,
            long or bool => Py.ToLong(x),
            _ => throw new JinjaRuntimeException($"slice {what} must be an integer or None, not {Py.TypeName(x)}"),
        };
        var st = Opt(step, "step") ?? 1;
        if (st == 0) throw new JinjaRuntimeException("slice step cannot be zero");
        IReadOnlyList<object?> items = obj switch
        {
            List<object?> l => l,
            object?[] t => t,
            string s => Runes(s).Cast<object?>().ToList(),
            Undefined u => throw new JinjaRuntimeException($"{u.Description}; cannot slice it"),
            _ => throw new JinjaRuntimeException($"a {Py.TypeName(obj)} cannot be sliced"),
        };
        long n = items.Count;
        long Clamp(long? v, long def, bool isStart)
        {
            if (v is not { } x) return def;
            if (x < 0) x += n;
            return st > 0 ? Math.Clamp(x, 0, n) : Math.Clamp(x, -1, n - 1);
        }
        var b = Clamp(Opt(start, "start"), st > 0 ? 0 : n - 1, true);
        var e = Clamp(Opt(stop, "stop"), st > 0 ? n : -1, false);
        var result = new List<object?>();
        for (var i = b; st > 0 ? i < e : i > e; i += st) result.Add(items[(int)i]);
        return obj switch
        {
            string => string.Concat(result.Cast<string>()),
            object?[] => result.ToArray(),
            _ => result,
        };
    }

    static JinjaCallable DictMethod(Dictionary<object, object?> d, string method) => method switch
    {
        "items" => new("dict.items", (_, _) => d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList()),
        "keys" => new("dict.keys", (_, _) => d.Keys.Cast<object?>().ToList()),
        "values" => new("dict.values", (_, _) => d.Values.ToList()),
        _ => new("dict.get", (a, _) => a.Count is < 1 or > 2 ? throw new JinjaRuntimeException("dict.get takes 1 or 2 arguments")
            : a[0] is not null && d.TryGetValue(a[0]!, out var v) ? v : a.Count == 2 ? a[1] : null),
    };

    // ------------------------------------------------------------------ globals

    void AddGlobals(Frame g)
    {
        g.Vars["range"] = new JinjaCallable("range", (a, _) =>
        {
            long start = 0, stop, step = 1;
            if (a.Count == 1) stop = Py.ToLong(a[0]);
            else if (a.Count is 2 or 3)
            {
                start = Py.ToLong(a[0]);
                stop = Py.ToLong(a[1]);
                if (a.Count == 3) step = Py.ToLong(a[2]);
            }
            else throw new JinjaRuntimeException("range expects 1 to 3 integer arguments");
            if (step == 0) throw new JinjaRuntimeException("range() step must not be zero");
            var list = new List<object?>();
            for (var i = start; step > 0 ? i < stop : i > stop; i += step)
            {
                if (list.Count >= limits.MaxLoopIterations) throw new JinjaRuntimeException($"range() is longer than {limits.MaxLoopIterations}");
                list.Add(i);
            }
            return list;
        });
        g.Vars["namespace"] = new JinjaCallable("namespace", (a, kw) =>
        {
            var ns = new JinjaNamespace();
            foreach (var arg in a)
            {
                if (arg is not Dictionary<object, object?> d) throw new JinjaRuntimeException("namespace() takes keyword arguments or a dict");
                foreach (var (k, v) in d) ns.Values[Py.Str(k)] = v;
            }
            foreach (var (k, v) in kw) ns.Values[k] = v;
            return ns;
        });
        g.Vars["dict"] = new JinjaCallable("dict", (a, kw) =>
        {
            var d = Py.NewDict();
            foreach (var arg in a)
                if (arg is Dictionary<object, object?> src) foreach (var (k, v) in src) d[k] = v;
                else throw new JinjaRuntimeException("dict() takes keyword arguments or a dict");
            foreach (var (k, v) in kw) d[k] = v;
            return d;
        });
        g.Vars["raise_exception"] = new JinjaCallable("raise_exception", (a, _) =>
            throw new RaiseSignal(a.Count > 0 ? Py.Str(a[0]) : ""));
        g.Vars["strftime_now"] = new JinjaCallable("strftime_now", (a, _) =>
            a.Count == 1 && a[0] is string fmt ? Strftime(now(), fmt) : throw new JinjaRuntimeException("strftime_now expects one format string"));
    }

    /// <summary>Thrown by <c>raise_exception</c>; turned into <see cref="JinjaRaiseException"/> at the call site.</summary>
    internal sealed class RaiseSignal(string message) : Exception(message);

    /// <summary>Python's <c>datetime.strftime</c> for the directives chat templates use (C locale).</summary>
    static string Strftime(DateTime t, string fmt)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        for (var i = 0; i < fmt.Length; i++)
        {
            if (fmt[i] != '%' || i + 1 >= fmt.Length) { sb.Append(fmt[i]); continue; }
            var c = fmt[++i];
            var noPad = false;
            if (c == '-' && i + 1 < fmt.Length) { noPad = true; c = fmt[++i]; }
            string Num(int v, int width) => noPad ? v.ToString(inv) : v.ToString(new string('0', width), inv);
            sb.Append(c switch
            {
                'Y' => t.Year.ToString(inv),
                'y' => Num(t.Year % 100, 2),
                'm' => Num(t.Month, 2),
                'd' => Num(t.Day, 2),
                'e' => t.Day.ToString(inv).PadLeft(2),
                'H' => Num(t.Hour, 2),
                'I' => Num(t.Hour % 12 == 0 ? 12 : t.Hour % 12, 2),
                'M' => Num(t.Minute, 2),
                'S' => Num(t.Second, 2),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'j' => Num(t.DayOfYear, 3),
                'b' or 'h' => t.ToString("MMM", inv),
                'B' => t.ToString("MMMM", inv),
                'a' => t.ToString("ddd", inv),
                'A' => t.ToString("dddd", inv),
                'w' => ((int)t.DayOfWeek).ToString(inv),
                '%' => "%",
                _ => throw new JinjaRuntimeException($"strftime_now: unsupported directive '%{c}'"),
            });
        }
        return sb.ToString();
    }
}
