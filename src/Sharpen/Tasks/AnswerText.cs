using System.Text;

namespace Sharpen.Tasks;

/// <summary>
/// Finds final answers in untrusted completions: linear scans over the text, no regular expressions,
/// ASCII digits only (other Unicode digits are not numbers here).
/// </summary>
internal static class AnswerText
{
    /// <summary>The marker before the final answer in the synthetic tasks' completions.</summary>
    public const string Marker = "answer:";

    /// <summary>
    /// The text after the last <c>answer:</c> (any case) up to the end of its line, trimmed of spaces
    /// and tabs; null when there is no marker or nothing follows it.
    /// </summary>
    public static string? FinalLine(string completion)
    {
        var at = completion.LastIndexOf(Marker, StringComparison.OrdinalIgnoreCase);
        if (at < 0) return null;
        var rest = completion.AsSpan(at + Marker.Length);
        var end = rest.IndexOfAny('\n', '\r');
        if (end >= 0) rest = rest[..end];
        rest = rest.Trim(" \t");
        return rest.IsEmpty ? null : rest.ToString();
    }

    /// <summary>
    /// Canonical form of a whole-number answer (<c>-</c>? digits, with optional <c>,</c> between digits):
    /// leading zeros dropped, <c>-0</c> as <c>0</c>. Null when the text is not such a number.
    /// </summary>
    public static string? CanonicalInteger(string text)
    {
        var s = text.AsSpan();
        var negative = s.Length > 0 && s[0] == '-';
        if (negative) s = s[1..];
        if (s.IsEmpty || !char.IsAsciiDigit(s[0]) || !char.IsAsciiDigit(s[^1])) return null;
        var sb = new StringBuilder(s.Length + 1);
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsAsciiDigit(s[i])) sb.Append(s[i]);
            else if (s[i] != ',' || !char.IsAsciiDigit(s[i + 1]) || !char.IsAsciiDigit(s[i - 1])) return null;
        }
        return Sign(negative, TrimLeadingZeros(sb.ToString()));
    }

    /// <summary>
    /// Every number in the text, in order, in canonical decimal form (see <see cref="Canonical"/>).
    /// A number is ASCII digits with optional <c>,</c> thousands separators (a comma counts only
    /// between digits), an optional fraction <c>.digits</c>, and an optional leading <c>-</c> when the
    /// minus does not follow a letter, digit or <c>)</c>. A <c>$</c> right before the digits is skipped.
    /// </summary>
    public static IEnumerable<string> Numbers(string text)
    {
        var i = 0;
        while (i < text.Length)
        {
            if (!char.IsAsciiDigit(text[i])) { i++; continue; }
            var start = i;
            var negative = IsSign(text, start);
            var intPart = new StringBuilder();
            while (i < text.Length)
            {
                if (char.IsAsciiDigit(text[i])) intPart.Append(text[i++]);
                else if (text[i] == ',' && i + 1 < text.Length && char.IsAsciiDigit(text[i + 1])) i++;
                else break;
            }
            var frac = "";
            if (i + 1 < text.Length && text[i] == '.' && char.IsAsciiDigit(text[i + 1]))
            {
                var f = ++i;
                while (i < text.Length && char.IsAsciiDigit(text[i])) i++;
                frac = text[f..i];
            }
            yield return Canonical(negative, intPart.ToString(), frac);
        }
    }

    /// <summary>The canonical form of a decimal: no leading zeros in the whole part, no trailing zeros in
    /// the fraction, no <c>.</c> without a fraction, no sign on zero. Equal values give equal strings.</summary>
    public static string Canonical(bool negative, string wholeDigits, string fractionDigits)
    {
        var whole = TrimLeadingZeros(wholeDigits);
        var frac = fractionDigits.TrimEnd('0');
        var body = frac.Length == 0 ? whole : whole + "." + frac;
        return Sign(negative, body);
    }

    static bool IsSign(string text, int digitAt)
    {
        var j = digitAt - 1;
        if (j >= 0 && text[j] == '$') j--;
        if (j < 0 || text[j] != '-') return false;
        return j == 0 || !(char.IsLetterOrDigit(text[j - 1]) || text[j - 1] == ')');
    }

    static string TrimLeadingZeros(string digits)
    {
        var t = digits.TrimStart('0');
        return t.Length == 0 ? "0" : t;
    }

    static string Sign(bool negative, string body) => negative && body != "0" ? "-" + body : body;
}
