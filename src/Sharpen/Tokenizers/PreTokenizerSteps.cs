using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Sharpen.Tokenizers;

/// <summary>What a regex split keeps (Hugging Face's <c>SplitDelimiterBehavior</c>; only the two we support).</summary>
internal enum SplitBehavior
{
    /// <summary>Matches and the text between them each become pieces.</summary>
    Isolated,
    /// <summary>Matches are dropped; the text between them becomes pieces.</summary>
    Removed,
    /// <summary>Each match is joined to the piece before it.</summary>
    MergedWithPrevious,
    /// <summary>Each match is joined to the piece after it.</summary>
    MergedWithNext,
}

/// <summary>One regex split of a Hugging Face pre-tokenizer (a <c>Split</c>, or the regex of <c>ByteLevel</c>).</summary>
internal sealed class RegexSplit(Regex regex, SplitBehavior behavior, bool invert, string? file = null, string? key = null) : IPreTokenizerStep
{
    /// <summary>How long a pattern from a tokenizer file may take on one piece of text before it is an error (a pattern with
    /// catastrophic backtracking would otherwise hang the run).</summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(2);

    /// <summary>The regex of Hugging Face's ByteLevel pre-tokenizer (GPT-2's), used when <c>use_regex</c> is true.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public static RegexSplit Gpt2 { get; } = new(Create(Gpt2Pattern, trusted: true), SplitBehavior.Isolated, invert: false);

    public static Regex Create(string pattern, bool trusted = false) =>
        new(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled, trusted ? Regex.InfiniteMatchTimeout : MatchTimeout);

    /// <summary>Splits <paramref name="piece"/> and appends the resulting non-empty pieces.</summary>
    public void Apply(string piece, bool first, List<string> output) => Apply(piece, output);

    /// <summary>Splits <paramref name="piece"/> and appends the resulting non-empty pieces.</summary>
    public void Apply(string piece, List<string> output)
    {
        try { ApplyUnguarded(piece, output); }
        catch (RegexMatchTimeoutException e)
        {
            throw new TokenizerFileException(file ?? "tokenizer.json", key ?? "pre_tokenizer", $"the Split pattern '{e.Pattern}' took longer than " +
                $"{e.MatchTimeout.TotalSeconds:0.#} s on a {piece.Length}-character piece of text (catastrophic backtracking?); simplify the pattern", e);
        }
    }

    void ApplyUnguarded(string piece, List<string> output)
    {
        // Spans of the piece, each marked as a match (of the pattern, or of its complement when inverted) or not.
        var spans = new List<(int Start, int End, bool IsMatch)>();
        var at = 0;
        foreach (var (start, length) in Matches(regex, piece))
        {
            if (length == 0) continue;
            if (start > at) spans.Add((at, start, invert));
            spans.Add((start, start + length, !invert));
            at = start + length;
        }
        if (at < piece.Length) spans.Add((at, piece.Length, invert));

        switch (behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var (s, e, _) in spans) output.Add(piece[s..e]);
                break;
            case SplitBehavior.Removed:
                foreach (var (s, e, m) in spans) if (!m) output.Add(piece[s..e]);
                break;
            case SplitBehavior.MergedWithPrevious:
            {
                var from = 0;
                foreach (var (_, e, m) in spans)
                    if (m) { output.Add(piece[from..e]); from = e; }
                if (from < piece.Length) output.Add(piece[from..]);
                break;
            }
            case SplitBehavior.MergedWithNext:
            {
                var from = 0;
                foreach (var (s, _, m) in spans)
                    if (m && s > from) { output.Add(piece[from..s]); from = s; }
                if (from < piece.Length) output.Add(piece[from..]);
                break;
            }
        }
    }

    /// <summary>
    /// Regex matches as (start, length) in <paramref name="text"/>, with code points above U+FFFF treated as single
    /// characters. .NET matches UTF-16 units, so a letter such as 𝐀 (two surrogates, category Cs each) would fail
    /// <c>\p{L}</c>, while Hugging Face's Rust regex sees one letter. We match on a copy where each such code point is
    /// replaced by one BMP character of the same Unicode category, then map positions back.
    /// </summary>
    internal static IEnumerable<(int Start, int Length)> Matches(Regex regex, string text)
    {
        if (!text.AsSpan().ContainsAnyInRange('\uD800', '\uDFFF'))
        {
            foreach (Match m in regex.Matches(text)) yield return (m.Index, m.Length);
            yield break;
        }
        var copy = new StringBuilder(text.Length);
        var origin = new List<int>(text.Length + 1); // origin[i] = index in text of copy[i]
        for (var i = 0; i < text.Length; i++)
        {
            origin.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                copy.Append(StandIn(CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1]))));
                i++;
            }
            else copy.Append(text[i]);
        }
        origin.Add(text.Length);
        foreach (Match m in regex.Matches(copy.ToString()))
            yield return (origin[m.Index], origin[m.Index + m.Length] - origin[m.Index]);
    }

    static readonly char[] StandIns = BuildStandIns();

    static char StandIn(UnicodeCategory category) => StandIns[(int)category];

    /// <summary>For each category, the first non-ASCII BMP character of that category (never a pattern literal).</summary>
    static char[] BuildStandIns()
    {
        var table = new char[32];
        Array.Fill(table, '\uFFFD');
        var found = new bool[32];
        for (int c = 0xA0; c <= 0xFFFF; c++)
        {
            if (c is >= 0xD800 and <= 0xDFFF) continue;
            var cat = (int)CharUnicodeInfo.GetUnicodeCategory((char)c);
            if (!found[cat]) { found[cat] = true; table[cat] = (char)c; }
        }
        return table;
    }
}

/// <summary>One step of a Hugging Face pre-tokenizer: turns a piece into smaller pieces.</summary>
internal interface IPreTokenizerStep
{
    /// <param name="piece">The text to split.</param>
    /// <param name="first">The piece starts at offset 0 of the original text (Metaspace's <c>prepend_scheme: first</c>).</param>
    /// <param name="output">Receives the pieces.</param>
    void Apply(string piece, bool first, List<string> output);
}

/// <summary>Hugging Face's <c>ByteLevel</c> pre-tokenizer: optionally prefixes each piece with a space, then
/// (when <c>use_regex</c>) splits it with GPT-2's regex. The byte mapping itself happens after all steps.</summary>
internal sealed class ByteLevelStep(bool addPrefixSpace, bool useRegex) : IPreTokenizerStep
{
    public void Apply(string piece, bool first, List<string> output)
    {
        if (addPrefixSpace && !piece.StartsWith(' ')) piece = " " + piece;
        if (useRegex) RegexSplit.Gpt2.Apply(piece, output);
        else output.Add(piece);
    }
}

/// <summary>A Hugging Face pre-tokenizer as steps applied in order (a <c>Sequence</c>, or a single step).</summary>
internal sealed class PreTokenizerSteps(IReadOnlyList<IPreTokenizerStep> steps)
{
    /// <param name="text">A stretch of normalized text between added tokens.</param>
    /// <param name="atStart">The stretch begins the original text (no added token or other text before it).</param>
    public List<string> Split(string text, bool atStart = true)
    {
        var pieces = new List<string> { text };
        foreach (var step in steps)
        {
            var next = new List<string>(pieces.Count * 2);
            for (var i = 0; i < pieces.Count; i++) step.Apply(pieces[i], atStart && i == 0, next);
            pieces = next;
        }
        pieces.RemoveAll(p => p.Length == 0);
        return pieces;
    }
}

/// <summary>When <c>prepend_scheme</c> adds the replacement character in front of a piece.</summary>
internal enum PrependScheme
{
    /// <summary>Every piece (SentencePiece's <c>add_dummy_prefix</c>).</summary>
    Always,
    /// <summary>Only the piece at the very start of the text (not after an added token).</summary>
    First,
    /// <summary>Never.</summary>
    Never,
}

/// <summary>
/// Hugging Face's <c>Metaspace</c> pre-tokenizer: spaces become the replacement character (<c>▁</c>), which is
/// prepended per <see cref="PrependScheme"/> unless the piece already starts with it; with <c>split</c>, the piece is
/// cut before every replacement character (each joined to the text after it).
/// </summary>
internal sealed class MetaspaceStep(char replacement, PrependScheme scheme, bool split) : IPreTokenizerStep
{
    public void Apply(string piece, bool first, List<string> output)
    {
        piece = piece.Replace(' ', replacement);
        if (piece.Length > 0 && piece[0] != replacement && (scheme == PrependScheme.Always || scheme == PrependScheme.First && first))
            piece = replacement + piece;
        if (!split) { output.Add(piece); return; }
        var from = 0;
        for (var i = 1; i < piece.Length; i++)
            if (piece[i] == replacement) { output.Add(piece[from..i]); from = i; }
        if (from < piece.Length) output.Add(piece[from..]);
    }
}
