using Sharpen.Generation;
using Sharpen.Tokenizers;

namespace Sharpen.Serving;

/// <summary>
/// The visible text of one sequence while it is generated, cut into the pieces a stream sends: each token adds what is
/// certain so far. Held back until the next token: an unfinished multi-byte character (byte-level BPE decodes it as U+FFFD)
/// and a tail that could be the start of a stop string (stop strings are never sent). On the last token the rest of the
/// visible text (<see cref="OpenAiProtocol.VisibleText(string, StopReason, IReadOnlyList{string})"/>) follows, so the pieces
/// add up to exactly the non-streamed answer.
/// </summary>
sealed class LiveText(ITokenizer tokenizer, IReadOnlyList<string> stops)
{
    readonly List<int> _ids = [];
    int _emitted;

    /// <summary>Length of the decoded text before the newest token (OpenAI's <c>text_offset</c>).</summary>
    public int Offset { get; private set; }

    /// <summary>Adds token <paramref name="id"/> (the last one when <paramref name="stop"/> is set) and returns the new piece (maybe empty).</summary>
    public string Add(int id, StopReason? stop)
    {
        Offset = _ids.Count == 0 ? 0 : tokenizer.Decode(_ids, skipSpecialTokens: true).Length;
        _ids.Add(id);
        var text = tokenizer.Decode(_ids, skipSpecialTokens: true);
        int end;
        if (stop is { } reason) end = OpenAiProtocol.VisibleText(text, reason, stops).Length;
        else
        {
            end = text.Length;
            while (end > 0 && text[end - 1] == '\uFFFD') end--;
            int hold = 0;
            foreach (var s in stops)
                for (int len = Math.Min(s.Length - 1, end); len > hold; len--)
                    if (text.AsSpan(end - len, len).SequenceEqual(s.AsSpan(0, len))) { hold = len; break; }
            end -= hold;
        }
        if (end <= _emitted) return "";
        var piece = text[_emitted..end];
        _emitted = end;
        return piece;
    }
}
