namespace Sharpen.Tokenizers;

/// <summary>
/// A tokenizer file is malformed, misses a key, or asks for something Sharpen does not support.
/// The message names the file, the key (a dotted JSON path) and what was expected.
/// </summary>
public sealed class TokenizerFileException : FormatException
{
    /// <summary>Creates the exception; the message becomes "<c>file: 'key': problem</c>".</summary>
    /// <param name="filePath">The file that was being read.</param>
    /// <param name="key">The dotted JSON path of the offending key, e.g. <c>model.vocab</c>.</param>
    /// <param name="problem">What is wrong and what was expected.</param>
    /// <param name="inner">The underlying error, if any.</param>
    public TokenizerFileException(string filePath, string key, string problem, Exception? inner = null)
        : base($"{filePath}: '{key}': {problem}", inner)
    {
        FilePath = filePath;
        Key = key;
    }

    /// <summary>The file that was being read.</summary>
    public string FilePath { get; }

    /// <summary>The dotted JSON path of the offending key.</summary>
    public string Key { get; }
}
