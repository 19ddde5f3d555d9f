using System.Text;

namespace Sharpen.Tokenizers;

/// <summary>
/// A Hugging Face <c>decoder</c> other than ByteLevel, as a chain of steps over the token strings (Hugging Face's
/// <c>decode_chain</c>): <c>Replace</c> (e.g. <c>▁</c> → space), <c>ByteFallback</c> (runs of <c>&lt;0xNN&gt;</c> tokens become
/// their UTF-8 text, or one U+FFFD per byte when invalid), <c>Fuse</c> (one string), <c>Strip</c> (cut leading/trailing
/// characters of each token) and <c>Metaspace</c>. The results are concatenated; with no decoder at all the tokens are
/// joined with spaces, as the Rust library does.
/// </summary>
internal sealed class TokenDecoder(IReadOnlyList<Func<List<string>, List<string>>> steps)
{
    /// <summary>No decoder in the file.</summary>
    public static TokenDecoder None { get; } = new([]);

    public bool IsNone => steps.Count == 0;

    public string Decode(List<string> tokens)
    {
        if (IsNone) return string.Join(' ', tokens);
        foreach (var step in steps) tokens = step(tokens);
        return string.Concat(tokens);
    }

    public static Func<List<string>, List<string>> Replace(string pattern, string content) =>
        tokens => tokens.ConvertAll(t => t.Replace(pattern, content, StringComparison.Ordinal));

    public static Func<List<string>, List<string>> Fuse() => tokens => [string.Concat(tokens)];

    public static Func<List<string>, List<string>> ByteFallback() => tokens =>
    {
        var output = new List<string>(tokens.Count);
        var bytes = new List<byte>();
        foreach (var t in tokens)
        {
            if (CharBpe.TryParseByteToken(t, out var b)) { bytes.Add(b); continue; }
            Flush();
            output.Add(t);
        }
        Flush();
        return output;

        void Flush()
        {
            if (bytes.Count == 0) return;
            try { output.Add(Strict.GetString(bytes.ToArray())); }
            catch (DecoderFallbackException) { for (var i = 0; i < bytes.Count; i++) output.Add("\uFFFD"); }
            bytes.Clear();
        }
    };

    static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static Func<List<string>, List<string>> Strip(char content, int start, int stop) => tokens => tokens.ConvertAll(t =>
    {
        var from = 0;
        while (from < start && from < t.Length && t[from] == content) from++;
        var to = t.Length;
        while (t.Length - to < stop && to > from && t[to - 1] == content) to--;
        return t[from..to];
    });

    /// <summary>Replacement character → space; in the first token it is dropped instead unless the scheme is never
    /// (every one of them, as the Rust library does).</summary>
    public static Func<List<string>, List<string>> Metaspace(char replacement, PrependScheme scheme) => tokens =>
    {
        var output = new List<string>(tokens.Count);
        for (var i = 0; i < tokens.Count; i++)
            output.Add(i == 0 && scheme != PrependScheme.Never
                ? tokens[i].Replace(replacement.ToString(), "", StringComparison.Ordinal)
                : tokens[i].Replace(replacement, ' '));
        return output;
    };
}
