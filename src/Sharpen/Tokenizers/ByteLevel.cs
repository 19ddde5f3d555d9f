using System.Text;

namespace Sharpen.Tokenizers;

/// <summary>
/// GPT-2's reversible byte ↔ printable-character table. Printable Latin-1 bytes (<c>!</c>..<c>~</c>,
/// <c>¡</c>..<c>¬</c>, <c>®</c>..<c>ÿ</c>) stand for themselves; the other 68 bytes (controls, space,
/// soft hyphen, ...) get U+0100, U+0101, ... in byte order, so a space becomes <c>Ġ</c> (U+0120).
/// </summary>
internal static class ByteLevel
{
    public static readonly char[] ByteToChar = BuildTable();
    static readonly Dictionary<char, byte> CharToByte = Enumerable.Range(0, 256).ToDictionary(b => ByteToChar[b], b => (byte)b);

    static char[] BuildTable()
    {
        var table = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[b] = (char)(printable ? b : next++);
        }
        return table;
    }

    /// <summary>The UTF-8 bytes of <paramref name="text"/>, one table character per byte.</summary>
    public static string Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        return string.Create(bytes.Length, bytes, static (span, b) =>
        {
            for (var i = 0; i < b.Length; i++) span[i] = ByteToChar[b[i]];
        });
    }

    /// <summary>Appends the bytes <paramref name="token"/> stands for. As in Hugging Face's ByteLevel decoder, a
    /// token with any character outside the table (an added token such as <c>"a b"</c>) contributes its own UTF-8.</summary>
    public static void AppendBytes(string token, List<byte> bytes)
    {
        foreach (var c in token)
        {
            if (!CharToByte.ContainsKey(c))
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(token));
                return;
            }
        }
        foreach (var c in token) bytes.Add(CharToByte[c]);
    }
}
