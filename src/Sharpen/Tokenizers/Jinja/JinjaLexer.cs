using System.Globalization;
using System.Text;

namespace Sharpen.Tokenizers.Jinja;

internal enum TokenKind { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, Eof }

/// <summary>One lexical token, with the 1-based line and column where it starts.</summary>
internal readonly record struct JinjaToken(TokenKind Kind, string Value, int Line, int Column)
{
    public bool Is(TokenKind kind, string value) => Kind == kind && Value == value;
    public bool IsName(string value) => Kind == TokenKind.Name && Value == value;
    public bool IsOp(string value) => Kind == TokenKind.Operator && Value == value;
    public override string ToString() => Kind switch
    {
        TokenKind.Eof => "end of template",
        TokenKind.Text => "template text",
        TokenKind.VarEnd => "'}}'",
        TokenKind.BlockEnd => "'%}'",
        TokenKind.String => $"string '{Value}'",
        _ => $"'{Value}'",
    };
}

/// <summary>
/// Splits a template into text and tag tokens the way jinja2's lexer does with the settings transformers uses
/// (<c>trim_blocks</c>, <c>lstrip_blocks</c>, <c>keep_trailing_newline=False</c>): newlines are normalised to <c>\n</c>,
/// one trailing newline is dropped, <c>{%-</c>/<c>-%}</c> strip all whitespace on that side, a block or comment tag alone
/// on its line loses the indentation before it (unless <c>{%+</c>) and the newline right after it (unless <c>+%}</c>).
/// </summary>
internal sealed class JinjaLexer
{
    static readonly string[] Operators = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"];

    readonly string _src;
    readonly string _name;
    readonly List<JinjaToken> _tokens = [];
    int _pos;

    JinjaLexer(string source, string name)
    {
        var s = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (s.EndsWith('\n')) s = s[..^1];
        _src = s;
        _name = name;
    }

    public static List<JinjaToken> Tokenize(string source, string name)
    {
        var lexer = new JinjaLexer(source, name);
        lexer.Run();
        return lexer._tokens;
    }

    (int Line, int Column) Where(int pos)
    {
        int line = 1, col = 1;
        for (var i = 0; i < pos && i < _src.Length; i++)
        {
            if (_src[i] == '\n') { line++; col = 1; }
            else col++;
        }
        return (line, col);
    }

    JinjaTemplateException Error(int pos, string message)
    {
        var (l, c) = Where(pos);
        return new JinjaTemplateException(_name, l, c, message);
    }

    void Run()
    {
        var lineStarting = true;   // the previous token's raw text ended with a newline (or we are at the start)
        var stripNextText = false; // the previous tag ended with '-'
        while (_pos < _src.Length)
        {
            var open = FindOpen(_pos);
            var textEnd = open < 0 ? _src.Length : open;
            var text = _src[_pos..textEnd];
            if (stripNextText) text = text.TrimStart(PyWhitespace);
            if (open < 0)
            {
                AddText(text, _pos);
                break;
            }
            var kind = _src[open + 1]; // '{', '%' or '#'
            var sign = open + 2 < _src.Length ? _src[open + 2] : '\0';
            if (sign == '-') text = text.TrimEnd(PyWhitespace);
            else if (sign != '+' && kind != '{')
            {
                // lstrip_blocks: drop spaces and tabs between the start of the line and the tag.
                var lineStart = text.LastIndexOf('\n') + 1;
                if ((lineStart > 0 || lineStarting) && lineStart < text.Length && text.AsSpan(lineStart).IndexOfAnyExcept(PyWhitespace) < 0)
                    text = text[..lineStart];
            }
            AddText(text, _pos);
            var tagStart = open;
            _pos = open + 2 + (sign is '-' or '+' ? 1 : 0);
            string raw;
            if (kind == '#')
            {
                var close = _src.IndexOf("#}", _pos, StringComparison.Ordinal);
                if (close < 0) throw Error(tagStart, "comment '{#' is never closed with '#}'");
                stripNextText = close > _pos && _src[close - 1] == '-';
                _pos = close + 2;
                if (!stripNextText && _pos < _src.Length && _src[_pos] == '\n') _pos++;
            }
            else
            {
                var isBlock = kind == '%';
                var (l, c) = Where(tagStart);
                _tokens.Add(new JinjaToken(isBlock ? TokenKind.BlockBegin : TokenKind.VarBegin, isBlock ? "{%" : "{{", l, c));
                stripNextText = LexTag(isBlock ? '%' : '}', tagStart, out var keepNewline);
                if (isBlock && !stripNextText && !keepNewline && _pos < _src.Length && _src[_pos] == '\n') _pos++;
                if (isBlock && IsRawBlock()) LexRaw(ref stripNextText, tagStart);
            }
            raw = _src[tagStart.._pos];
            lineStarting = raw.EndsWith('\n');
        }
        var (el, ec) = Where(_src.Length);
        _tokens.Add(new JinjaToken(TokenKind.Eof, "", el, ec));
    }

    static readonly char[] PyWhitespace = [' ', '\t', '\n', '\r', '\f', '\v'];

    int FindOpen(int from)
    {
        for (var i = _src.IndexOf('{', from); i >= 0 && i + 1 < _src.Length; i = _src.IndexOf('{', i + 1))
            if (_src[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    void AddText(string text, int pos)
    {
        if (text.Length == 0) return;
        var (l, c) = Where(pos);
        _tokens.Add(new JinjaToken(TokenKind.Text, text, l, c));
    }

    bool IsRawBlock()
    {
        var n = _tokens.Count;
        return n >= 3 && _tokens[n - 3].Kind == TokenKind.BlockBegin && _tokens[n - 2].IsName("raw") && _tokens[n - 1].Kind == TokenKind.BlockEnd;
    }

    /// <summary>After <c>{% raw %}</c>: everything up to <c>{% endraw %}</c> is text.</summary>
    void LexRaw(ref bool stripNextText, int tagStart)
    {
        _tokens.RemoveRange(_tokens.Count - 3, 3);
        var search = _pos;
        while (true)
        {
            var open = _src.IndexOf("{%", search, StringComparison.Ordinal);
            if (open < 0) throw Error(tagStart, "'{% raw %}' is never closed with '{% endraw %}'");
            var p = open + 2;
            var minus = p < _src.Length && _src[p] == '-';
            if (minus || (p < _src.Length && _src[p] == '+')) p++;
            while (p < _src.Length && _src[p] is ' ' or '\t' or '\n') p++;
            if (string.CompareOrdinal(_src, p, "endraw", 0, 6) != 0) { search = open + 2; continue; }
            p += 6;
            while (p < _src.Length && _src[p] is ' ' or '\t' or '\n') p++;
            var endMinus = p < _src.Length && _src[p] == '-';
            if (endMinus || (p < _src.Length && _src[p] == '+')) p++;
            if (string.CompareOrdinal(_src, p, "%}", 0, 2) != 0) throw Error(open, "'endraw' tag is not closed with '%}'");
            var text = _src[_pos..open];
            if (stripNextText) text = text.TrimStart(PyWhitespace);
            if (minus) text = text.TrimEnd(PyWhitespace);
            AddText(text, _pos);
            _pos = p + 2;
            stripNextText = endMinus;
            if (!endMinus && _pos < _src.Length && _src[_pos] == '\n') _pos++;
            return;
        }
    }

    /// <summary>Lexes the inside of a <c>{{ }}</c> or <c>{% %}</c>; returns whether it closed with <c>-</c>.</summary>
    bool LexTag(char closer, int tagStart, out bool keepNewline)
    {
        keepNewline = false;
        var depth = 0;
        while (true)
        {
            while (_pos < _src.Length && char.IsWhiteSpace(_src[_pos])) _pos++;
            if (_pos >= _src.Length) throw Error(tagStart, closer == '%' ? "block tag '{%' is never closed with '%}'" : "'{{' is never closed with '}}'");
            var (l, c) = Where(_pos);
            var endKind = closer == '%' ? TokenKind.BlockEnd : TokenKind.VarEnd;
            var endText = closer == '%' ? "%}" : "}}";
            if (depth == 0 || closer == '%')
            {
                foreach (var (prefix, strip, keep) in new[] { ("-", true, false), ("+", false, true), ("", false, false) })
                {
                    if (string.CompareOrdinal(_src, _pos, prefix + endText, 0, prefix.Length + 2) != 0) continue;
                    if (prefix == "+" && closer != '%') continue;
                    _tokens.Add(new JinjaToken(endKind, endText, l, c));
                    _pos += prefix.Length + 2;
                    keepNewline = keep;
                    return strip;
                }
            }
            var ch = _src[_pos];
            if (ch == '\'' || ch == '"')
            {
                _tokens.Add(new JinjaToken(TokenKind.String, ReadString(), l, c));
                continue;
            }
            if (char.IsAsciiDigit(ch))
            {
                var start = _pos;
                while (_pos < _src.Length && (char.IsAsciiDigit(_src[_pos]) || _src[_pos] == '_')) _pos++;
                var isFloat = false;
                if (_pos + 1 < _src.Length && _src[_pos] == '.' && char.IsAsciiDigit(_src[_pos + 1]))
                {
                    isFloat = true;
                    _pos++;
                    while (_pos < _src.Length && (char.IsAsciiDigit(_src[_pos]) || _src[_pos] == '_')) _pos++;
                }
                if (_pos < _src.Length && _src[_pos] is 'e' or 'E')
                {
                    var p = _pos + 1;
                    if (p < _src.Length && _src[p] is '+' or '-') p++;
                    if (p < _src.Length && char.IsAsciiDigit(_src[p]))
                    {
                        isFloat = true;
                        _pos = p;
                        while (_pos < _src.Length && char.IsAsciiDigit(_src[_pos])) _pos++;
                    }
                }
                _tokens.Add(new JinjaToken(isFloat ? TokenKind.Float : TokenKind.Integer, _src[start.._pos].Replace("_", ""), l, c));
                continue;
            }
            if (char.IsAsciiLetter(ch) || ch == '_')
            {
                var start = _pos;
                while (_pos < _src.Length && (char.IsAsciiLetterOrDigit(_src[_pos]) || _src[_pos] == '_')) _pos++;
                _tokens.Add(new JinjaToken(TokenKind.Name, _src[start.._pos], l, c));
                continue;
            }
            var op = Operators.FirstOrDefault(o => string.CompareOrdinal(_src, _pos, o, 0, o.Length) == 0)
                     ?? throw Error(_pos, $"unexpected character '{ch}' inside a tag");
            if (op is "(" or "[" or "{") depth++;
            else if (op is ")" or "]" or "}") depth--;
            _tokens.Add(new JinjaToken(TokenKind.Operator, op, l, c));
            _pos += op.Length;
        }
    }

    /// <summary>A quoted string literal with Python's escapes (\n, \t, \\, \', \", \xNN, \uNNNN, \UNNNNNNNN).</summary>
    string ReadString()
    {
        var quote = _src[_pos];
        var start = _pos++;
        var sb = new StringBuilder();
        while (true)
        {
            if (_pos >= _src.Length) throw Error(start, "string literal is never closed");
            var ch = _src[_pos++];
            if (ch == quote) return sb.ToString();
            if (ch != '\\' || _pos >= _src.Length) { sb.Append(ch); continue; }
            var e = _src[_pos++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case '0': sb.Append('\0'); break;
                case '\n': break;
                case 'x': sb.Append(Hex(2, start)); break;
                case 'u': sb.Append(Hex(4, start)); break;
                case 'U': sb.Append(Hex(8, start)); break;
                default: sb.Append('\\').Append(e); break;
            }
        }
    }

    string Hex(int digits, int start)
    {
        if (_pos + digits > _src.Length || !int.TryParse(_src.AsSpan(_pos, digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var cp))
            throw Error(start, $"bad \\{(digits == 2 ? "x" : digits == 4 ? "u" : "U")} escape in a string literal");
        _pos += digits;
        return char.ConvertFromUtf32(cp);
    }
}
