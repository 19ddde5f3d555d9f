using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Sharpen.Tokenizers.Jinja;

// Filters, tests and string methods, each with jinja2's (or Python's) behaviour.
internal sealed partial class JinjaEvaluator
{
    static object? Arg(List<object?> args, Dictionary<string, object?> kwargs, int index, string key, object? fallback) =>
        index < args.Count ? args[index] : kwargs.TryGetValue(key, out var v) ? v : fallback;

    static IReadOnlyList<object?> Seq(object? v, string filter) => v switch
    {
        null => throw new JinjaRuntimeException($"|{filter}: the value is None, not a sequence"),
        _ => Py.Iterate(v),
    };

    object? ApplyFilter(string filter, object? v, List<object?> a, Dictionary<string, object?> kw, Frame frame)
    {
        switch (filter)
        {
            case "trim":
            {
                var chars = Arg(a, kw, 0, "chars", null) as string;
                return chars is null ? PyStrip(Py.Str(v), null, true, true) : PyStrip(Py.Str(v), chars, true, true);
            }
            case "tojson":
            {
                var indent = Arg(a, kw, 0, "indent", null);
                if (kw.TryGetValue("ensure_ascii", out var ea) && Py.Truthy(ea))
                    throw new JinjaRuntimeException("|tojson(ensure_ascii=True) is not supported");
                string? itemSep = null, keySep = null;
                if (kw.TryGetValue("separators", out var seps) && seps is IReadOnlyList<object?> { Count: 2 } sp)
                    (itemSep, keySep) = (Py.Str(sp[0]), Py.Str(sp[1]));
                return Py.ToJson(v, indent is null ? null : (int)Py.ToLong(indent), itemSep, keySep,
                    kw.TryGetValue("sort_keys", out var sk) && Py.Truthy(sk));
            }
            case "length" or "count":
                return v switch
                {
                    string s => (long)s.EnumerateRunes().Count(),
                    Undefined => 0L,
                    null => throw new JinjaRuntimeException($"|{filter}: object of type 'NoneType' has no len()"),
                    _ => (long)Py.Iterate(v).Count,
                };
            case "upper": return Py.Str(v).ToUpperInvariant();
            case "lower": return Py.Str(v).ToLowerInvariant();
            case "capitalize": return Capitalize(Py.Str(v));
            case "title":
                return string.Concat(Regex.Split(Py.Str(v), @"([-\s\(\{\[\<]+)").Where(x => x.Length > 0)
                    .Select(w => w[..1].ToUpperInvariant() + w[1..].ToLowerInvariant()));
            case "replace":
            {
                var count = Arg(a, kw, 2, "count", null);
                return PyReplace(Py.Str(v), Py.Str(Arg(a, kw, 0, "old", "")), Py.Str(Arg(a, kw, 1, "new", "")), count is null ? -1 : Py.ToLong(count));
            }
            case "string": return Py.Str(v);
            case "int": return ToInt(v, Arg(a, kw, 0, "default", 0L));
            case "float": return ToFloat(v, Arg(a, kw, 0, "default", 0.0));
            case "abs": return v switch { long l => (object?)Math.Abs(l), double d => Math.Abs(d), _ => throw new JinjaRuntimeException($"|abs: bad operand type {Py.TypeName(v)}") };
            case "round":
            {
                var precision = (int)Py.ToLong(Arg(a, kw, 0, "precision", 0L));
                var method = Py.Str(Arg(a, kw, 1, "method", "common"));
                var x = Py.ToDouble(v) * Math.Pow(10, precision);
                x = method switch { "ceil" => Math.Ceiling(x), "floor" => Math.Floor(x), _ => Math.Round(x, MidpointRounding.AwayFromZero) };
                return x / Math.Pow(10, precision);
            }
            case "join":
            {
                var sep = Py.Str(Arg(a, kw, 0, "d", ""));
                var attr = Arg(a, kw, 1, "attribute", null);
                var items = Seq(v, filter).Select(x => attr is null ? x : GetAttrPath(x, attr));
                return string.Join(sep, items.Select(Py.Str));
            }
            case "default" or "d":
            {
                var fallback = Arg(a, kw, 0, "default_value", "");
                var boolean = Py.Truthy(Arg(a, kw, 1, "boolean", false));
                return v is Undefined || (boolean && !Py.Truthy(v)) ? fallback : v;
            }
            case "first":
            {
                var items = Seq(v, filter);
                return items.Count > 0 ? items[0] : new Undefined("|first of an empty sequence");
            }
            case "last":
            {
                var items = Seq(v, filter);
                return items.Count > 0 ? items[^1] : new Undefined("|last of an empty sequence");
            }
            case "items":
                return v switch
                {
                    Undefined => new List<object?>(),
                    Dictionary<object, object?> d => d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList(),
                    _ => throw new JinjaRuntimeException($"|items: can only get item pairs from a mapping, not a {Py.TypeName(v)}"),
                };
            case "list": return Seq(v, filter).ToList();
            case "reverse":
                return v is string rs ? string.Concat(Runes(rs).AsEnumerable().Reverse()) : Seq(v, filter).Reverse().ToList();
            case "unique":
            {
                var result = new List<object?>();
                foreach (var x in Seq(v, filter))
                    if (!result.Any(y => Py.Equals(y, x))) result.Add(x);
                return result;
            }
            case "sort":
            {
                var reverse = Py.Truthy(Arg(a, kw, 0, "reverse", false));
                var caseSensitive = Py.Truthy(Arg(a, kw, 1, "case_sensitive", false));
                var attr = Arg(a, kw, 2, "attribute", null);
                object? Key(object? x)
                {
                    var k = attr is null ? x : GetAttrPath(x, attr);
                    return !caseSensitive && k is string s ? s.ToLowerInvariant() : k;
                }
                var sorted = Seq(v, filter).Select((x, i) => (x, i)).ToList();
                sorted.Sort((p, q) => { var c = Py.Compare(Key(p.x), Key(q.x)); return c != 0 ? (reverse ? -c : c) : p.i.CompareTo(q.i); });
                return sorted.Select(p => p.x).ToList();
            }
            case "dictsort":
            {
                if (v is not Dictionary<object, object?> d) throw new JinjaRuntimeException("|dictsort expects a mapping");
                var caseSensitive = Py.Truthy(Arg(a, kw, 0, "case_sensitive", false));
                var byValue = Py.Str(Arg(a, kw, 1, "by", "key")) == "value";
                var reverse = Py.Truthy(Arg(a, kw, 2, "reverse", false));
                var pairs = d.Select(kv => (K: (object?)kv.Key, V: kv.Value)).ToList();
                object? Key((object? K, object? V) p) { var k = byValue ? p.V : p.K; return !caseSensitive && k is string s ? s.ToLowerInvariant() : k; }
                pairs.Sort((p, q) => reverse ? Py.Compare(Key(q), Key(p)) : Py.Compare(Key(p), Key(q)));
                return pairs.Select(p => (object?)new object?[] { p.K, p.V }).ToList();
            }
            case "selectattr" or "rejectattr":
            {
                if (a.Count == 0) throw new JinjaRuntimeException($"|{filter} needs an attribute name");
                var keep = filter == "selectattr";
                return Seq(v, filter).Where(x =>
                {
                    var attrValue = GetAttrPath(x, a[0]);
                    var ok = a.Count > 1 ? ApplyTest(Py.Str(a[1]), attrValue, a.Skip(2).ToList()) : Py.Truthy(attrValue);
                    return ok == keep;
                }).ToList();
            }
            case "select" or "reject":
            {
                var keep = filter == "select";
                return Seq(v, filter).Where(x => (a.Count > 0 ? ApplyTest(Py.Str(a[0]), x, a.Skip(1).ToList()) : Py.Truthy(x)) == keep).ToList();
            }
            case "map":
            {
                var items = Seq(v, filter);
                if (kw.TryGetValue("attribute", out var attribute))
                {
                    var hasDefault = kw.TryGetValue("default", out var def);
                    return items.Select(x => { var r = GetAttrPath(x, attribute); return hasDefault && r is Undefined ? def : r; }).ToList();
                }
                if (a.Count == 0) throw new JinjaRuntimeException("|map needs a filter name or attribute=");
                var name = Py.Str(a[0]);
                var rest = a.Skip(1).ToList();
                return items.Select(x => ApplyFilter(name, x, rest, kw, frame)).ToList();
            }
            case "sum":
            {
                var attr = Arg(a, kw, 0, "attribute", null);
                object? total = Arg(a, kw, 1, "start", 0L);
                foreach (var x in Seq(v, filter)) total = Binary("+", total, attr is null ? x : GetAttrPath(x, attr));
                return total;
            }
            case "min" or "max":
            {
                var items = Seq(v, filter);
                if (items.Count == 0) return new Undefined($"|{filter} of an empty sequence");
                var best = items[0];
                foreach (var x in items.Skip(1))
                    if (filter == "min" ? Py.Compare(x, best) < 0 : Py.Compare(x, best) > 0) best = x;
                return best;
            }
            case "indent":
            {
                var width = Arg(a, kw, 0, "width", 4L);
                var pad = width is string ws ? ws : new string(' ', (int)Py.ToLong(width));
                var first = Py.Truthy(Arg(a, kw, 1, "first", false));
                var blank = Py.Truthy(Arg(a, kw, 2, "blank", false));
                var lines = (Py.Str(v) + "\n").Split('\n').SkipLast(1).ToList();   // Python: (s + "\n").splitlines()
                string rv;
                if (blank) rv = string.Join("\n" + pad, lines);
                else
                {
                    rv = lines[0];
                    if (lines.Count > 1) rv += "\n" + string.Join("\n", lines.Skip(1).Select(l => l.Length > 0 ? pad + l : l));
                }
                return first ? pad + rv : rv;
            }
            case "attr": return GetAttr(v, Py.Str(Arg(a, kw, 0, "name", "")));
            case "safe": return v;
            case "e" or "escape":
                return Py.Str(v).Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");
            case "format": return PercentFormat(Py.Str(v), a.ToArray());
            case "wordcount": return (long)Regex.Matches(Py.Str(v), @"\w+").Count;
            case "center":
            {
                var width = (int)Py.ToLong(Arg(a, kw, 0, "width", 80L));
                var s = Py.Str(v);
                if (s.Length >= width) return s;
                var left = (width - s.Length) / 2 + ((width - s.Length) % 2 & width % 2);
                return new string(' ', left) + s + new string(' ', width - s.Length - left);
            }
            default:
                throw new JinjaRuntimeException($"no filter named '{filter}'");
        }
    }

    /// <summary>Attribute or dotted path (<c>"function.name"</c>) or integer index, as jinja2's make_attrgetter reads it.</summary>
    object? GetAttrPath(object? x, object? attr)
    {
        if (attr is long or bool) return GetItem(x, attr);
        foreach (var part in Py.Str(attr).Split('.'))
        {
            x = long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var idx) ? GetItem(x, idx) : GetItem(x, part);
            if (x is Undefined) return x;
        }
        return x;
    }

    static object? ToInt(object? v, object? fallback)
    {
        switch (v)
        {
            case long l: return l;
            case bool b: return b ? 1L : 0L;
            case double d: return double.IsFinite(d) ? (long)Math.Truncate(d) : fallback;
            case string s:
                var t = s.Trim().Replace("_", "");
                if (long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var r)) return r;
                if (double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && double.IsFinite(f)) return (long)Math.Truncate(f);
                return fallback;
            default: return fallback;
        }
    }

    static object? ToFloat(object? v, object? fallback) => v switch
    {
        long l => (double)l,
        bool b => b ? 1.0 : 0.0,
        double d => d,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var f) => f,
        _ => fallback,
    };

    // ------------------------------------------------------------------ tests

    bool ApplyTest(string test, object? v, List<object?> a)
    {
        object? A0() => a.Count > 0 ? a[0] : throw new JinjaRuntimeException($"test '{test}' needs an argument");
        return test switch
        {
            "defined" => v is not Undefined,
            "undefined" => v is Undefined,
            "none" => v is null,
            "string" => v is string,
            "number" => v is long or double,
            "integer" => v is long,
            "float" => v is double,
            "boolean" => v is bool,
            "true" => v is true,
            "false" => v is false,
            "mapping" => v is Dictionary<object, object?>,
            "iterable" => v is string or List<object?> or object?[] or Dictionary<object, object?> or Undefined,
            "sequence" => v is string or List<object?> or object?[] or Dictionary<object, object?>,
            "callable" => v is JinjaCallable,
            "even" => Py.ToLong(v) % 2 == 0,
            "odd" => Py.ToLong(v) % 2 != 0,
            "divisibleby" => Py.ToLong(v) % Py.ToLong(A0()) == 0,
            "eq" or "equalto" or "==" => Py.Equals(v, A0()),
            "ne" or "!=" => !Py.Equals(v, A0()),
            "lt" or "lessthan" or "<" => Py.Compare(v, A0()) < 0,
            "le" or "<=" => Py.Compare(v, A0()) <= 0,
            "gt" or "greaterthan" or ">" => Py.Compare(v, A0()) > 0,
            "ge" or ">=" => Py.Compare(v, A0()) >= 0,
            "in" => Contains(A0(), v),
            "sameas" => ReferenceEquals(v, A0()) || (v is null && A0() is null) || (v is bool b1 && A0() is bool b2 && b1 == b2),
            "lower" => v is string ls && ls == ls.ToLowerInvariant(),
            "upper" => v is string us && us == us.ToUpperInvariant(),
            "escaped" => false,
            _ => throw new JinjaRuntimeException($"no test named '{test}'"),
        };
    }

    // ------------------------------------------------------------------ string methods

    static JinjaCallable? StringMethod(string s, string method) => method switch
    {
        "strip" => new("str.strip", (a, _) => PyStrip(s, OptChars(a), true, true)),
        "lstrip" => new("str.lstrip", (a, _) => PyStrip(s, OptChars(a), true, false)),
        "rstrip" => new("str.rstrip", (a, _) => PyStrip(s, OptChars(a), false, true)),
        "upper" => new("str.upper", (_, _) => s.ToUpperInvariant()),
        "lower" => new("str.lower", (_, _) => s.ToLowerInvariant()),
        "title" => new("str.title", (_, _) => PyTitle(s)),
        "capitalize" => new("str.capitalize", (_, _) => Capitalize(s)),
        "startswith" => new("str.startswith", (a, _) => Affix(s, a, start: true)),
        "endswith" => new("str.endswith", (a, _) => Affix(s, a, start: false)),
        "replace" => new("str.replace", (a, _) => a.Count < 2 ? throw new JinjaRuntimeException("str.replace needs 2 arguments")
            : PyReplace(s, Py.Str(a[0]), Py.Str(a[1]), a.Count > 2 ? Py.ToLong(a[2]) : -1)),
        "split" => new("str.split", (a, kw) => PySplit(s, Arg(a, kw, 0, "sep", null), Py.ToLong(Arg(a, kw, 1, "maxsplit", -1L)))),
        "rsplit" => new("str.rsplit", (a, kw) => PyRSplit(s, Arg(a, kw, 0, "sep", null), Py.ToLong(Arg(a, kw, 1, "maxsplit", -1L)))),
        "splitlines" => new("str.splitlines", (_, _) => s.Split('\n').Select(l => (object?)l.TrimEnd('\r')).ToList() is var ls && s.EndsWith('\n') ? ls.SkipLast(1).ToList() : ls),
        "find" => new("str.find", (a, _) => (long)s.IndexOf(Py.Str(a.Count > 0 ? a[0] : ""), StringComparison.Ordinal)),
        "rfind" => new("str.rfind", (a, _) => (long)s.LastIndexOf(Py.Str(a.Count > 0 ? a[0] : ""), StringComparison.Ordinal)),
        "count" => new("str.count", (a, _) =>
        {
            var sub = Py.Str(a.Count > 0 ? a[0] : "");
            if (sub.Length == 0) return (long)s.Length + 1;
            long n = 0;
            for (var i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
            return n;
        }),
        "join" => new("str.join", (a, _) => string.Join(s, Py.Iterate(a.Count > 0 ? a[0] : null).Select(x => x as string
            ?? throw new JinjaRuntimeException($"str.join: expected str items, found {Py.TypeName(x)}")))),
        "isdigit" => new("str.isdigit", (_, _) => s.Length > 0 && s.All(char.IsDigit)),
        "isalpha" => new("str.isalpha", (_, _) => s.Length > 0 && s.All(char.IsLetter)),
        "isspace" => new("str.isspace", (_, _) => s.Length > 0 && s.All(char.IsWhiteSpace)),
        "removeprefix" => new("str.removeprefix", (a, _) => a.Count > 0 && a[0] is string p && s.StartsWith(p, StringComparison.Ordinal) ? s[p.Length..] : s),
        "removesuffix" => new("str.removesuffix", (a, _) => a.Count > 0 && a[0] is string p && p.Length > 0 && s.EndsWith(p, StringComparison.Ordinal) ? s[..^p.Length] : s),
        _ => null,
    };

    static string? OptChars(List<object?> a) => a.Count > 0 && a[0] is not null ? Py.Str(a[0]) : null;

    static string PyStrip(string s, string? chars, bool left, bool right)
    {
        bool Strip(char c) => chars is null ? char.IsWhiteSpace(c) || c is '\x1c' or '\x1d' or '\x1e' or '\x1f' : chars.Contains(c);
        int b = 0, e = s.Length;
        if (left) while (b < e && Strip(s[b])) b++;
        if (right) while (e > b && Strip(s[e - 1])) e--;
        return s[b..e];
    }

    static bool Affix(string s, List<object?> a, bool start)
    {
        if (a.Count == 0) throw new JinjaRuntimeException("startswith/endswith needs an argument");
        var options = a[0] is object?[] t ? t.Select(Py.Str) : [Py.Str(a[0])];
        return options.Any(o => start ? s.StartsWith(o, StringComparison.Ordinal) : s.EndsWith(o, StringComparison.Ordinal));
    }

    static string PyReplace(string s, string old, string @new, long count)
    {
        if (count < 0) return old.Length == 0 ? string.Join(@new, ["", .. Runes(s), ""]) : s.Replace(old, @new, StringComparison.Ordinal);
        var sb = new StringBuilder();
        var at = 0;
        for (long n = 0; n < count; n++)
        {
            var i = s.IndexOf(old, at, StringComparison.Ordinal);
            if (i < 0 || old.Length == 0) break;
            sb.Append(s, at, i - at).Append(@new);
            at = i + old.Length;
        }
        return sb.Append(s, at, s.Length - at).ToString();
    }

    static List<object?> PySplit(string s, object? sep, long maxSplit)
    {
        var result = new List<object?>();
        if (sep is null)
        {
            var i = 0;
            while (true)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                if (i >= s.Length) break;
                if (maxSplit >= 0 && result.Count >= maxSplit) { result.Add(s[i..].TrimEnd()); break; }
                var j = i;
                while (j < s.Length && !char.IsWhiteSpace(s[j])) j++;
                result.Add(s[i..j]);
                i = j;
            }
            return result;
        }
        var sp = Py.Str(sep);
        if (sp.Length == 0) throw new JinjaRuntimeException("str.split: empty separator");
        var at = 0;
        while (maxSplit < 0 || result.Count < maxSplit)
        {
            var k = s.IndexOf(sp, at, StringComparison.Ordinal);
            if (k < 0) break;
            result.Add(s[at..k]);
            at = k + sp.Length;
        }
        result.Add(s[at..]);
        return result;
    }

    static List<object?> PyRSplit(string s, object? sep, long maxSplit)
    {
        if (maxSplit < 0) return PySplit(s, sep, -1);
        if (sep is null)
        {
            var words = PySplit(s, null, -1);
            if (words.Count <= maxSplit + 1) return words;
            // Rejoin the leftmost words with the original text: find where word (count - maxSplit) starts.
            var keepStart = words.Count - (int)maxSplit;
            var idx = 0;
            for (var w = 0; w < keepStart; w++)
            {
                while (char.IsWhiteSpace(s[idx])) idx++;
                idx += ((string)words[w]!).Length;
            }
            var head = s[..idx].Trim();
            return [head, .. words.Skip(keepStart)];
        }
        var sp = Py.Str(sep);
        var result = new List<object?>();
        var end = s.Length;
        while (result.Count < maxSplit)
        {
            var k = end - sp.Length >= 0 ? s.LastIndexOf(sp, end - 1, end, StringComparison.Ordinal) : -1;
            if (k < 0) break;
            result.Insert(0, s[(k + sp.Length)..end]);
            end = k;
        }
        result.Insert(0, s[..end]);
        return result;
    }

    static string Capitalize(string s) => s.Length == 0 ? s : s[..1].ToUpperInvariant() + s[1..].ToLowerInvariant();

    /// <summary>Python's <c>str.title()</c>: a letter after a non-letter is upper-cased, other letters lower-cased.</summary>
    static string PyTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        var prevCased = false;
        foreach (var c in s)
        {
            sb.Append(prevCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            prevCased = char.IsLetter(c);
        }
        return sb.ToString();
    }
}
