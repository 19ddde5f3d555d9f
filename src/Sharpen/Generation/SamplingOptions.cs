namespace Sharpen.Generation;

/// <summary>
/// How the rollout engine samples. Defaults give plain ancestral sampling at temperature 1,
/// the distribution on-policy RL assumes.
/// </summary>
public sealed record SamplingOptions
{
    /// <summary>Softmax temperature; 0 means greedy (argmax).</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Keep only the K most likely tokens (0 = off).</summary>
    public int TopK { get; init; }
    /// <summary>Nucleus sampling: keep the smallest set of tokens whose probability reaches P (1 = off).</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Most tokens generated per sequence.</summary>
    public int MaxNewTokens { get; init; } = 64;
    /// <summary>Completions per prompt (G in GRPO). The prompt is encoded once and its KV cache repeated.</summary>
    public int SamplesPerPrompt { get; init; } = 1;
    /// <summary>Stop a sequence when its completion text contains any of these. The completion keeps the stop string.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    /// <summary>Stop a sequence at an end-of-sequence token (kept as the last completion token).</summary>
    public bool StopAtEos { get; init; } = true;
    /// <summary>Seed of the sampling generator: the same seed, prompts and model give the same samples.</summary>
    public long Seed { get; init; }
    /// <summary>Reuse keys/values of earlier positions (true) or recompute the whole sequence each step (false; for checks and benchmarks).</summary>
    public bool UseKvCache { get; init; } = true;
    /// <summary>Decode through the fast path (<see cref="Models.DecodeSession"/>: fused projections, grouped-query attention
    /// without key copies). False runs the model's general forward with a KV cache, the reference the fast path is tested
    /// against; it gives the same tokens up to float rounding.</summary>
    public bool FastDecode { get; init; } = true;
    /// <summary>H₂O KV eviction (<see cref="Models.KvBudget"/>): at most this many cached tokens per layer and KV head
    /// (null = keep all). The engine's log-probs are then those of the evicting decoder.</summary>
    public int? KvBudget { get; init; }
    /// <summary>With <see cref="KvBudget"/>: the most recent tokens always kept (null = half the budget, as in the paper).</summary>
    public int? KvRecent { get; init; }
    /// <summary>Most sequences (prompts × samples) run through the model at once; larger requests are split.</summary>
    public int MaxBatchSequences { get; init; } = 256;

    /// <summary>The H₂O budget these options ask for, or null.</summary>
    public Models.KvBudget? Budget => KvBudget is { } b ? new Models.KvBudget(b, KvRecent ?? Math.Max(1, b / 2)) : null;

    /// <summary>True when <see cref="Temperature"/> is 0.</summary>
    public bool Greedy => Temperature == 0;

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad option.</summary>
    public SamplingOptions Validate()
    {
        if (!(Temperature >= 0) || double.IsInfinity(Temperature)) throw new ArgumentException($"temperature must be ≥ 0, got {Temperature}");
        if (TopK < 0) throw new ArgumentException($"top_k must be ≥ 0, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top_p must be in (0, 1], got {TopP}");
        if (MaxNewTokens < 1) throw new ArgumentException($"max_new_tokens must be ≥ 1, got {MaxNewTokens}");
        if (SamplesPerPrompt < 1) throw new ArgumentException($"samples per prompt must be ≥ 1, got {SamplesPerPrompt}");
        if (MaxBatchSequences < 1) throw new ArgumentException($"max batch sequences must be ≥ 1, got {MaxBatchSequences}");
        if (StopStrings.Any(string.IsNullOrEmpty)) throw new ArgumentException("stop strings must not be empty");
        if (KvRecent is not null && KvBudget is null) throw new ArgumentException("kv_recent needs kv_budget");
        if (KvBudget is not null)
        {
            if (!UseKvCache || !FastDecode) throw new ArgumentException("kv_budget needs the KV cache and the fast decode path");
            Budget!.Validate();
        }
        return this;
    }
}

/// <summary>Why a sequence stopped.</summary>
public enum StopReason
{
    /// <summary>It produced an end-of-sequence token.</summary>
    Eos,
    /// <summary>Its text came to contain a stop string.</summary>
    StopString,
    /// <summary>It reached the token limit.</summary>
    MaxTokens,
}
