using Sharpen.Export;

namespace Sharpen.LlamaCpp;

/// <summary>How <see cref="LlamaCppEngine"/> runs llama.cpp.</summary>
public sealed record LlamaCppOptions
{
    /// <summary>Weight storage of the exported GGUF. F32 reproduces the torch engine up to float rounding; F16/Q8_0 trade
    /// accuracy for speed and memory (the engine's log-probs then differ more from the trainer's).</summary>
    public GgufDType DType { get; init; } = GgufDType.F32;
    /// <summary>Threads llama.cpp computes with (prompt and step decode alike); default: what torch gets, SHARPEN_NUM_THREADS when
    /// it is set to a positive number, else all cores.</summary>
    public int Threads { get; init; } = DefaultThreads();

    /// <summary>SHARPEN_NUM_THREADS when it is a positive integer, else the number of cores (the torch runtime's rule).</summary>
    public static int DefaultThreads() =>
        Environment.GetEnvironmentVariable("SHARPEN_NUM_THREADS") is { } s && int.TryParse(s, out var n) && n > 0 ? n : Environment.ProcessorCount;
    /// <summary>Most KV cells of the one context over all its parallel sequences; each sequence has its own stream of
    /// (longest prompt + max new tokens) cells, so a round runs as many sequences as fit. The context is allocated for what
    /// a round needs, up to this.</summary>
    public int ContextSize { get; init; } = 16384;
    /// <summary>Most sequences decoded in parallel in the context; a larger request runs in several rounds.</summary>
    public int MaxSequences { get; init; } = 256;
    /// <summary>Most tokens submitted to one llama.cpp decode call.</summary>
    public int BatchSize { get; init; } = 2048;
    /// <summary>Keep the KV cache in float32 (true) rather than llama.cpp's default float16, so that f32 weights give the
    /// trainer's log-probs up to float rounding.</summary>
    public bool Float32Cache { get; init; } = true;
    /// <summary>After an update, write the new weights over the loaded (memory-mapped) GGUF file in place, so that llama.cpp's
    /// model and context are kept and only the weight bytes change; false: reload the model and re-create the context on every
    /// sync. Ignored (a full reload) for q8_0 or when the file is not mapped.</summary>
    public bool InPlaceSync { get; init; } = true;
    /// <summary>Folder for the GGUF files the engine writes (default: the system temp folder); each is deleted when replaced.</summary>
    public string? WorkDirectory { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad option.</summary>
    public LlamaCppOptions Validate()
    {
        if (Threads < 1) throw new ArgumentException($"llamacpp threads must be ≥ 1, got {Threads}");
        if (ContextSize < 16) throw new ArgumentException($"llamacpp context_size must be ≥ 16, got {ContextSize}");
        if (MaxSequences is < 1 or > 256) throw new ArgumentException($"llamacpp max_sequences must be in [1, 256], got {MaxSequences}");
        if (BatchSize < 1) throw new ArgumentException($"llamacpp batch_size must be ≥ 1, got {BatchSize}");
        return this;
    }
}
