namespace Sharpen.Tokenizers;

/// <summary>Finds and builds the right <see cref="ITokenizer"/> for a checkpoint folder or a command-line spec.</summary>
public static class TokenizerFiles
{
    /// <summary>Prefix of a character-tokenizer spec, e.g. <c>chars:0123456789+-*/=()., </c>.</summary>
    public const string CharsSpecPrefix = "chars:";

    /// <summary>
    /// Loads the tokenizer stored in <paramref name="directory"/>: <c>char_tokenizer.json</c> if present, else
    /// <c>tokenizer.json</c> (with <c>tokenizer_config.json</c> when present), else a SentencePiece <c>tokenizer.model</c>.
    /// </summary>
    /// <exception cref="FileNotFoundException">Neither file exists; the message names the folder and both files.</exception>
    /// <exception cref="TokenizerFileException">The file found is malformed or unsupported.</exception>
    public static ITokenizer Load(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (File.Exists(Path.Combine(directory, CharTokenizer.FileName))) return CharTokenizer.Load(directory);
        if (File.Exists(Path.Combine(directory, HfTokenizer.TokenizerFileName))) return HfTokenizer.Load(directory);
        if (File.Exists(Path.Combine(directory, HfTokenizer.SentencePieceModelFileName))) return HfTokenizer.Load(directory);
        throw new FileNotFoundException(
            $"No tokenizer in '{Path.GetFullPath(directory)}': looked for {CharTokenizer.FileName}, {HfTokenizer.TokenizerFileName} (+ {HfTokenizer.ConfigFileName}) and {HfTokenizer.SentencePieceModelFileName}.");
    }

    /// <summary>
    /// Builds a tokenizer from a spec: <c>chars:ALPHABET</c> for a <see cref="CharTokenizer"/> over ALPHABET
    /// (everything after the colon, spaces included), or a folder path for <see cref="Load"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The spec is neither form, or the alphabet is invalid.</exception>
    public static ITokenizer FromSpec(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.StartsWith(CharsSpecPrefix, StringComparison.Ordinal)) return CharTokenizer.Create(spec[CharsSpecPrefix.Length..]);
        if (Directory.Exists(spec)) return Load(spec);
        throw new ArgumentException(
            $"Tokenizer spec '{spec}' is not understood; expected '{CharsSpecPrefix}ALPHABET' or a folder containing {CharTokenizer.FileName} or {HfTokenizer.TokenizerFileName}.",
            nameof(spec));
    }
}
