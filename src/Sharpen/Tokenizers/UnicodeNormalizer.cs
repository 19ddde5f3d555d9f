using System.Text;
using Microsoft.ML.Tokenizers;

namespace Sharpen.Tokenizers;

/// <summary>
/// Applies one or more Unicode normalization forms in order (for a Hugging Face <c>normalizer</c> of type
/// <c>NFC</c>, <c>NFD</c>, <c>NFKC</c>, <c>NFKD</c> or a <c>Sequence</c> of them). Qwen2 uses NFC.
/// </summary>
public sealed class UnicodeNormalizer : Normalizer
{
    readonly NormalizationForm[] _forms;

    /// <summary>Creates a normalizer that applies <paramref name="forms"/> left to right.</summary>
    public UnicodeNormalizer(params NormalizationForm[] forms) => _forms = [.. forms];

    /// <summary>The forms applied, in order.</summary>
    public IReadOnlyList<NormalizationForm> Forms => _forms;

    /// <inheritdoc/>
    public override string Normalize(string original)
    {
        ArgumentNullException.ThrowIfNull(original);
        var s = original;
        try
        {
            foreach (var f in _forms)
                if (!s.IsNormalized(f)) s = s.Normalize(f);
            return s;
        }
        catch (ArgumentException)
        {
            return original; // unpaired surrogates: not valid Unicode, so there is nothing to normalize
        }
    }

    /// <inheritdoc/>
    public override string Normalize(ReadOnlySpan<char> original) => Normalize(original.ToString());
}
