namespace Sharpen.Algorithms;

/// <summary>
/// How a per-token loss <c>(B, A)</c> becomes one scalar. Every loss in <see cref="PolicyLosses"/> and
/// <see cref="ValueLosses"/> goes through <see cref="LossAggregator.Aggregate"/> with one of these modes.
/// </summary>
public enum LossAggregation
{
    /// <summary>Σ loss·mask / (global number of response tokens). DAPO's token-level loss (arXiv:2503.14476).</summary>
    TokenMean,
    /// <summary>Σ_b (Σ_t loss·mask / |o_b|) / (global number of sequences). The original GRPO objective (arXiv:2402.03300, Eq. 3).</summary>
    SeqMeanTokenMean,
    /// <summary>Σ loss·mask / (global number of sequences): each sequence contributes its token sum.</summary>
    SeqMeanTokenSum,
    /// <summary>Σ loss·mask / (global number of sequences · a constant such as the generation budget). Dr. GRPO (arXiv:2503.20783).</summary>
    SeqMeanTokenSumNorm,
}
