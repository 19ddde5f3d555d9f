using Sharpen.Models;

namespace Sharpen.Search;

/// <summary>
/// A policy decorator that counts the inference FLOPs a search spends, as 2 · N · (tokens processed) with N the
/// parameters a forward pass multiplies by (<see cref="ForwardParametersOf"/>; Kaplan et al. 2020's C ≈ 2N per token, the
/// accounting Snell et al. 2024 use to trade model size against samples). Tokens processed = every request's context
/// (prompt + prefix, tokenized as the engine tokenizes it) once per requested continuation, plus every generated token.
/// Departures: the attention score term (≈ 4·layers·d·position per token, a few percent at our 96-token contexts) is
/// left out, and the last generated token of a row, which is sampled but never fed back, is counted as processed.
/// </summary>
public sealed class FlopCountingPolicy(ISearchPolicy inner, Func<string, int> contextTokens, long forwardParameters) : ISearchPolicy
{
    /// <inheritdoc />
    public int MaxStepTokens => inner.MaxStepTokens;
    /// <inheritdoc />
    public int MaxTotalTokens => inner.MaxTotalTokens;
    /// <summary>N: parameters multiplied per token.</summary>
    public long ForwardParameters { get; } = forwardParameters > 0 ? forwardParameters : throw new ArgumentOutOfRangeException(nameof(forwardParameters), "must be > 0");
    /// <summary>Context tokens (prompt + prefix) counted so far, once per continuation.</summary>
    public long ContextTokens { get; private set; }
    /// <summary>Generated tokens counted so far.</summary>
    public long GeneratedTokens { get; private set; }
    /// <summary>2 · N · (context + generated tokens).</summary>
    public double Flops => 2.0 * ForwardParameters * (ContextTokens + GeneratedTokens);

    /// <summary>Forgets the counts.</summary>
    public void Reset() => (ContextTokens, GeneratedTokens) = (0, 0);

    /// <summary>
    /// Parameters a forward pass multiplies by: all of them except the input embedding table, which is a lookup
    /// (when the output head is tied to it, the head's matmul uses it and it counts once).
    /// </summary>
    public static long ForwardParametersOf(ModelConfig c) =>
        c.ParameterCount() - (c.TieWordEmbeddings ? 0 : (long)c.VocabSize * c.HiddenSize);

    /// <inheritdoc />
    public IReadOnlyList<IReadOnlyList<Continuation>> Sample(IReadOnlyList<ContinuationRequest> requests, long seed, SearchMeter meter)
    {
        long before = meter.GeneratedTokens;
        var result = inner.Sample(requests, seed, meter);
        GeneratedTokens += meter.GeneratedTokens - before;
        foreach (var r in requests) ContextTokens += (long)r.Count * contextTokens(r.Prompt + r.Prefix);
        return result;
    }
}
