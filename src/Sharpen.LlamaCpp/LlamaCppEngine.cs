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
/// one llama.cpp context: each prompt is decoded once into cells shared by its samples, then every step decodes one token
/// per unfinished sequence in one batch. Sampling (temperature, top-k, top-p) happens here, on llama.cpp's raw logits, with
/// the same rules as the torch engine; the returned log-probs are the log-softmax of those raw logits (temperature 1) at
/// the sampled token.
/// </summary>
public sealed class LlamaCppEngine : IRolloutEngine, IDisposable
{
    readonly LlamaCppOptions _options;
    readonly ModelConfig _config;
    LLamaWeights? _weights;
    LLamaContext? _context;
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
        LLamaContext context;
        try
        {
            var p = new ModelParams(path)
            {
                ContextSize = (uint)_options.ContextSize,
                SeqMax = (uint)_options.MaxSequences,
                BatchSize = (uint)_options.BatchSize,
                UBatchSize = (uint)Math.Min(_options.BatchSize, 512),
                Threads = _options.Threads,
                BatchThreads = _options.Threads,
                GpuLayerCount = 0,
                FlashAttention = false,
                KVUnified = true,
                TypeK = _options.Float32Cache ? GGMLType.GGML_TYPE_F32 : GGMLType.GGML_TYPE_F16,
                TypeV = _options.Float32Cache ? GGMLType.GGML_TYPE_F32 : GGMLType.GGML_TYPE_F16,
            };
            weights = LLamaWeights.LoadFromFile(p);
            context = weights.CreateContext(p);
        }
        catch (Exception e) when (e is LLama.Exceptions.LoadWeightsFailedException or LLama.Exceptions.RuntimeError)
        {
            File.Delete(path);
            throw new InvalidOperationException($"llama.cpp could not load {path}: {e.Message} {LlamaCppRuntime.TakeErrors()}", e);
        }
        if (weights.Vocab.Count != _config.VocabSize)
            throw new InvalidOperationException($"llama.cpp reads {weights.Vocab.Count} tokens from {path}, expected {_config.VocabSize}");
        ReleaseModel();
        (_weights, _context, _path) = (weights, context, path);
    }

    /// <inheritdoc/>
    public IReadOnlyList<Rollout> Generate(IReadOnlyList<string> prompts, SamplingOptions options) =>
        Generate(prompts.Select(p => (IReadOnlyList<int>)Tokenizer.Encode(p)).ToList(), options);

    /// <summary>Generates <see cref="SamplingOptions.SamplesPerPrompt"/> completions for every prompt, ordered prompt by prompt.</summary>
    public IReadOnlyList<Rollout> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingOptions options)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        options.Validate();
        var context = _context ?? throw new ObjectDisposedException(nameof(LlamaCppEngine));
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

        var rng = new Random(unchecked((int)(options.Seed ^ (options.Seed >> 32))));
        var results = new List<Rollout>(prompts.Count * g);
        int seqLimit = Math.Min(_options.MaxSequences, options.MaxBatchSequences);
        int start = 0;
        while (start < prompts.Count)
        {
            // As many prompts as fit: their samples within the sequence limit, their cells within the context.
            int count = 0, cells = 0;
            while (start + count < prompts.Count)
            {
                int need = prompts[start + count].Count + g * maxNew;
                if ((count + 1) * g > Math.Max(seqLimit, g) || cells + need > _options.ContextSize) break;
                cells += need;
                count++;
            }
            if (count == 0)
                throw new ArgumentException($"prompt {start} needs {prompts[start].Count + g * maxNew} KV cells ({prompts[start].Count} prompt + {g} samples × {maxNew} new), " +
                    $"more than the llama.cpp context holds ({_options.ContextSize}); raise context_size");
            if (g > _options.MaxSequences)
                throw new ArgumentException($"{g} samples per prompt exceed llama.cpp's max_sequences ({_options.MaxSequences})");
            results.AddRange(GenerateChunk(context, prompts, start, count, options, rng));
            start += count;
        }
        return results;
    }

    List<Rollout> GenerateChunk(LLamaContext context, IReadOnlyList<IReadOnlyList<int>> prompts, int start, int count, SamplingOptions o, Random rng)
    {
        int g = o.SamplesPerPrompt, n = count * g;
        context.NativeHandle.MemoryClear(true);
        var history = new List<int>[n];
        var logits = new float[n][];
        for (int s = 0; s < n; s++) history[s] = [.. prompts[start + s / g]];

        // Prompt phase: one entry per prompt token, shared by all samples of that prompt.
        var groups = new List<Entry[]>(count);
        for (int i = 0; i < count; i++)
        {
            var pr = prompts[start + i];
            var seqs = Enumerable.Range(i * g, g).ToArray();
            groups.Add(pr.Select((tok, j) => new Entry(tok, j, seqs, j == pr.Count - 1)).ToArray());
        }
        Submit(context, groups, history, logits);

        var tokens = new List<int>[n];
        var logps = new List<float>[n];
        var stop = new StopReason?[n];
        for (int s = 0; s < n; s++) { tokens[s] = new List<int>(o.MaxNewTokens); logps[s] = new List<float>(o.MaxNewTokens); }
        int maxStop = o.StopStrings.Count == 0 ? 0 : o.StopStrings.Max(x => x.Length);
        for (int step = 0; step < o.MaxNewTokens; step++)
        {
            var next = new List<Entry[]>();
            for (int s = 0; s < n; s++)
            {
                if (stop[s] is not null) continue;
                var row = logits[s];
                int tok = Sampler.Sample(row, o, rng);
                tokens[s].Add(tok);
                logps[s].Add(Sampler.LogSoftmaxAt(row, tok));
                history[s].Add(tok);
                if (o.StopAtEos && EosIds.Contains(tok)) stop[s] = StopReason.Eos;
                else if (maxStop > 0 && StopStringHit(tokens[s], o.StopStrings, maxStop)) stop[s] = StopReason.StopString;
                else if (step < o.MaxNewTokens - 1) next.Add([new Entry(tok, history[s].Count - 1, [s], true)]);
            }
            if (next.Count == 0) break;
            Submit(context, next, history, logits);
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

    /// <summary>One token for llama.cpp: its id, position, the sequences whose cell it fills, and whether its logits are wanted.</summary>
    sealed record Entry(int Token, int Pos, int[] Seqs, bool Logits);

    /// <summary>
    /// Decodes groups of entries (each group: one sequence set's tokens in position order) in as few llama.cpp calls as
    /// possible, and stores the logits of each entry that asked for them into every sequence of the entry.
    /// LLamaSharp's <see cref="LLamaBatch"/> merges two additions with the same (token, position) into one cell shared by
    /// both sequence sets; that is right only when the two sequences' histories are identical, so a group whose token would
    /// be merged with a different history goes to a later call instead.
    /// </summary>
    void Submit(LLamaContext context, List<Entry[]> groups, List<int>[] history, float[][] logits)
    {
        var batches = new List<(LLamaBatch Batch, Dictionary<(int, int), Entry> Index, List<(Entry, int)> Outputs)>();
        foreach (var group in groups)
        {
            int minBatch = 0;
            for (int at = 0; at < group.Length;)
            {
                // Place the longest run of this group's entries into the first batch (from minBatch) that takes it.
                int b = minBatch;
                int taken;
                while (true)
                {
                    if (b == batches.Count) batches.Add((new LLamaBatch(), new(), new()));
                    taken = Fits(batches[b], group, at, history);
                    if (taken > 0) break;
                    b++;
                }
                var (batch, index, outputs) = batches[b];
                for (int k = at; k < at + taken; k++)
                {
                    var e = group[k];
                    int slot = batch.Add((LLamaToken)e.Token, (LLamaPos)e.Pos, e.Seqs.Select(s => (LLamaSeqId)s).ToArray(), e.Logits);
                    index.TryAdd((e.Token, e.Pos), e);
                    if (e.Logits) outputs.Add((e, slot));
                }
                at += taken;
                if (at < group.Length) minBatch = b + 1;   // the rest of the group must be decoded after this part
            }
        }
        foreach (var (batch, _, outputs) in batches)
        {
            var result = context.NativeHandle.Decode(batch);
            if (result != DecodeResult.Ok)
                throw new InvalidOperationException($"llama.cpp decode failed ({result}) for {batch.TokenCount} tokens: {LlamaCppRuntime.TakeErrors()}");
            foreach (var (e, slot) in outputs)
            {
                var row = context.NativeHandle.GetLogitsIth(slot).ToArray();
                foreach (var s in e.Seqs) logits[s] = row;
            }
        }
    }

    /// <summary>How many of <paramref name="group"/>'s entries from <paramref name="at"/> on fit in the batch (0: none).</summary>
    int Fits((LLamaBatch Batch, Dictionary<(int, int), Entry> Index, List<(Entry, int)> Outputs) target, Entry[] group, int at, List<int>[] history)
    {
        int room = _options.BatchSize - target.Batch.TokenCount;
        int k = 0;
        while (at + k < group.Length && k < room)
        {
            var e = group[at + k];
            if (target.Index.TryGetValue((e.Token, e.Pos), out var other) &&
                (other.Logits != e.Logits || !SameHistory(history[other.Seqs[0]], history[e.Seqs[0]], e.Pos)))
                break;
            k++;
        }
        return k;
    }

    static bool SameHistory(List<int> a, List<int> b, int pos)
    {
        if (a.Count <= pos || b.Count <= pos) return false;
        for (int i = 0; i <= pos; i++)
            if (a[i] != b[i]) return false;
        return true;
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
    }

    /// <summary>Frees llama.cpp's model and context and deletes the GGUF file.</summary>
    public void Dispose() => ReleaseModel();
}
