using System.Text;
using System.Text.RegularExpressions;

namespace Sharpen.Tokenizers;

/// <summary>
/// A Hugging Face <c>normalizer</c> as steps applied in order: Unicode forms (NFC, NFD, NFKC, NFKD), <c>Prepend</c>
/// (SentencePiece's dummy prefix <c>▁</c>, added to non-empty text) and <c>Replace</c> (a string or regex, e.g. space →
/// <c>▁</c>), or a <c>Sequence</c> of them.
/// </summary>
internal sealed class TextNormalizer(IReadOnlyList<Func<string, string>> steps)
{
    public string Normalize(string text)
    {
        foreach (var step in steps) text = step(text);
        return text;
    }

    public static Func<string, string> Unicode(NormalizationForm form)
    {
        var n = new UnicodeNormalizer(form);
        return n.Normalize;
    }

    public static Func<string, string> Prepend(string prefix) => s => s.Length == 0 ? s : prefix + s;

    public static Func<string, string> ReplaceString(string pattern, string content) =>
        s => s.Replace(pattern, content, StringComparison.Ordinal);

    public static Func<string, string> ReplaceRegex(Regex regex, string content) =>
        s => regex.Replace(s, content.Replace("$", "$$", StringComparison.Ordinal));
}
