using Sharpen.Models;
using Sharpen.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Sharpen.Generation;

/// <summary>
/// Batched sampling with a KV cache. Prompts of different lengths are left-padded and prefilled
/// once; for N samples per prompt the prompt's cache is repeated N times (the prompt is not
/// encoded again). Each step samples one token for every unfinished sequence in one batched call,
/// through the model's decode fast path (<see cref="DecodeSession"/>, optionally with H₂O KV
/// eviction) unless <see cref="SamplingOptions.FastDecode"/> asks for the reference path.
/// </summary>
public sealed class RolloutEngine(CausalLM model, ITokenizer tokenizer) : IRolloutEngine
{
    /// <summary>The policy being sampled.</summary>
    public CausalLM Model { get; } = model;
    /// <summary>Its tokenizer.</summary>
    public ITokenizer Tokenizer { get; } = tokenizer;

    /// <summary>Ids that end a sequence: the model config's EOS ids and the tokenizer's EOS.</summary>
    public IReadOnlySet<int> EosIds { get; } =
        model.Config.EosTokenIds.Concat(tokenizer.EosTokenId is { } e ? [e] : []).ToHashSet();

    /// <summary>
    /// Most megabytes the KV cache of one batch may take (0 = no limit): a request whose prompts × samples would need more
    /// runs in smaller chunks, as an inference server caps its cache. At 512 rollouts of a 25M model (8 layers, 4 KV heads of
    /// 64) and 80 positions the cache alone is about 650 MB, which set the peak memory of a GRPO step; the quickstart's
    /// 512 rollouts need about 250 MB and are not split. Chunks draw from the same seeded generator in turn, so a split
    /// request gives other (equally distributed) samples than one batch would.
    /// </summary>
    public double KvCacheMegabytes { get; init; } = DefaultKvCacheMegabytes;

    /// <summary>The default of <see cref="KvCacheMegabytes"/>.</summary>
    public const double DefaultKvCacheMegabytes = 256;

    /// <summary>Sequences per chunk so that their KV cache (keys and values, every layer, <paramref name="positions"/> slots)
    /// stays within <see cref="KvCacheMegabytes"/>; at least one.</summary>
    public long SequencesWithinCacheBudget(long positions, int? kvBudget = null)
    {
        if (KvCacheMegabytes <= 0) return long.MaxValue;
        var c = Model.Config;
        long slots = kvBudget is { } b ? Math.Min(positions, b + 1) : positions;
        long elementBytes = Model.parameters().FirstOrDefault()?.ElementSize ?? 4;
        long perSequence = Math.Max(1, 2L * c.NumHiddenLayers * c.NumKeyValueHeads * c.HeadDim * slots * elementBytes);
        return Math.Max(1, (long)(KvCacheMegabytes * 1024 * 1024 / perSequence));
    }

    /// <summary>The torch engine samples the policy object itself: nothing to sync.</summary>
    public void SyncWeights(CausalLM policy)
    {
        if (!ReferenceEquals(policy, Model)) throw new ArgumentException("the torch engine samples the model it was made with; pass that model");
    }

    /// <summary>True: the torch engine samples the trainer's policy object itself.</summary>
    public bool SamplesTrainerPolicy => true;

    int PadId => Tokenizer.PadTokenId ?? Model.Config.PadTokenId ?? EosIds.DefaultIfEmpty(0).First();

    /// <summary>Encodes each prompt (special tokens as the tokenizer's post-processor says) and generates.</summary>
    public IReadOnlyList<Rollout> Generate(IReadOnlyList<string> prompts, SamplingOptions options) =>
        Generate(prompts.Select(p => (IReadOnlyList<int>)Tokenizer.Encode(p)).ToList(), options);

    /// <summary>
    /// Generates <see cref="SamplingOptions.SamplesPerPrompt"/> completions for every prompt.
    /// Results are ordered prompt by prompt, samples of one prompt together.
    /// </summary>
    public IReadOnlyList<Rollout> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingOptions options)
    {
        options.Validate();
        if (prompts.Any(p => p.Count == 0)) throw new ArgumentException("a prompt encodes to no tokens");
        var results = new List<Rollout>(prompts.Count * options.SamplesPerPrompt);
        var generator = new Generator((ulong)options.Seed);
        long positions = prompts.Select(p => p.Count).DefaultIfEmpty(0).Max() + (long)options.MaxNewTokens;
        long sequences = Math.Min(options.MaxBatchSequences, SequencesWithinCacheBudget(positions, options.KvBudget));
        int promptsPerChunk = (int)Math.Max(1, sequences / options.SamplesPerPrompt);
        bool wasTraining = Model.training;
        Model.eval();
        try
        {
            using var _ = no_grad();
            for (int start = 0; start < prompts.Count; start += promptsPerChunk)
            {
                int count = Math.Min(promptsPerChunk, prompts.Count - start);
                results.AddRange(GenerateChunk(prompts, start, count, options, generator));
            }
        }
        finally
        {
            if (wasTraining) Model.train();
            generator.Dispose();
        }
        // The chunks' per-step tensors are freed by now, but their heap pages stay resident until trimmed (measured: about
        // 480 MB at 512 rollouts of a 25M model, which the scoring and update passes then stacked on).
        Torch.ProcessMemory.Trim();
        return results;
    }

    IEnumerable<Rollout> GenerateChunk(IReadOnlyList<IReadOnlyList<int>> prompts, int start, int count,
        SamplingOptions o, Generator generator)
    {
        using var scope = NewDisposeScope();
        int g = o.SamplesPerPrompt, n = count * g, maxNew = o.MaxNewTokens;
        int p = Enumerable.Range(start, count).Max(i => prompts[i].Count);
        int total = p + maxNew;
        if (total > Model.Config.MaxPositionEmbeddings && Model.Config.RopeScaling is not { Type: "dynamic" })   // dynamic NTK exists to go past it
            throw new ArgumentException($"prompt ({p} tokens) + max new tokens ({maxNew}) exceed max_position_embeddings ({Model.Config.MaxPositionEmbeddings})");

        // Left-padded prompts (count, P) and a mask over the full length (n, P + maxNew).
        var ids = new long[count * p];
        var mask = new long[n * total];
        for (int i = 0; i < count; i++)
        {
            var pr = prompts[start + i];
            int pad = p - pr.Count;
            for (int j = 0; j < p; j++) ids[i * p + j] = j < pad ? PadId : pr[j - pad];
            for (int s = 0; s < g; s++)
            {
                int row = i * g + s;
                for (int j = pad; j < total; j++) mask[row * total + j] = 1;
            }
        }
        var promptIds = tensor(ids).view(count, p);                          // (count, P)
        var fullMask = tensor(mask).view(n, total);                           // (n, P+maxNew)
        var repeat = arange(count, dtype: ScalarType.Int64).repeat_interleave(g);   // (n)

        KvCache? cache = null;
        DecodeSession? session = null;
        Tensor seq;                                                           // (n, P + generated) without cache
        Tensor logits;                                                        // (n, V)
        try
        {
            if (o.UseKvCache && o.FastDecode)
            {
                session = Model.StartDecoding(count, total, o.Budget);
                var promptMask = fullMask.index_select(0, arange(0, n, g)).narrow(1, 0, p);   // (count, P)
                logits = session.Prefill(promptIds, promptMask).index_select(0, repeat);      // (n, V)
                if (g > 1) session.SelectRows(repeat);
                seq = promptIds.index_select(0, repeat);
            }
            else if (o.UseKvCache)
            {
                cache = Model.CreateCache(count, total);
                var outp = Model.Forward(promptIds, fullMask.index_select(0, arange(0, n, g)).narrow(1, 0, p), cache, lastLogitsOnly: true);
                logits = outp.Logits.squeeze(1).index_select(0, repeat);      // (n, V)
                if (g > 1) cache.SelectRows(repeat);
                seq = promptIds.index_select(0, repeat);
            }
            else
            {
                seq = promptIds.index_select(0, repeat);                      // (n, P)
                logits = Model.Forward(seq, fullMask.narrow(1, 0, p), lastLogitsOnly: true).Logits.squeeze(1);
            }

            var tokens = new List<int>[n];
            var logps = new List<float>[n];
            var stop = new StopReason?[n];
            var texts = new string[n];
            for (int i = 0; i < n; i++) { tokens[i] = new List<int>(maxNew); logps[i] = new List<float>(maxNew); }
            var finished = new bool[n];
            var stopStrings = o.StopStrings;
            int maxStop = stopStrings.Count == 0 ? 0 : stopStrings.Max(s => s.Length);

            for (int step = 0; step < maxNew; step++)
            {
                using var stepScope = NewDisposeScope();
                Tensor next, lp;                                              // (n), (n) log-prob at temperature 1
                if (o.Greedy)
                {
                    // The arg-max and its logit in one call; its log-prob is that logit − logsumexp (= TokenLogProbs, fewer calls).
                    var l = logits.dtype == ScalarType.Float32 ? logits : logits.to(ScalarType.Float32);
                    var (top, arg) = l.max(-1);
                    (next, lp) = (arg, top - l.logsumexp(-1));
                }
                else
                {
                    next = Sample(logits, o, generator);
                    lp = Scoring.TokenLogProbs(logits.unsqueeze(1), next.view(n, 1)).view(n);
                }
                var nextArr = next.data<long>().ToArray();
                var lpArr = lp.data<float>().ToArray();

                bool allDone = true;
                for (int i = 0; i < n; i++)
                {
                    if (finished[i]) { nextArr[i] = PadId; continue; }
                    int tok = (int)nextArr[i];
                    tokens[i].Add(tok);
                    logps[i].Add(lpArr[i]);
                    if (o.StopAtEos && EosIds.Contains(tok)) { finished[i] = true; stop[i] = StopReason.Eos; }
                    else if (maxStop > 0 && StopStringHit(tokens[i], stopStrings, maxStop)) { finished[i] = true; stop[i] = StopReason.StopString; }
                    if (!finished[i]) allDone = false;
                }
                if (allDone || step == maxNew - 1) break;

                var fed = tensor(nextArr).view(n, 1);                         // finished rows are fed padding; their outputs are ignored
                if (session is not null)
                {
                    logits = session.Step(fed);
                }
                else if (cache is not null)
                {
                    logits = Model.Forward(fed, fullMask.narrow(1, 0, p + step + 1), cache).Logits.squeeze(1);
                }
                else
                {
                    var grown = cat([seq, fed], 1).DetachFromDisposeScope();
                    seq.Dispose();
                    seq = grown;
                    logits = Model.Forward(seq, fullMask.narrow(1, 0, p + step + 1), lastLogitsOnly: true).Logits.squeeze(1);
                }
                logits = logits.MoveToOuterDisposeScope();
            }

            for (int i = 0; i < n; i++)
            {
                int promptIndex = start + i / g;
                var comp = tokens[i].ToArray();
                texts[i] = Tokenizer.Decode(comp, skipSpecialTokens: true);
                yield return new Rollout(promptIndex, i % g, prompts[promptIndex].ToArray(), comp, texts[i],
                    logps[i].ToArray(), stop[i] ?? StopReason.MaxTokens);
            }
        }
        finally
        {
            cache?.Dispose();
            session?.Dispose();
        }
    }

    bool StopStringHit(List<int> tokens, IReadOnlyList<string> stops, int maxStop)
    {
        // Decode only a tail long enough to contain any stop string that the last token completed.
        int take = Math.Min(tokens.Count, maxStop + 8);
        var tail = Tokenizer.Decode(tokens.GetRange(tokens.Count - take, take), skipSpecialTokens: true);
        foreach (var s in stops)
            if (tail.Contains(s, StringComparison.Ordinal)) return true;
        return false;
    }

    /// <summary>Samples one token per row from (n, V) logits with temperature, top-k and top-p.</summary>
    public static Tensor Sample(Tensor logits, SamplingOptions o, Generator generator)
    {
        if (o.Greedy) return logits.argmax(-1);
        var l = logits.to(ScalarType.Float32) / o.Temperature;                 // (n, V)
        if (o.TopK > 0 && o.TopK < l.shape[1])
        {
            var kth = l.topk(o.TopK, dim: -1).values.narrow(1, o.TopK - 1, 1);  // (n, 1)
            l = l.masked_fill(l < kth, double.NegativeInfinity);
        }
        if (o.TopP < 1.0)
        {
            var (sorted, idx) = l.sort(-1, descending: true);                    // (n, V)
            var probs = sorted.softmax(-1);
            var before = probs.cumsum(-1) - probs;                               // mass strictly before each token
            sorted = sorted.masked_fill(before >= o.TopP, double.NegativeInfinity); // keep the smallest set reaching P; the top token always stays
            l = full_like(l, double.NegativeInfinity).scatter(-1, idx, sorted);
        }
        return l.softmax(-1).multinomial(1, generator: generator).squeeze(-1);   // (n)
    }
}
