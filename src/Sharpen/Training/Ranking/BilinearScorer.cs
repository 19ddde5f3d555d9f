using TorchSharp;
using static TorchSharp.torch;

namespace Sharpen.Training.Ranking;

/// <summary>
/// The score of a candidate for a query, s(q, c) = f(q)ᵀ W f(c), over fixed feature vectors (word or character
/// counts); W starts at zero, so the first Plackett–Luce policy is uniform over the candidates. PromptPG scores with a
/// learned layer over a frozen encoder's embeddings; here the "encoder" is a bag of tokens and the layer is W.
/// </summary>
public sealed class BilinearScorer : IDisposable
{
    /// <summary>A scorer over <paramref name="features"/>-dimensional feature vectors.</summary>
    public BilinearScorer(int features)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(features);
        Weight = new TorchSharp.Modules.Parameter(zeros(features, features, ScalarType.Float32));
    }

    /// <summary>W (F, F).</summary>
    public TorchSharp.Modules.Parameter Weight { get; }

    /// <summary>Scores (B, N) of candidates (B, N, F) for queries (B, F).</summary>
    public Tensor Scores(Tensor queries, Tensor candidates) =>
        einsum("bf,fg,bng->bn", queries, Weight, candidates);

    /// <inheritdoc />
    public void Dispose() => Weight.Dispose();
}
