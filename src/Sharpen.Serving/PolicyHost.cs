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
    /// <summary>Most sequences (prompts × n) decoded together in one engine call. Default 64.</summary>
    public int MaxBatch { get; init; } = 64;
    /// <summary>Most requests waiting for a batch; past it <see cref="PolicyHost.TrySubmit"/> refuses (the server answers 429). Default 256.</summary>
    public int MaxQueue { get; init; } = 256;
    /// <summary>The model name clients ask for (default: the checkpoint folder's name).</summary>
    public string? ModelId { get; init; }

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
/// <param name="SeedGiven">False when the client gave no seed: the job may then share its batch's random stream.</param>
/// <param name="TopLogprobs">How many most likely alternatives to report per completion token (0 = none).</param>
public sealed record GenerationJob(IReadOnlyList<IReadOnlyList<int>> Prompts, SamplingOptions Options, bool SeedGiven = true, int TopLogprobs = 0);

/// <summary>A token and its log-probability under the policy.</summary>
public readonly record struct TokenLogProb(int Id, float LogProb);

/// <summary>What a job produced.</summary>
/// <param name="Rollouts">Prompt by prompt, the samples of one prompt together (<see cref="Rollout.PromptIndex"/> within the job).</param>
/// <param name="TopLogprobs">When asked for: per rollout, per completion token, the most likely tokens (best first).</param>
public sealed record GenerationResult(IReadOnlyList<Rollout> Rollouts, IReadOnlyList<TokenLogProb[][]>? TopLogprobs);

/// <summary>Counters of what the batch loop has done (for tests, logs and the bench).</summary>
public sealed record PolicyHostStats(long Batches, long Jobs, long Sequences, int LargestBatch, long Reloads);

/// <summary>
/// Owns a policy and the one thread that runs torch on it. Requests go into a bounded queue
/// (<see cref="System.Threading.Channels"/>); the loop takes every request that is waiting, up to
/// <see cref="PolicyHostOptions.MaxBatch"/> sequences, and decodes requests with the same sampling settings in one
/// <see cref="RolloutEngine"/> call, so requests that arrive while a batch runs join the next one.
/// Weight reloads run on the same thread between batches. TorchSharp is used from this thread only
/// (docs/architecture.md: the finalizer race).
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
    long _batches, _jobs, _sequences, _reloadCount;
    int _largest;

    sealed record Pending(GenerationJob Job, TaskCompletionSource<GenerationResult> Done);

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
    public PolicyHostStats Stats => new(Interlocked.Read(ref _batches), Interlocked.Read(ref _jobs), Interlocked.Read(ref _sequences), Volatile.Read(ref _largest), Interlocked.Read(ref _reloadCount));

    /// <summary>Queues <paramref name="job"/>. Returns false, without queuing, when the queue is full or the host is stopping.</summary>
    public bool TrySubmit(GenerationJob job, out Task<GenerationResult> result)
    {
        ArgumentNullException.ThrowIfNull(job);
        var done = new TaskCompletionSource<GenerationResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        result = done.Task;
        if (_stopping || !_queue.Writer.TryWrite(new Pending(job, done))) return false;
        Wake();
        return true;
    }

    /// <summary>Queues and awaits <paramref name="job"/>; throws <see cref="QueueFullException"/> when the queue is full.</summary>
    public Task<GenerationResult> GenerateAsync(GenerationJob job, CancellationToken cancellationToken = default) =>
        TrySubmit(job, out var task) ? task.WaitAsync(cancellationToken) : throw new QueueFullException(_options.MaxQueue);

    /// <summary>
    /// Replaces the weights (and tokenizer) with those of the checkpoint folder <paramref name="directory"/>, between two
    /// batches. The architecture may differ. A folder that does not load leaves the served model as it was and fails the task.
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

    void Loop()
    {
        while (true)
        {
            while (_reloads.TryDequeue(out var r)) Reload(r.Path, r.Done);
            var batch = new List<Pending>();
            int sequences = 0;
            while (_queue.Reader.TryPeek(out var next))
            {
                int size = next.Job.Prompts.Count * next.Job.Options.SamplesPerPrompt;
                if (batch.Count > 0 && sequences + size > _options.MaxBatch) break;
                _queue.Reader.TryRead(out _);
                batch.Add(next);
                sequences += size;
            }
            if (batch.Count > 0) { RunBatch(batch, sequences); continue; }
            if (_stopping && _reloads.IsEmpty) return;
            _wake.Wait();
        }
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

    void RunBatch(List<Pending> batch, int sequences)
    {
        Interlocked.Increment(ref _batches);
        Interlocked.Add(ref _jobs, batch.Count);
        Interlocked.Add(ref _sequences, sequences);
        if (sequences > _largest) Volatile.Write(ref _largest, sequences);
        foreach (var group in batch.GroupBy(p => GroupKey(p.Job)))
        {
            var jobs = group.ToList();
            int longestPrompt = jobs.Max(p => p.Job.Prompts.Max(x => x.Count));
            int longestCompletion = jobs.Max(p => p.Job.Options.MaxNewTokens);
            if (jobs.Count > 1 && longestPrompt + longestCompletion > ContextLength)
            {
                foreach (var one in jobs) Run([one]);   // together they would not fit the context; alone each does
                continue;
            }
            Run(jobs);
        }
    }

    // Requests decode together when they sample alike. Seeds matter only when sampling and given by the client;
    // max_tokens may differ (the group decodes to the largest and each request is cut back to its own).
    static string GroupKey(GenerationJob job)
    {
        var o = job.Options;
        var seed = o.Greedy ? "-" : job.SeedGiven ? o.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture) : "any";
        return FormattableString.Invariant($"{o.Temperature}|{(o.Greedy ? 1 : o.TopP)}|{(o.Greedy ? 0 : o.TopK)}|{o.SamplesPerPrompt}|{o.StopAtEos}|{seed}|{string.Join('\u0001', o.StopStrings)}");
    }

    void Run(List<Pending> jobs)
    {
        try
        {
            var prompts = jobs.SelectMany(p => p.Job.Prompts).ToList();
            var first = jobs[0].Job.Options;
            var options = first with { MaxNewTokens = jobs.Max(p => p.Job.Options.MaxNewTokens), MaxBatchSequences = _options.MaxBatch };
            var rollouts = _engine.Generate(prompts, options);
            int n = options.SamplesPerPrompt, offset = 0, promptOffset = 0;
            foreach (var p in jobs)
            {
                int count = p.Job.Prompts.Count * n;
                var own = rollouts.Skip(offset).Take(count)
                    .Select(r => Truncate(r with { PromptIndex = r.PromptIndex - promptOffset }, p.Job.Options.MaxNewTokens)).ToList();
                offset += count;
                promptOffset += p.Job.Prompts.Count;
                try
                {
                    var top = p.Job.TopLogprobs > 0 ? TopLogprobs(own, p.Job.TopLogprobs) : null;
                    p.Done.TrySetResult(new GenerationResult(own, top));
                }
                catch (Exception e) { p.Done.TrySetException(e); }
            }
        }
        catch (Exception e)
        {
            foreach (var p in jobs) p.Done.TrySetException(e);
        }
    }

    Rollout Truncate(Rollout r, int maxNew)
    {
        if (r.CompletionIds.Length <= maxNew) return r;
        var ids = r.CompletionIds[..maxNew];
        return r with { CompletionIds = ids, LogProbs = r.LogProbs[..maxNew], CompletionText = Tokenizer.Decode(ids, skipSpecialTokens: true), Stop = StopReason.MaxTokens };
    }

    // The k most likely tokens at each completion position, teacher-forced over prompt + completion (one forward pass).
    TokenLogProb[][][] TopLogprobs(IReadOnlyList<Rollout> rollouts, int k)
    {
        var result = new TokenLogProb[rollouts.Count][][];
        k = Math.Min(k, _model.Config.VocabSize);
        bool wasTraining = _model.training;
        _model.eval();
        try
        {
            using var _ = no_grad();
            for (int i = 0; i < rollouts.Count; i++)
            {
                var r = rollouts[i];
                if (r.CompletionIds.Length == 0) { result[i] = []; continue; }
                using var scope = NewDisposeScope();
                var ids = tensor(r.PromptIds.Concat(r.CompletionIds).Select(x => (long)x).ToArray()).view(1, -1);    // (1, P+A)
                var logits = _model.Forward(ids).Logits.narrow(1, r.PromptIds.Length - 1, r.CompletionIds.Length);   // (1, A, V)
                var (values, indices) = logits.to(ScalarType.Float32).log_softmax(-1).topk(k, dim: -1);            // (1, A, k)
                var v = values.contiguous().data<float>().ToArray();
                var ix = indices.contiguous().data<long>().ToArray();
                result[i] = Enumerable.Range(0, r.CompletionIds.Length)
                    .Select(t => Enumerable.Range(0, k).Select(j => new TokenLogProb((int)ix[t * k + j], v[t * k + j])).ToArray()).ToArray();
            }
        }
        finally { if (wasTraining) _model.train(); }
        return result;
    }

    /// <summary>Stops taking requests, finishes the queued ones, and ends the torch thread.</summary>
    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _queue.Writer.TryComplete();
        _wake.Release();
        _thread.Join();
        // A job written in the instant between the loop's last look and the queue's completion: refuse it, never strand it.
        while (_queue.Reader.TryRead(out var late)) late.Done.TrySetException(new ObjectDisposedException(nameof(PolicyHost), "the server is stopping"));
        while (_reloads.TryDequeue(out var r)) r.Done.TrySetException(new ObjectDisposedException(nameof(PolicyHost), "the server is stopping"));
        if (_ownsModel) _model.Dispose();
    }
}

/// <summary>The request queue is full (the server answers 429).</summary>
public sealed class QueueFullException(int capacity) : Exception($"the server's request queue is full ({capacity} waiting); retry later");
