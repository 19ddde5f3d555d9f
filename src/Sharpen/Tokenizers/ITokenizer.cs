namespace Sharpen.Tokenizers;

/// <summary>One interface for the character tokenizer and Hugging Face tokenizer.json.</summary>
public interface ITokenizer
{
    int VocabSize { get; }
    int? BosTokenId { get; }
    int? EosTokenId { get; }
    int? PadTokenId { get; }
    IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true);
    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true);
    bool IsSpecial(int id);
    string? TokenToString(int id);
    void Save(string directory);
}
