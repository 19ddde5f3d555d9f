namespace Sharpen.Tokenizers;

/// <summary>
/// A text tokenizer as the trainers see it: text to ids and back, the ids of the special tokens,
/// and a way to store itself next to a model checkpoint. Implemented by <see cref="CharTokenizer"/>
/// (an explicit alphabet, for toy tasks) and <see cref="HfTokenizer"/> (a Hugging Face byte-level
/// BPE <c>tokenizer.json</c>). Use <see cref="TokenizerFiles"/> to load either from a folder.
/// </summary>
public interface ITokenizer
{
    /// <summary>Largest id this tokenizer can produce plus one, counting added and special tokens.</summary>
    int VocabSize { get; }

    /// <summary>Id of the beginning-of-sequence token, or <c>null</c> when the tokenizer has none.</summary>
    int? BosTokenId { get; }

    /// <summary>Id of the end-of-sequence token (generation stops on it), or <c>null</c> when unknown.</summary>
    int? EosTokenId { get; }

    /// <summary>Id of the padding token, or <c>null</c> when the tokenizer has none.</summary>
    int? PadTokenId { get; }

    /// <summary>Turns <paramref name="text"/> into token ids.</summary>
    /// <param name="text">The text to encode.</param>
    /// <param name="addSpecialTokens">When true, adds what the tokenizer's post-processing says belongs around a
    /// single sequence (for example BOS for Llama 3; nothing for GPT-2 or Qwen2).</param>
    /// <returns>The ids, shape (T).</returns>
    IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true);

    /// <summary>Turns token ids back into text. Ids that have no token are skipped.</summary>
    /// <param name="ids">The ids to decode, shape (T).</param>
    /// <param name="skipSpecialTokens">When true, special tokens (BOS, EOS, padding, ...) are left out of the text.</param>
    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true);

    /// <summary>True when <paramref name="id"/> is a special token (skipped by <see cref="Decode"/> on request).</summary>
    bool IsSpecial(int id);

    /// <summary>The raw token string of <paramref name="id"/> (for byte-level BPE, in its byte-level alphabet,
    /// e.g. <c>"Ġthe"</c>), or <c>null</c> when no token has that id.</summary>
    string? TokenToString(int id);

    /// <summary>Writes this tokenizer's file(s) into <paramref name="directory"/> (created if missing), so that
    /// <see cref="TokenizerFiles.Load"/> on that folder gives back an equivalent tokenizer.</summary>
    void Save(string directory);
}
