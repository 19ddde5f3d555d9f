using System.Collections.Concurrent;
using System.Threading.Channels;
using Sharpen.Checkpoints;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Serving;

/// <summary>How a <see cref="PolicyHost"/> batches and bounds its work.</summary>
public sealed record PolicyHostOptions
{
    /// <summary>Most sequences (prompts × n) decoding at once: the slots of the running batch. Default 64.</summary>
    public int MaxBatch { get; init; } = 64;
    /// <summary>Most requests waiting for a slot; past it <see cref="PolicyHost.TrySubmit(GenerationJob, out Task{GenerationResult})"/> refuses (the server answers 429). Default 256.</summary>
    public int MaxQueue { get; init; } = 256;
    /// <summary>The model name clients ask for (default: the checkpoint folder's name).</summary>
    public string? ModelId { get; init; }
    /// <summary>Tests: called on the torch thread after every decode step, with the counters as they are then.</summary>
    internal Action<PolicyHostStats>? OnStep { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad option.</summary>
    public PolicyHostOptions Validate()
    {
        if (MaxBatch < 1) throw new ArgumentException($"max batch must be ≥ 1, got {MaxBatch}");
        if (MaxQueue < 1) throw new ArgumentException($"max queue must be ≥ 1, got {MaxQueue}");
        if (ModelId is { Length: 0 }) throw new ArgumentException("model id must not be empty");
        return this;
    }
}

/// <summary>One request's work: prompts (token ids) and how to sample them.</summary>
/// <param name="Prompts">Token ids of each prompt.</param>
/// <param name="Options">Sampling options; <see cref="SamplingOptions.SamplesPerPrompt"/> is the request's n.</param>
/// <param name="SeedGiven">False when the client gave no seed: the job may then share the host's random stream.</param>
/// <param name="TopLogprobs">How many most likely alternatives to report per completion token (0 = none).</param>
public sealed record GenerationJob(IReadOnlyList<IReadOnlyList<int>> Prompts, SamplingOptions Options, bool SeedGiven = true, int TopLogprobs = 0);

/// <summary>A token and its log-probability under the policy.</summary>
public readonly record struct TokenLogProb(int Id, float LogProb);

/// <summary>One token of a job, sent the moment it is sampled (live streaming).</summary>
/// <param name="Sequence">The sequence within the job: prompt × n + sample, the index of its <see cref="GenerationResult.Rollouts"/> entry.</param>
/// <param name="Id">The token.</param>
/// <param name="LogProb">Its log-probability under the policy (temperature 1, the engine's definition).</param>
/// <param name="Top">When the job asked for top log-probs: the most likely tokens at this position, best first.</param>
/// <param name="Stop">Set on the sequence's last token: why it stopped.</param>
public readonly record struct StreamedToken(int Sequence, int Id, float LogProb, TokenLogProb[]? Top, StopReason? Stop);

/// <summary>What a job produced.</summary>
/// <param name="Rollouts">Prompt by prompt, the samples of one prompt together (<see cref="Rollout.PromptIndex"/> within the job).</param>
/// <param name="TopLogprobs">When asked for: per rollout, per completion token, the most likely tokens (best first).</param>
public sealed record GenerationResult(IReadOnlyList<Rollout> Rollouts, IReadOnlyList<TokenLogProb[][]>? TopLogprobs);

/// <summary>Counters of what the decode loop has done (for tests, logs and the bench).</summary>
/// <param name="Batches">Prefills: groups of sequences that joined the running batch together.</param>
/// <param name="Jobs">Jobs taken from the queue.</param>
/// <param name="Sequences">Sequences (prompts × n) started.</param>
/// <param name="LargestBatch">Most sequences ever decoding at once (never above <see cref="PolicyHostOptions.MaxBatch"/>).</param>
/// <param name="Reloads">Weight reloads done.</param>
/// <param name="Steps">Decode steps (each samples one token for every running sequence).</param>
/// <param name="Tokens">Tokens generated.</param>
/// <param name="Running">Sequences decoding right now.</param>
public sealed record PolicyHostStats(long Batches, long Jobs, long Sequences, int LargestBatch, long Reloads, long Steps = 0, long Tokens = 0, int Running = 0);

/// <summary>
/// Owns a policy and the one thread that runs torch on it, and decodes with continuous (in-flight) batching. Requests go
/// into a bounded queue (<see cref="System.Threading.Channels"/>). The loop decodes a running batch of at most
/// <see cref="PolicyHostOptions.MaxBatch"/> sequences one token per step over the model's KV-cached fast path
/// (<see cref="DecodeSession"/>): a sequence that ends (EOS, a stop string, its max_tokens) frees its slot at once, and
/// waiting requests are prefilled together (a <see cref="DecodeSession.Fork"/>) and join the running batch at the next
/// step (<see cref="DecodeSession.Regroup"/>). Each request samples with its own settings: greedy rows by argmax, seeded
/// requests from their own generator, unseeded ones with the same settings from one shared generator. Tokens can be
/// streamed as they are sampled. Weight reloads wait for the running batch to drain (no new request joins meanwhile) and
/// run on the same thread. TorchSharp is used from this thread only (docs/architecture.md: the finalizer race).
/// </summary>
public sealed class PolicyHost : IDisposable
{
    readonly PolicyHostOptions _options;
    readonly Channel<Pending> _queue;
    readonly ConcurrentQueue<(string Path, TaskCompletionSource Done)> _reloads = new();
    readonly SemaphoreSlim _wake = new(0);
    readonly Thread _thread;
    bool _ownsModel;
    volatile bool _stopping;
    CausalLM _model;
    RolloutEngine _engine;
    long _batches, _jobs, _sequences, _reloadCount, _steps, _tokens;
    int _largest, _running;

    // The decode state (torch thread only).
    DecodeSession? _session;
    Tensor? _logits;                      // (rows, V) next-token logits of each row of the session
    readonly List<Sequence?> _rows = [];  // the session's rows; null = finished, waiting to be dropped at the next regroup
    Pending? _partial;                    // a job whose prompts did not all fit the free slots yet
    Generator? _shared;                   // the random stream of unseeded requests

    sealed class Pending(GenerationJob job, TaskCompletionSource<GenerationResult> done, ChannelWriter<StreamedToken>? tokens)
    {
        public GenerationJob Job { get; } = job;
        public TaskCompletionSource<GenerationResult> Done { get; } = done;
        public ChannelWriter<StreamedToken>? Tokens { get; } = tokens;
        public int NextPrompt;            // prompts admitted so far
        public int Unfinished = job.Prompts.Count * job.Options.SamplesPerPrompt;
        public Sequence[] Sequences = new Sequence[job.Prompts.Count * job.Options.SamplesPerPrompt];
        public Generator? Generator;      // seeded sampling: the job's own stream
        public CancellationTokenRegistration Registration;
        public volatile object? Cancelled; // the fired CancellationToken, boxed

        public void Fail(Exception e)
        {
            Tokens?.TryComplete();
            if (e is OperationCanceledException oce) Done.TrySetCanceled(oce.CancellationToken); else Done.TrySetException(e);
            Release();
        }

        public void Release()
        {
            Generator?.Dispose();
            Generator = null;
            Registration.Dispose();
        }
    }

    sealed class Sequence(Pending owner, int index, int prompt, int sample)
    {
        public Pending Owner { get; } = owner;
        public int Index { get; } = index;
        public int Prompt { get; } = prompt;
        public int Sample { get; } = sample;
        public List<int> Ids { get; } = [];
        public List<float> LogProbs { get; } = [];
        public List<TokenLogProb[]>? Top { get; } = owner.Job.TopLogprobs > 0 ? [] : null;
        public StopReason? Stop;
    }

    /// <summary>Serves <paramref name="model"/> with <paramref name="tokenizer"/>. With <paramref name="ownsModel"/>, the host disposes it
    /// (and any model it reloads).</summary>
    public PolicyHost(CausalLM model, ITokenizer tokenizer, PolicyHostOptions? options = null, bool ownsModel = false)
    {
        TorchRuntime.EnsureLoaded();
        _options = (options ?? new PolicyHostOptions()).Validate();
        _model = model;
        _engine = new RolloutEngine(model, tokenizer);
        _ownsModel = ownsModel;
        ModelId = _options.ModelId ?? (model.SourceDirectory is { } d ? Path.GetFileName(Path.TrimEndingDirectorySeparator(d)) : "sharpen");
        _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(_options.MaxQueue) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _thread = new Thread(Loop) { IsBackground = true, Name = "sharpen-policy" };
        _thread.Start();
    }

    /// <summary>Loads a Hugging Face checkpoint folder (with its tokenizer) and serves it.</summary>
    public static PolicyHost Load(string directory, PolicyHostOptions? options = null)
    {
        var loaded = HfCheckpoint.Load(directory, requireTokenizer: true);
        return new PolicyHost(loaded.Model, loaded.Tokenizer!, options, ownsModel: true);
    }

    /// <summary>The name clients use for this model.</summary>
    public string ModelId { get; }
    /// <summary>The served tokenizer (replaced by a reload).</summary>
    public ITokenizer Tokenizer => _engine.Tokenizer;
    /// <summary>Ids that end a sequence.</summary>
    public IReadOnlySet<int> EosIds => _engine.EosIds;
    /// <summary>Most positions (prompt + completion) the model takes.</summary>
    public int ContextLength => _model.Config.MaxPositionEmbeddings;
    /// <summary>Rows of the model's embedding: token ids must be below it.</summary>
    public int VocabSize => _model.Config.VocabSize;
    /// <summary>The batching limits.</summary>
    public PolicyHostOptions Options => _options;
    /// <summary>What the loop has done so far.</summary>
    public PolicyHostStats Stats => new(Interlocked.Read(ref _batches), Interlocked.Read(ref _jobs), Interlocked.Read(ref _sequences), Volatile.Read(ref _largest),
        Interlocked.Read(ref _reloadCount), Interlocked.Read(ref _steps), Interlocked.Read(ref _tokens), Volatile.Read(ref _running));

    /// <summary>Queues <paramref name="job"/>. Returns false, without queuing, when the queue is full or the host is stopping.</summary>
    public bool TrySubmit(GenerationJob job, out Task<GenerationResult> result) => TrySubmit(job, out result, null);

    /// <summary>Waiting jobs, and running sequences of jobs, whose <paramref name="cancellationToken"/> fires leave at the next step (their
    /// slots are free at once) and their task is cancelled.</summary>
    public bool TrySubmit(GenerationJob job, out Task<GenerationResult> result, ChannelWriter<StreamedToken>? tokens, CancellationToken cancellationToken)
    {
        if (!TrySubmit(job, out result, tokens, out var pending)) return false;
        if (pending is not null && cancellationToken.CanBeCanceled)
            pending.Registration = cancellationToken.Register(() => pending.Cancelled = cancellationToken);
        return true;
    }

    /// <summary>
    /// Queues <paramref name="job"/>; every token is also written to <paramref name="tokens"/> the moment it is sampled
    /// (the writer is completed when the job ends, before <paramref name="result"/> completes; use an unbounded channel).
    /// Returns false, without queuing, when the queue is full or the host is stopping. A job the host cannot run (a prompt
    /// past the context, n above <see cref="PolicyHostOptions.MaxBatch"/>) is queued as a failed task.
    /// </summary>
    public bool TrySubmit(GenerationJob job, out Task<GenerationResult> result, ChannelWriter<StreamedToken>? tokens) => TrySubmit(job, out result, tokens, out _);

    bool TrySubmit(GenerationJob job, out Task<GenerationResult> result, ChannelWriter<StreamedToken>? tokens, out Pending? queued)
    {
        ArgumentNullException.ThrowIfNull(job);
        var done = new TaskCompletionSource<GenerationResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        result = done.Task;
        queued = null;
        if (_stopping) return false;
        if (Refusal(job) is { } why)
        {
            tokens?.TryComplete();
            done.SetException(new ArgumentException(why));
            return true;
        }
        var pending = new Pending(job, done, tokens);
        if (!_queue.Writer.TryWrite(pending)) return false;
        queued = pending;
        Wake();
        return true;
    }

    string? Refusal(GenerationJob job)
    {
        var o = job.Options;
        try { o.Validate(); } catch (ArgumentException e) { return e.Message; }
        if (job.Prompts.Count == 0) return "a job needs at least one prompt";
        if (job.Prompts.Any(p => p.Count == 0)) return "a prompt encodes to no tokens";
        if (o.SamplesPerPrompt > _options.MaxBatch) return $"n = {o.SamplesPerPrompt} exceeds the host's max batch ({_options.MaxBatch})";
        if (o.KvBudget is not null || !o.UseKvCache || !o.FastDecode) return "the host decodes with the full KV cache on the fast path; kv_budget, UseKvCache = false and FastDecode = false are not served";
        int longest = job.Prompts.Max(p => p.Count);
        if (longest + o.MaxNewTokens > ContextLength)
            return $"prompt ({longest} tokens) + max new tokens ({o.MaxNewTokens}) exceed max_position_embeddings ({ContextLength})";
        return null;
    }

    /// <summary>Queues and awaits <paramref name="job"/>; throws <see cref="QueueFullException"/> when the queue is full.</summary>
    public Task<GenerationResult> GenerateAsync(GenerationJob job, CancellationToken cancellationToken = default) =>
        TrySubmit(job, out var task, null, cancellationToken) ? task.WaitAsync(cancellationToken) : throw new QueueFullException(_options.MaxQueue);

    /// <summary>
    /// Replaces the weights (and tokenizer) with those of the checkpoint folder <paramref name="directory"/> once the running
    /// sequences have finished (no new one starts meanwhile). The architecture may differ. A folder that does not load leaves
    /// the served model as it was and fails the task.
    /// </summary>
    public Task ReloadAsync(string directory)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (_stopping) { done.SetException(new ObjectDisposedException(nameof(PolicyHost))); return done.Task; }
        _reloads.Enqueue((directory, done));
        Wake();
        return done.Task;
    }

    // The semaphore only wakes the loop; it is never disposed, so a late submit cannot throw.
    void Wake() => _wake.Release();

    int Live => _rows.Count(r => r is not null);

    void Loop()
    {
        _shared = new Generator((ulong)Random.Shared.NextInt64());
        try
        {
            while (true)
            {
                List<(Pending Job, int Prompt)> joining = [];
                try
                {
                    if (Live == 0)
                    {
                        EndSession();
                        while (_reloads.TryDequeue(out var r)) Reload(r.Path, r.Done);
                    }
                    if (_reloads.IsEmpty) joining = Admit();
                    if (joining.Count > 0) Join(joining);
                    if (Live == 0)
                    {
                        if (_stopping && _reloads.IsEmpty && _partial is null && !_queue.Reader.TryPeek(out _)) return;
                        _wake.Wait();
                        continue;
                    }
                    Step();
                }
                catch (Exception e)
                {
                    // A torch failure fails the requests it touched; the loop goes on with a fresh batch.
                    foreach (var job in _rows.Where(r => r is not null).Select(r => r!.Owner).Concat(joining.Select(j => j.Job)).Append(_partial).Distinct()) job?.Fail(e);
                    _partial = null;
                    _rows.Clear();
                    EndSession();
                }
            }
        }
        finally
        {
            _shared.Dispose();
            EndSession();
        }
    }

    void EndSession()
    {
        _rows.Clear();
        _logits?.Dispose();
        _logits = null;
        _session?.Dispose();
        _session = null;
        Volatile.Write(ref _running, 0);
    }

    // Takes waiting prompts (all n samples of a prompt together) while free slots last.
    List<(Pending Job, int Prompt)> Admit()
    {
        var taken = new List<(Pending, int)>();
        int free = _options.MaxBatch - Live;
        while (true)
        {
            if (_partial is null)
            {
                if (!_queue.Reader.TryRead(out var next)) break;
                if (next.Cancelled is CancellationToken gone) { next.Fail(new OperationCanceledException("the request was cancelled", gone)); continue; }
                _partial = next;
                Interlocked.Increment(ref _jobs);
                if (next.Job.SeedGiven && !next.Job.Options.Greedy) next.Generator = new Generator((ulong)next.Job.Options.Seed);
            }
            var p = _partial;
            int n = p.Job.Options.SamplesPerPrompt;
            while (p.NextPrompt < p.Job.Prompts.Count && free >= n)
            {
                taken.Add((p, p.NextPrompt++));
                free -= n;
            }
            if (p.NextPrompt < p.Job.Prompts.Count) break;   // no slot left for its next prompt
            _partial = null;
        }
        return taken;
    }

    int PadId => Tokenizer.PadTokenId ?? _model.Config.PadTokenId ?? EosIds.DefaultIfEmpty(0).First();

    // Prefills the admitted prompts together and lets their sequences join the running batch.
    void Join(List<(Pending Job, int Prompt)> joining)
    {
        using var scope = NewDisposeScope();
        int k = joining.Count, width = joining.Max(j => j.Job.Job.Prompts[j.Prompt].Count);
        var ids = new long[k * width];
        var mask = new long[k * width];
        var repeat = new List<long>();
        var newRows = new List<Sequence>();
        for (int i = 0; i < k; i++)
        {
            var (job, prompt) = joining[i];
            var pr = job.Job.Prompts[prompt];
            int pad = width - pr.Count;
            for (int j = 0; j < width; j++)
            {
                ids[i * width + j] = j < pad ? PadId : pr[j - pad];
                mask[i * width + j] = j < pad ? 0 : 1;
            }
            int n = job.Job.Options.SamplesPerPrompt;
            for (int s = 0; s < n; s++)
            {
                var seq = new Sequence(job, prompt * n + s, prompt, s);
                job.Sequences[seq.Index] = seq;
                newRows.Add(seq);
                repeat.Add(i);
            }
        }
        var promptIds = tensor(ids).view(k, width);
        var promptMask = tensor(mask).view(k, width);
        var rep = tensor(repeat.ToArray());
        bool fresh = _session is null;
        var session = fresh ? _model.StartDecoding(k, width + Room(newRows)) : _session!.Fork(k, width);
        try
        {
            var logits = session.Prefill(promptIds, promptMask).index_select(0, rep);        // (new rows, V)
            if (repeat.Count != k) session.SelectRows(rep);
            var live = Enumerable.Range(0, _rows.Count).Where(i => _rows[i] is not null).ToList();
            var keptRows = live.Select(i => _rows[i]!).ToList();
            if (fresh) _session = session;
            else _session!.Regroup(live.Select(i => (long)i).ToList(), session, Room(keptRows.Concat(newRows)));
            var all = fresh ? logits : cat([_logits!.index_select(0, tensor(live.Select(i => (long)i).ToArray())), logits], 0);
            _logits?.Dispose();
            _logits = all.DetachFromDisposeScope();
            _rows.Clear();
            _rows.AddRange(keptRows);
            _rows.AddRange(newRows);
        }
        finally { if (!fresh) session.Dispose(); }
        Interlocked.Increment(ref _batches);
        Interlocked.Add(ref _sequences, newRows.Count);
        Observe();
    }

    void Observe()
    {
        Volatile.Write(ref _running, _rows.Count);
        if (_rows.Count > _largest) Volatile.Write(ref _largest, _rows.Count);
    }

    // Free cache slots to allocate after a (re)layout: what the running sequences may still need, in steps of at least 64.
    static long Room(IEnumerable<Sequence> rows)
    {
        long need = rows.Max(r => r.Owner.Job.Options.MaxNewTokens - r.Ids.Count);
        return Math.Max(1, Math.Min(need, 64));
    }

    // One token for every running sequence, then one forward step for those that go on.
    void Step()
    {
        DropCancelled();
        if (Live == 0) { EndSession(); return; }
        using var scope = NewDisposeScope();
        var logits = _logits!;                                                                 // (B, V)
        long b = logits.shape[0];
        var next = logits.argmax(-1);                                                          // (B) greedy rows keep it
        foreach (var group in SamplingGroups())
        {
            var rows = tensor(group.Rows.ToArray());
            next.index_copy_(0, rows, RolloutEngine.Sample(logits.index_select(0, rows), group.Options, group.Generator));
        }
        var lp = Scoring.TokenLogProbs(logits.unsqueeze(1), next.view(b, 1)).view(b).data<float>().ToArray();
        var nextArr = next.data<long>().ToArray();
        int topK = _rows.Where(r => r is { Top: not null }).Select(r => r!.Owner.Job.TopLogprobs).DefaultIfEmpty(0).Max();
        float[]? topValues = null; long[]? topIds = null;
        if (topK > 0)
        {
            topK = Math.Min(topK, (int)logits.shape[1]);
            var (values, indices) = logits.to(ScalarType.Float32).log_softmax(-1).topk(topK, dim: -1);   // (B, K)
            topValues = values.contiguous().data<float>().ToArray();
            topIds = indices.contiguous().data<long>().ToArray();
        }

        int produced = 0;
        for (int i = 0; i < _rows.Count; i++)
        {
            var seq = _rows[i];
            if (seq is null) { nextArr[i] = PadId; continue; }
            var o = seq.Owner.Job.Options;
            int tok = (int)nextArr[i];
            seq.Ids.Add(tok);
            seq.LogProbs.Add(lp[i]);
            produced++;
            TokenLogProb[]? top = null;
            if (seq.Top is not null)
            {
                int want = Math.Min(seq.Owner.Job.TopLogprobs, topK);
                top = Enumerable.Range(0, want).Select(j => new TokenLogProb((int)topIds![i * topK + j], topValues![i * topK + j])).ToArray();
                seq.Top.Add(top);
            }
            if (o.StopAtEos && EosIds.Contains(tok)) seq.Stop = StopReason.Eos;
            else if (o.StopStrings.Count > 0 && StopStringHit(seq.Ids, o.StopStrings)) seq.Stop = StopReason.StopString;
            else if (seq.Ids.Count >= o.MaxNewTokens) seq.Stop = StopReason.MaxTokens;
            seq.Owner.Tokens?.TryWrite(new StreamedToken(seq.Index, tok, lp[i], top, seq.Stop));
            if (seq.Stop is not null)
            {
                _rows[i] = null;                                                               // the slot is free from now on
                nextArr[i] = PadId;
                if (--seq.Owner.Unfinished == 0) Finish(seq.Owner);
            }
        }
        Interlocked.Increment(ref _steps);
        Interlocked.Add(ref _tokens, produced);

        int live = Live;
        if (live == 0) { EndSession(); _options.OnStep?.Invoke(Stats); return; }
        var session = _session!;
        // Drop finished rows when they are a quarter of the batch, or when the cache needs room (the re-layout compacts it).
        if (live * 4 <= _rows.Count * 3 || session.Filled + 1 > session.Capacity)
        {
            var keep = Enumerable.Range(0, _rows.Count).Where(i => _rows[i] is not null).ToList();
            var kept = keep.Select(i => _rows[i]!).ToList();
            session.Regroup(keep.Select(i => (long)i).ToList(), null, Room(kept));
            nextArr = keep.Select(i => nextArr[i]).ToArray();
            _rows.Clear();
            _rows.AddRange(kept);
        }
        var stepped = session.Step(tensor(nextArr).view(-1, 1));
        logits.Dispose();
        _logits = stepped.DetachFromDisposeScope();
        Observe();
        _options.OnStep?.Invoke(Stats);
    }

    // Jobs whose caller cancelled: their rows free their slots now (dropped at the next regroup) and their tasks are cancelled.
    void DropCancelled()
    {
        for (int i = 0; i < _rows.Count; i++)
            if (_rows[i] is { Owner.Cancelled: CancellationToken gone } seq)
            {
                for (int j = i; j < _rows.Count; j++)
                    if (_rows[j]?.Owner == seq.Owner) _rows[j] = null;
                if (_partial == seq.Owner) _partial = null;
                seq.Owner.Fail(new OperationCanceledException("the request was cancelled", gone));
            }
        if (_partial is { Cancelled: CancellationToken left } p)
        {
            _partial = null;
            p.Fail(new OperationCanceledException("the request was cancelled", left));
        }
    }

    sealed record SamplingGroup(List<long> Rows, SamplingOptions Options, Generator Generator);

    // Sampled rows, grouped by the random stream and settings they share.
    List<SamplingGroup> SamplingGroups()
    {
        var groups = new Dictionary<object, SamplingGroup>();
        for (int i = 0; i < _rows.Count; i++)
        {
            if (_rows[i] is not { } seq || seq.Owner.Job.Options.Greedy) continue;
            var o = seq.Owner.Job.Options;
            object key = seq.Owner.Generator is not null ? seq.Owner : (o.Temperature, o.TopP, o.TopK);
            if (!groups.TryGetValue(key, out var g)) groups[key] = g = new SamplingGroup([], o, seq.Owner.Generator ?? _shared!);
            g.Rows.Add(i);
        }
        return [.. groups.Values];
    }

    bool StopStringHit(List<int> tokens, IReadOnlyList<string> stops)
    {
        // Decode only a tail long enough to contain any stop string that the last token completed.
        int take = Math.Min(tokens.Count, stops.Max(s => s.Length) + 8);
        var tail = Tokenizer.Decode(tokens.GetRange(tokens.Count - take, take), skipSpecialTokens: true);
        foreach (var s in stops)
            if (tail.Contains(s, StringComparison.Ordinal)) return true;
        return false;
    }

    void Finish(Pending p)
    {
        try
        {
            var rollouts = p.Sequences.Select(s => new Rollout(s.Prompt, s.Sample, p.Job.Prompts[s.Prompt].ToArray(), s.Ids.ToArray(),
                Tokenizer.Decode(s.Ids, skipSpecialTokens: true), s.LogProbs.ToArray(), s.Stop ?? StopReason.MaxTokens)).ToList();
            var top = p.Job.TopLogprobs > 0 ? p.Sequences.Select(s => s.Top!.ToArray()).ToList() : null;
            p.Tokens?.TryComplete();
            p.Done.TrySetResult(new GenerationResult(rollouts, top));
        }
        catch (Exception e) { p.Fail(e); }
        p.Release();
    }

    void Reload(string path, TaskCompletionSource done)
    {
        try
        {
            var loaded = HfCheckpoint.Load(path, requireTokenizer: true);
            var old = _model;
            _model = loaded.Model;
            _engine = new RolloutEngine(loaded.Model, loaded.Tokenizer!);
            if (_ownsModel) old.Dispose();
            _ownsModel = true;   // a reloaded model is always the host's own
            Interlocked.Increment(ref _reloadCount);
            done.SetResult();
        }
        catch (Exception e) { done.SetException(e); }
    }

    /// <summary>Stops taking requests, finishes the queued and running ones, and ends the torch thread.</summary>
    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _queue.Writer.TryComplete();
        _wake.Release();
        _thread.Join();
        // A job written in the instant between the loop's last look and the queue's completion: refuse it, never strand it.
        while (_queue.Reader.TryRead(out var late)) late.Fail(new ObjectDisposedException(nameof(PolicyHost), "the server is stopping"));
        while (_reloads.TryDequeue(out var r)) r.Done.TrySetException(new ObjectDisposedException(nameof(PolicyHost), "the server is stopping"));
        if (_ownsModel) _model.Dispose();
    }
}

/// <summary>The request queue is full (the server answers 429).</summary>
public sealed class QueueFullException(int capacity) : Exception($"the server's request queue is full ({capacity} waiting); retry later");
