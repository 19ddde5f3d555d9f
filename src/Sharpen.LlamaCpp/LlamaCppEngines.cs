using Sharpen.Export;
using Sharpen.Generation;

namespace Sharpen.LlamaCpp;

/// <summary>
/// Adds the <c>llamacpp</c> engine to <see cref="RolloutEngines"/> (the core library cannot reference this project). Keys:
/// <c>threads</c>, <c>dtype</c> (f32 | f16 | q8_0), <c>context</c> (KV cells), <c>max_sequences</c>, <c>batch_size</c>,
/// <c>float32_cache</c>, <c>in_place_sync</c>, <c>work_dir</c> (where the GGUF files go).
/// </summary>
public static class LlamaCppEngines
{
    /// <summary>The option keys of the <c>llamacpp</c> engine.</summary>
    public static IReadOnlyList<string> Keys { get; } = ["threads", "dtype", "context", "max_sequences", "batch_size", "float32_cache", "in_place_sync", "work_dir"];

    /// <summary>Registers <c>llamacpp</c> (repeat calls are free).</summary>
    public static void Register() => RolloutEngines.Register(new RolloutEngineKind("llamacpp", Keys, c => new LlamaCppEngine(c.Policy, c.Tokenizer, Options(c.Options))));

    /// <summary>The engine options a <c>rollout:</c> section gives (defaults for absent keys).</summary>
    public static LlamaCppOptions Options(RolloutEngineOptions o)
    {
        var d = new LlamaCppOptions();
        var dtype = o.String("dtype") switch
        {
            null => d.DType,
            "f32" => GgufDType.F32,
            "f16" => GgufDType.F16,
            "q8_0" => GgufDType.Q8_0,
            var s => throw new ArgumentException($"rollout.dtype must be f32, f16 or q8_0, got '{s}'"),
        };
        var options = d with
        {
            DType = dtype, Threads = o.Int("threads") ?? d.Threads, ContextSize = o.Int("context") ?? d.ContextSize,
            MaxSequences = o.Int("max_sequences") ?? d.MaxSequences, BatchSize = o.Int("batch_size") ?? d.BatchSize,
            Float32Cache = o.Bool("float32_cache") ?? d.Float32Cache, InPlaceSync = o.Bool("in_place_sync") ?? d.InPlaceSync, WorkDirectory = o.String("work_dir"),
        };
        try { return options.Validate(); }
        catch (ArgumentException e) { throw new ArgumentException($"rollout: {e.Message}", e); }
    }
}
