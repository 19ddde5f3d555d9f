namespace Sharpen.Rewards;

/// <summary>How a completion is cut into the segments that fine-grained rewards score (FGAIF scores sub-sentences; step
/// rewards score reasoning steps).</summary>
public enum SegmentUnit
{
    /// <summary>Sentences: a run ends after '.', '!' or '?' followed by whitespace or the end, or at a line break.</summary>
    Sentence,
    /// <summary>Reasoning steps: one per non-empty line.</summary>
    Step,
}

/// <summary>Cuts a completion into segments as (start, end) character spans (end exclusive, trailing whitespace excluded).</summary>
public static class TextSegments
{
    /// <summary>The non-empty segments of <paramref name="text"/> in order; a text with no break is one segment; an empty text none.</summary>
    public static IReadOnlyList<(int Start, int End)> Split(string text, SegmentUnit unit)
    {
        ArgumentNullException.ThrowIfNull(text);
        var spans = new List<(int, int)>();
        int start = 0;
        void Close(int end)
        {
            int s = start, e = end;
            while (s < e && char.IsWhiteSpace(text[s])) s++;
            while (e > s && char.IsWhiteSpace(text[e - 1])) e--;
            if (e > s) spans.Add((s, e));
            start = end;
        }
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '\n') { Close(i + 1); continue; }
            if (unit == SegmentUnit.Sentence && c is '.' or '!' or '?' && (i + 1 == text.Length || char.IsWhiteSpace(text[i + 1])))
                Close(i + 1);
        }
        Close(text.Length);
        return spans;
    }
}
