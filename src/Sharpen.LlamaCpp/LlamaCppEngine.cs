using LLama;
using LLama.Common;
using LLama.Native;
using Sharpen.Export;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;

namespace Sharpen.LlamaCpp;

/// <summary>
/// Rollouts from llama.cpp in process (LLamaSharp's CPU backend). The policy reaches llama.cpp as a GGUF file written by
/// <see cref="GgufExporter"/>; <see cref="SyncWeights"/> writes a new one and reloads. A request runs as parallel sequences of
/// one llama.cpp context with one KV stream per sequence (llama.cpp's non-unified cache), sized for what the round needs:
/// as many sequences as fit (<see cref="LlamaCppOptions.MaxSequences"/>, <see cref="LlamaCppOptions.ContextSize"/> cells in all),
/// each with room for its prompt and its completion, so every sequence attends over its own cells only. Each prompt is
/// decoded once into its first sample's stream and copied to its other samples' streams; then every step decodes one token
/// per unfinished sequence in one call. Sampling (temperature, top-k, top-p) happens here, on llama.cpp's raw logits, with
/// the same rules as the torch engine; the returned log-probs are the log-softmax of those raw logits (temperature 1) at
/// the sampled token.
/// </summary>
public sealed class LlamaCppEngine : IRolloutEngine, IDisposable
{
    readonly LlamaCppOptions _options;
    readonly ModelConfig _config;
    LLamaWeights? _weights;
    LLamaContext? _context;
    int _contextSequences, _contextCellsPerSequence;
    string? _path;

    /// <summary>Exports <paramref name="policy"/> to a temporary GGUF and loads it.</summary>
    public LlamaCppEngine(CausalLM policy, ITokenizer tokenizer, LlamaCppOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        Tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        _options = (options ?? new LlamaCppOptions()).Validate();
        _config = policy.Config;
        EosIds = _config.EosTokenIds.Concat(tokenizer.EosTokenId is { } e ? [e] : []).ToHashSet();
        LlamaCppRuntime.EnsureConfigured();
        SyncWeights(policy);
    }

    /// <inheritdoc/>
    public ITokenizer Tokenizer { get; }

    /// <summary>Ids that end a sequence: the model config's EOS ids and the tokenizer's EOS (as the torch engine).</summary>
    public IReadOnlySet<int> EosIds { get; }

    /// <summary>The GGUF file llama.cpp runs now.</summary>
    public string ModelPath => _path ?? throw new ObjectDisposedException(nameof(LlamaCppEngine));

    /// <summary>The shape of the llama.cpp context the last round ran in: parallel sequences and KV cells per sequence
    /// (0, 0 before the first request).</summary>
    public (int Sequences, int CellsPerSequence) ContextShape => (_contextSequences, _contextCellsPerSequence);

    /// <summary>Writes the policy's current weights (merged, with LoRA) to a new GGUF file and reloads llama.cpp from it.</summary>
    public void SyncWeights(CausalLM policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        if (policy.Config.VocabSize != _config.VocabSize || policy.Config.HiddenSize != _config.HiddenSize || policy.Config.NumHiddenLayers != _config.NumHiddenLayers)
            throw new ArgumentException("the policy's architecture differs from the one this engine was made for");
        var dir = _options.WorkDirectory ?? Path.GetTempPath();
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, $"sharpen-llamacpp-{Guid.NewGuid():N}.gguf");
        GgufExporter.Export(policy, Tokenizer, path, _options.DType);
        LLamaWeights weights;
        try
        {
            weights = LLamaWeights.LoadFromFile(Params(path, 1, 16));
        }
        catch (Exception e) when (e is LLama.Exceptions.LoadWeightsFailedException or LLama.Exceptions.RuntimeError)
        {
            File.Delete(path);
            throw new InvalidOperationException($"llama.cpp could not load {path}: {e.Message} {LlamaCppRuntime.TakeErrors()}", e);
        }
        if (weights.Vocab.Count is var vocab && vocab != _config.VocabSize)
        {
            weights.Dispose();
            File.Delete(path);
            throw new InvalidOperationException($"llama.cpp reads {vocab} tokens from {path}, expected {_config.VocabSize}");
        }
        ReleaseModel();
        (_weights, _path) = (weights, path);
    }

    ModelParams Params(string path, int sequences, int cellsPerSequence) => new(path)
    {
        // One KV stream per sequence (KVUnified = false): a sequence's attention covers its own cells, not every sequence's.
        ContextSize = (uint)(sequences * cellsPerSequence),
        SeqMax = (uint)sequences,
        BatchSize = (uint)_options.BatchSize,
        UBatchSize = (uint)Math.Min(_options.BatchSize, 512),
        Threads = _options.Threads,
        BatchThreads = _options.Threads,
        GpuLayerCount = 0,
        FlashAttention = false,
        KVUnified = false,
        TypeK = _options.Float32Cache ? GGMLType.GGML_TYPE_F32 : GGMLType.GGML_TYPE_F16,
        TypeV = _options.Float32Cache ? GGMLType.GGML_TYPE_F32 : GGMLType.GGML_TYPE_F16,
    };

    /// <summary>A context with at least <paramref name="sequences"/> streams of <paramref name="cellsPerSequence"/> cells: the
    /// current one when it is large enough (a larger context costs memory, not compute: attention covers the used cells), else a new one.</summary>
    LLamaContext Context(int sequences, int cellsPerSequence)
    {
        var weights = _weights ?? throw new ObjectDisposedException(nameof(LlamaCppEngine));
        if (_context is not null && _contextSequences >= sequences && _contextCellsPerSequence >= cellsPerSequence) return _context;
        _context?.Dispose();
        _context = null;
        // Whole blocks of 32 cells per sequence, so that small changes of the prompt length reuse the context.
        int cells = (cellsPerSequence + 31) / 32 * 32;
        try
        {
            _context = weights.CreateContext(Params(_path!, sequences, cells));
        }
        catch (Exception e) when (e is LLama.Exceptions.RuntimeError)
        {
            throw new InvalidOperationException($"llama.cpp could not create a context of {sequences} sequences × {cells} cells: {e.Message} {LlamaCppRuntime.TakeErrors()}", e);
        }
        (_contextSequences, _contextCellsPerSequence) = (sequences, cells);
        return _context;
    }

    /// <inheritdoc/>
    public IReadOnlyList<Rollout> Generate(IReadOnlyList<string> prompts, SamplingOptions options) =>
        Generate(prompts.Select(p => (IReadOnlyList<int>)Tokenizer.Encode(p)).ToList(), options);

    /// <summary>Generates <see cref="SamplingOptions.SamplesPerPrompt"/> completions for every prompt, ordered prompt by prompt.</summary>
    public IReadOnlyList<Rollout> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingOptions options)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        options.Validate();
        if (_weights is null) throw new ObjectDisposedException(nameof(LlamaCppEngine));
        int g = options.SamplesPerPrompt, maxNew = options.MaxNewTokens;
        for (int i = 0; i < prompts.Count; i++)
        {
            var pr = prompts[i];
            if (pr.Count == 0) throw new ArgumentException("a prompt encodes to no tokens");
            if (pr.Count + maxNew > _config.MaxPositionEmbeddings)
                throw new ArgumentException($"prompt {i} ({pr.Count} tokens) + max new tokens ({maxNew}) exceed max_position_embeddings ({_config.MaxPositionEmbeddings})");
            foreach (var id in pr)
                if (id < 0 || id >= _config.VocabSize) throw new ArgumentException($"prompt {i} has token id {id}, outside [0, {_config.VocabSize})");
        }

        if (g > _options.MaxSequences)
            throw new ArgumentException($"{g} samples per prompt exceed llama.cpp's max_sequences ({_options.MaxSequences})");
        var rng = new Random(unchecked((int)(options.Seed ^ (options.Seed >> 32))));
        var results = new List<Rollout>(prompts.Count * g);
        int seqLimit = Math.Max(g, Math.Min(_options.MaxSequences, options.MaxBatchSequences));
        int start = 0;
        while (start < prompts.Count)
        {
            // As many prompts as fit: their samples within the sequence limit, every sample's prompt + completion cells within the context.
            int count = 0, longest = 0;
            while (start + count < prompts.Count)
            {
                int need = Math.Max(longest, prompts[start + count].Count + maxNew);
                if ((count + 1) * g > seqLimit || (long)(count + 1) * g * need > _options.ContextSize) break;
                longest = need;
                count++;
            }
            if (count == 0)
                throw new ArgumentException($"prompt {start} needs {(long)g * (prompts[start].Count + maxNew)} KV cells ({g} samples × ({prompts[start].Count} prompt + {maxNew} new)), " +
                    $"more than the llama.cpp context holds ({_options.ContextSize}); raise context_size");
            results.AddRange(GenerateChunk(Context(count * g, longest), prompts, start, count, options, rng));
            start += count;
        }
        return results;
    }

    List<Rollout> GenerateChunk(LLamaContext context, IReadOnlyList<IReadOnlyList<int>> prompts, int start, int count, SamplingOptions o, Random rng)
    {
        int g = o.SamplesPerPrompt, n = count * g;
        context.NativeHandle.MemoryClear(true);
        var logits = new float[n][];

        // Prompt phase: each prompt into its first sample's stream, then copied to the streams of its other samples
        // (llama.cpp copies the stream's cells before the next decode).
        var prompt = new List<Entry>();
        for (int i = 0; i < count; i++)
        {
            var pr = prompts[start + i];
            for (int j = 0; j < pr.Count; j++) prompt.Add(new Entry(pr[j], j, i * g, j == pr.Count - 1));
        }
        Decode(context, prompt, logits);
        for (int i = 0; i < count; i++)
            for (int k = 1; k < g; k++)
            {
                context.NativeHandle.MemorySequenceCopy((LLamaSeqId)(i * g), (LLamaSeqId)(i * g + k), (LLamaPos)(-1), (LLamaPos)(-1));
                logits[i * g + k] = logits[i * g];
            }

        var tokens = new List<int>[n];
        var logps = new List<float>[n];
        var stop = new StopReason?[n];
        for (int s = 0; s < n; s++) { tokens[s] = new List<int>(o.MaxNewTokens); logps[s] = new List<float>(o.MaxNewTokens); }
        int maxStop = o.StopStrings.Count == 0 ? 0 : o.StopStrings.Max(x => x.Length);
        var next = new List<Entry>(n);
        for (int step = 0; step < o.MaxNewTokens; step++)
        {
            next.Clear();
            for (int s = 0; s < n; s++)
            {
                if (stop[s] is not null) continue;
                var row = logits[s];
                int tok = Sampler.Sample(row, o, rng);
                tokens[s].Add(tok);
                logps[s].Add(Sampler.LogSoftmaxAt(row, tok));
                if (o.StopAtEos && EosIds.Contains(tok)) stop[s] = StopReason.Eos;
                else if (maxStop > 0 && StopStringHit(tokens[s], o.StopStrings, maxStop)) stop[s] = StopReason.StopString;
                else if (step < o.MaxNewTokens - 1) next.Add(new Entry(tok, prompts[start + s / g].Count + tokens[s].Count - 1, s, true));
            }
            if (next.Count == 0) break;
            Decode(context, next, logits);
        }

        var results = new List<Rollout>(n);
        for (int s = 0; s < n; s++)
        {
            int promptIndex = start + s / g;
            var comp = tokens[s].ToArray();
            results.Add(new Rollout(promptIndex, s % g, prompts[promptIndex].ToArray(), comp, Tokenizer.Decode(comp, skipSpecialTokens: true),
                logps[s].ToArray(), stop[s] ?? StopReason.MaxTokens));
        }
        return results;
    }

    /// <summary>One token for llama.cpp: its id, position, the sequence whose stream it goes to, and whether its logits are wanted.</summary>
    readonly record struct Entry(int Token, int Pos, int Seq, bool Logits);

    /// <summary>Decodes <paramref name="entries"/> (each sequence's in position order) in calls of at most
    /// <see cref="LlamaCppOptions.BatchSize"/> tokens, and stores the logits of each entry that asks for them as its sequence's row.</summary>
    void Decode(LLamaContext context, List<Entry> entries, float[][] logits)
    {
        var batch = new LLamaBatch();
        var outputs = new List<(int Seq, int Slot)>();
        for (int at = 0; at < entries.Count; at += _options.BatchSize)
        {
            batch.Clear();
            outputs.Clear();
            for (int k = at; k < Math.Min(entries.Count, at + _options.BatchSize); k++)
            {
                var e = entries[k];
                int slot = batch.Add((LLamaToken)e.Token, (LLamaPos)e.Pos, (LLamaSeqId)e.Seq, e.Logits);
                if (e.Logits) outputs.Add((e.Seq, slot));
            }
            var result = context.NativeHandle.Decode(batch);
            if (result != DecodeResult.Ok)
                throw new InvalidOperationException($"llama.cpp decode failed ({result}) for {batch.TokenCount} tokens: {LlamaCppRuntime.TakeErrors()}");
            foreach (var (seq, slot) in outputs) logits[seq] = context.NativeHandle.GetLogitsIth(slot).ToArray();
        }
    }

    bool StopStringHit(List<int> tokens, IReadOnlyList<string> stops, int maxStop)
    {
        int take = Math.Min(tokens.Count, maxStop + 8);
        var tail = Tokenizer.Decode(tokens.GetRange(tokens.Count - take, take), skipSpecialTokens: true);
        foreach (var s in stops)
            if (tail.Contains(s, StringComparison.Ordinal)) return true;
        return false;
    }

    void ReleaseModel()
    {
        _context?.Dispose();
        _weights?.Dispose();
        if (_path is not null && File.Exists(_path)) File.Delete(_path);
        (_context, _weights, _path) = (null, null, null);
        (_contextSequences, _contextCellsPerSequence) = (0, 0);
    }

    /// <summary>Frees llama.cpp's model and context and deletes the GGUF file.</summary>
    public void Dispose() => ReleaseModel();
}
