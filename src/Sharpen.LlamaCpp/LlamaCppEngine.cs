using System.Diagnostics;
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

    /// <summary>Where the engine's time went since it was made (cumulative; the bench divides by iterations).</summary>
    public LlamaCppTimings Timings { get; } = new();

    /// <summary>
    /// Writes the policy's current weights (merged, with LoRA) to a GGUF file and makes llama.cpp run them. When llama.cpp
    /// maps the loaded file (its default load mode) and the new file has the same layout (same length: same architecture,
    /// tokenizer and dtype), the new bytes are written over the mapped file in place: llama.cpp's CPU tensors point into that
    /// shared mapping, so the model, its context and the context's compute buffers stay as they are and only the weight bytes
    /// change (<see cref="LlamaCppOptions.InPlaceSync"/>). Otherwise (the first load, q8_0, whose tensors llama.cpp may repack
    /// into its own buffers, or a file that is not mapped) the model is reloaded from a new file and the context re-created.
    /// </summary>
    public void SyncWeights(CausalLM policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        var c = policy.Config;
        if (c.VocabSize != _config.VocabSize || c.HiddenSize != _config.HiddenSize || c.NumHiddenLayers != _config.NumHiddenLayers
            || c.IntermediateSize != _config.IntermediateSize || c.NumAttentionHeads != _config.NumAttentionHeads
            || c.NumKeyValueHeads != _config.NumKeyValueHeads || c.ModelType != _config.ModelType || c.TieWordEmbeddings != _config.TieWordEmbeddings)
            throw new ArgumentException("the policy's architecture differs from the one this engine was made for");
        var dir = _options.WorkDirectory ?? Path.GetTempPath();
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, $"sharpen-llamacpp-{Guid.NewGuid():N}.gguf");
        var sw = Stopwatch.StartNew();
        GgufExporter.Export(policy, Tokenizer, path, _options.DType);
        Timings.ExportSeconds += sw.Elapsed.TotalSeconds;
        sw.Restart();
        if (_weights is not null && _path is not null && CanRewriteInPlace(path, _path))
        {
            try { Overwrite(path, _path); }
            finally { File.Delete(path); }
            Timings.InPlaceSeconds += sw.Elapsed.TotalSeconds;
            Timings.InPlaceSyncs++;
            return;
        }
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
        Timings.LoadSeconds += sw.Elapsed.TotalSeconds;
        Timings.Reloads++;
    }

    /// <summary>The in-place rewrite is safe: asked for, not q8_0, the same file length, and (where the OS lists its mappings)
    /// the loaded file mapped into this process.</summary>
    bool CanRewriteInPlace(string fresh, string loaded)
    {
        if (!_options.InPlaceSync || _options.DType == GgufDType.Q8_0 || !NativeApi.llama_supports_mmap()) return false;
        if (new FileInfo(fresh).Length != new FileInfo(loaded).Length) return false;
        const string maps = "/proc/self/maps";
        if (!File.Exists(maps)) return true;
        var full = Path.GetFullPath(loaded);
        return File.ReadLines(maps).Any(l => l.EndsWith(full, StringComparison.Ordinal));
    }

    /// <summary>Copies <paramref name="fresh"/>'s bytes over <paramref name="loaded"/> without truncating it (a mapped file
    /// must never shrink under its mapping).</summary>
    static void Overwrite(string fresh, string loaded)
    {
        using var src = new FileStream(fresh, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        using var dst = new FileStream(loaded, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1 << 20);
        src.CopyTo(dst);
        dst.Flush();
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
        LoadMode = LLamaLoadMode.MemoryMap,   // the CPU tensors point into the mapped file (SyncWeights rewrites it in place)
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
        var sw = Stopwatch.StartNew();
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
        Timings.ContextSeconds += sw.Elapsed.TotalSeconds;
        Timings.Contexts++;
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
        var kv = context.NativeHandle;
        kv.MemoryClear(true);
        var logits = new float[n][];

        // Sequence s (sample s % g of prompt s / g) runs in KV stream slotOf[s]. llama.cpp's non-unified cache splits a decode
        // call into one micro-batch per run of consecutive stream ids, so the live sequences are kept in streams 0..L-1: prompts
        // go to streams 0..count-1, their other samples right after, and a finished sequence's stream is refilled with the
        // highest live one (a stream copy) instead of leaving a gap that would split every later step into more micro-batches.
        var slotOf = new int[n];
        var seqAt = new int[n];
        for (int i = 0; i < count; i++)
            for (int k = 0; k < g; k++)
                slotOf[i * g + k] = k == 0 ? i : count + i * (g - 1) + k - 1;
        for (int s = 0; s < n; s++) seqAt[slotOf[s]] = s;

        // Prompt phase: each prompt into its first sample's stream, then copied to the streams of its other samples
        // (llama.cpp copies the stream's cells before the next decode).
        var prompt = new List<Entry>();
        for (int i = 0; i < count; i++)
        {
            var pr = prompts[start + i];
            for (int j = 0; j < pr.Count; j++) prompt.Add(new Entry(pr[j], j, i, i * g, j == pr.Count - 1));
        }
        var sw = Stopwatch.StartNew();
        Decode(context, prompt, logits);
        Timings.PromptSeconds += sw.Elapsed.TotalSeconds;
        Timings.PromptTokens += prompt.Count;
        sw.Restart();
        for (int i = 0; i < count; i++)
            for (int k = 1; k < g; k++)
            {
                kv.MemorySequenceCopy((LLamaSeqId)i, (LLamaSeqId)slotOf[i * g + k], (LLamaPos)(-1), (LLamaPos)(-1));
                logits[i * g + k] = logits[i * g];
            }
        Timings.CopySeconds += sw.Elapsed.TotalSeconds;

        var tokens = new List<int>[n];
        var logps = new List<float>[n];
        var stop = new StopReason?[n];
        for (int s = 0; s < n; s++) { tokens[s] = new List<int>(o.MaxNewTokens); logps[s] = new List<float>(o.MaxNewTokens); }
        int maxStop = o.StopStrings.Count == 0 ? 0 : o.StopStrings.Max(x => x.Length);
        var next = new List<Entry>(n);
        int live = n;                                   // streams 0..live-1 hold the unfinished sequences
        for (int step = 0; step < o.MaxNewTokens; step++)
        {
            sw.Restart();
            bool anyStopped = false;
            for (int s = 0; s < n; s++)
            {
                if (stop[s] is not null) continue;
                var row = logits[s];
                int tok = Sampler.Sample(row, o, rng);
                tokens[s].Add(tok);
                logps[s].Add(Sampler.LogSoftmaxAt(row, tok));
                if (o.StopAtEos && EosIds.Contains(tok)) stop[s] = StopReason.Eos;
                else if (maxStop > 0 && StopStringHit(tokens[s], o.StopStrings, maxStop)) stop[s] = StopReason.StopString;
                if (stop[s] is not null) anyStopped = true;
            }
            Timings.SampleSeconds += sw.Elapsed.TotalSeconds;
            if (step == o.MaxNewTokens - 1) break;
            sw.Restart();
            if (anyStopped) live = Compact(kv, slotOf, seqAt, stop, live);
            Timings.CopySeconds += sw.Elapsed.TotalSeconds;
            if (live == 0) break;
            next.Clear();
            for (int slot = 0; slot < live; slot++)      // in stream order: one run of consecutive ids, one micro-batch
            {
                int s = seqAt[slot];
                next.Add(new Entry(tokens[s][^1], prompts[start + s / g].Count + tokens[s].Count - 1, slot, s, true));
            }
            sw.Restart();
            Decode(context, next, logits);
            Timings.DecodeSeconds += sw.Elapsed.TotalSeconds;
            Timings.DecodeCalls++;
            Timings.DecodeTokens += next.Count;
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

    /// <summary>Frees the streams of the sequences that just stopped and moves the highest live streams into the holes, so that
    /// the live sequences again occupy streams 0..L-1; returns L.</summary>
    static int Compact(SafeLLamaContextHandle kv, int[] slotOf, int[] seqAt, StopReason?[] stop, int live)
    {
        int hole = 0, top = live - 1;
        while (true)
        {
            while (top >= 0 && stop[seqAt[top]] is not null) top--;                 // the highest live stream
            while (hole < top && stop[seqAt[hole]] is null) hole++;                 // the lowest stream of a stopped sequence
            if (hole >= top) break;
            int moved = seqAt[top], dead = seqAt[hole];
            kv.MemorySequenceRemove((LLamaSeqId)hole, (LLamaPos)(-1), (LLamaPos)(-1));
            kv.MemorySequenceCopy((LLamaSeqId)top, (LLamaSeqId)hole, (LLamaPos)(-1), (LLamaPos)(-1));
            kv.MemorySequenceRemove((LLamaSeqId)top, (LLamaPos)(-1), (LLamaPos)(-1));
            (seqAt[hole], seqAt[top]) = (moved, dead);
            (slotOf[moved], slotOf[dead]) = (hole, top);
            top--;
        }
        return top + 1;
    }

    /// <summary>One token for llama.cpp: its id, position, the KV stream (llama.cpp sequence id) it goes to, the sequence whose
    /// logits row it fills, and whether its logits are wanted.</summary>
    readonly record struct Entry(int Token, int Pos, int Slot, int Row, bool Logits);

    /// <summary>Decodes <paramref name="entries"/> (each stream's in position order) in calls of at most
    /// <see cref="LlamaCppOptions.BatchSize"/> tokens, and stores the logits of each entry that asks for them as its sequence's row.</summary>
    void Decode(LLamaContext context, List<Entry> entries, float[][] logits)
    {
        var batch = new LLamaBatch();
        var outputs = new List<(int Row, int Index)>();
        for (int at = 0; at < entries.Count; at += _options.BatchSize)
        {
            batch.Clear();
            outputs.Clear();
            for (int k = at; k < Math.Min(entries.Count, at + _options.BatchSize); k++)
            {
                var e = entries[k];
                int index = batch.Add((LLamaToken)e.Token, (LLamaPos)e.Pos, (LLamaSeqId)e.Slot, e.Logits);
                if (e.Logits) outputs.Add((e.Row, index));
            }
            var result = context.NativeHandle.Decode(batch);
            if (result != DecodeResult.Ok)
                throw new InvalidOperationException($"llama.cpp decode failed ({result}) for {batch.TokenCount} tokens: {LlamaCppRuntime.TakeErrors()}");
            foreach (var (row, index) in outputs) logits[row] = context.NativeHandle.GetLogitsIth(index).ToArray();
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

/// <summary>Cumulative seconds of <see cref="LlamaCppEngine"/>'s parts: weight sync (GGUF export, then an in-place rewrite of
/// the mapped file or a full reload), context creation, the prompt decode, the KV copies of shared prompts, the per-step
/// decode of one token per live sequence, and the managed sampling + log-softmax between steps.</summary>
public sealed class LlamaCppTimings
{
    /// <summary>Seconds writing GGUF files.</summary>
    public double ExportSeconds { get; set; }
    /// <summary>Seconds loading a model from a new file (first load and full reloads).</summary>
    public double LoadSeconds { get; set; }
    /// <summary>Full reloads (the first load included).</summary>
    public int Reloads { get; set; }
    /// <summary>Seconds copying new weights over the mapped file.</summary>
    public double InPlaceSeconds { get; set; }
    /// <summary>Syncs done in place.</summary>
    public int InPlaceSyncs { get; set; }
    /// <summary>Seconds creating llama.cpp contexts.</summary>
    public double ContextSeconds { get; set; }
    /// <summary>Contexts created.</summary>
    public int Contexts { get; set; }
    /// <summary>Seconds decoding prompts.</summary>
    public double PromptSeconds { get; set; }
    /// <summary>Prompt tokens decoded.</summary>
    public long PromptTokens { get; set; }
    /// <summary>Seconds copying a prompt's KV stream to its other samples.</summary>
    public double CopySeconds { get; set; }
    /// <summary>Seconds in the per-step decode calls (llama.cpp's forward and reading the logits rows).</summary>
    public double DecodeSeconds { get; set; }
    /// <summary>Per-step decode calls.</summary>
    public int DecodeCalls { get; set; }
    /// <summary>Tokens decoded in the per-step calls.</summary>
    public long DecodeTokens { get; set; }
    /// <summary>Seconds sampling, taking log-probs and checking stops in managed code.</summary>
    public double SampleSeconds { get; set; }
}
