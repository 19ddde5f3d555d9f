using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Environments;
using Sharpen.Evaluation;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tasks;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Training.Rl;

/// <summary>What an RL run produced.</summary>
public sealed record RlResult(int Iterations, EvalResult? Eval, string FinalCheckpoint, double Seconds);

/// <summary>
/// Online RL. One iteration is a short list of named phases over one <see cref="RlBatch"/>:
/// <c>Collect</c> (sample prompts, generate G completions each, score them; DAPO's dynamic sampling draws more
/// rounds) → <c>Prepare</c> (token tensors and the engine's behaviour log-probs) → <c>ReferencePass</c>
/// (reference log-probs, critic values) → <c>EstimateAdvantages</c> (the algorithm's estimator) →
/// <c>UpdateActor</c> (K epochs of minibatch steps of its policy loss) → <c>UpdateCritic</c> (PPO) →
/// <c>Record</c> (metrics row, evaluation). The algorithm is known only through its <see cref="AlgorithmSpec"/>'s
/// delegates; <see cref="IterationLoop"/> owns resume, checkpoints, the run log and the final model.
/// </summary>
public sealed class RlTrainer(CausalLM policy, ITokenizer tokenizer, RlOptions options, IReadOnlyList<WeightedReward> rewards)
{
    /// <summary>Human-readable progress lines.</summary>
    public Action<string>? Log { get; init; }
    /// <summary>Optional task: accuracy of rollouts and greedy held-out accuracy are measured with its verifier.</summary>
    public IVerifiableTask? Task { get; init; }
    /// <summary>Held-out problems for the greedy evaluation.</summary>
    public IReadOnlyList<Problem> EvalProblems { get; init; } = [];
    /// <summary>The rollout engine; null = the built-in torch engine over the policy. After each update it is told to sync weights.</summary>
    public IRolloutEngine? Engine { get; init; }
    /// <summary>Truncated importance sampling (Yao et al. 2025) on the policy-gradient term: each token's advantage is weighted by
    /// min(π_trainer_old / π_engine, <see cref="TisCap"/>). Null: on when the engine is not the trainer's own (torch) engine and the
    /// policy loss is token-level (ppo_clip, vanilla). Whenever it is on or the engine is another, the trainer recomputes the old
    /// log-probs with its own forward pass and logs <c>rollout/logprob_abs_diff</c> and <c>rollout/kl_engine_trainer</c>.</summary>
    public bool? Tis { get; init; }
    /// <summary>C of the truncated importance weight; default 2.</summary>
    public double TisCap { get; init; } = 2.0;
    /// <summary>When the trainer needs its own old log-probs (see <see cref="Tis"/>), take them from the update's first forward
    /// pass instead of a separate one, where that pass is on-policy: the first minibatch holds every row (one minibatch per
    /// epoch), nothing filters rows out of the update, the KL is not in the reward and the advantage estimator does not read
    /// the log-probs, and no LoRA dropout. The logged mismatch and the TIS weights are the same; one forward pass fewer.
    /// False: always the separate pass (default true).</summary>
    public bool FoldOldLogProbs { get; init; } = true;
    /// <summary>One-step asynchronous rollouts (<c>rollout.async</c>): while the trainer updates on iteration k's rollouts, the
    /// engine already generates iteration k+1's with the weights it holds (those that generated iteration k); the weights are
    /// synced once both are done. Iteration k+1 therefore trains on rollouts one update old (logged as
    /// <c>rollout/policy_lag</c>); the trainer's recomputed old log-probs and the truncated IS weight correct for it. Needs an
    /// engine that holds its own weights (not the torch engine) and prompts (not an environment).</summary>
    public bool AsyncRollouts { get; init; }
    /// <summary>The reward-model folder a critic with <c>rl.critic.init: reward_model</c> starts from when <c>rl.critic.path</c>
    /// is not set (the recipe pipeline passes its first <c>rewards</c> entry with <c>model</c>).</summary>
    public string? RewardModelDirectory { get; init; }
    /// <summary>Multi-turn RL: episodes in this environment instead of prompts (run with <see cref="RunEnvironment"/>).</summary>
    public RlEnvironment? Environment { get; init; }

    readonly RlOptions _o = options.Validate();
    readonly AlgorithmSpec _spec = RlAlgorithms.Get(options.Algorithm);

    /// <summary>Runs the iterations; writes metrics.jsonl, summary.json, checkpoints/ and final/ into <paramref name="outDir"/>.</summary>
    public RlResult Run(IReadOnlyList<RlPrompt> prompts, string outDir, bool resume = false, CancellationToken cancel = default)
    {
        if (prompts.Count == 0 && Environment is null) throw new ArgumentException("no prompts");
        if (Environment is null && _spec.EnvironmentOnly)
            throw new ArgumentException($"rl.algorithm '{_o.Algorithm}' trains on multi-turn episodes; give the recipe an 'env' section");
        if (Environment is not null && _spec.UsesGreedyBaseline)
            throw new ArgumentException($"rl.algorithm '{_o.Algorithm}' needs a greedy completion of each prompt, which has no meaning for multi-turn episodes; use grpo, rloo, reinforce or ppo with 'env'");
        if (_o.GroupBy is { } col)
            for (int i = 0; i < prompts.Count; i++)
                if (!prompts[i].Fields.ContainsKey(col))
                    throw new ArgumentException($"prompt row {i + 1} has no field '{col}', which rl.group_by names as the group id");
        using var session = new Session(this, prompts, cancel);
        var loop = new IterationLoop(outDir, _o.Iterations, _o.CheckpointEvery, _o.KeepCheckpoints) { Log = Log };
        var (completed, finalDir, seconds) = loop.Run(session, resume, cancel);
        return new RlResult(completed, session.Eval, finalDir, seconds);
    }

    /// <summary>Multi-turn RL in <see cref="Environment"/>; writes the same files as <see cref="Run"/>, plus
    /// <c>eval_transcripts.jsonl</c> (the last held-out evaluation's trajectories).</summary>
    public RlResult RunEnvironment(string outDir, bool resume = false, CancellationToken cancel = default) =>
        Environment is null ? throw new InvalidOperationException("RunEnvironment needs the trainer's Environment") : Run([], outDir, resume, cancel);

    /// <summary>The last held-out environment evaluation of a <see cref="RunEnvironment"/> run.</summary>
    public EnvironmentEvalResult? EnvironmentEval { get; private set; }

    /// <summary>Offline TOPR on scored completions; see <see cref="ToprOfflineTrainer"/>.</summary>
    public RlResult RunOffline(IReadOnlyList<ScoredCompletion> data, string outDir, CancellationToken cancel = default) =>
        new ToprOfflineTrainer(policy, tokenizer, _o) { Log = Log, Task = Task, EvalProblems = EvalProblems }.Run(data, outDir, cancel);

    /// <summary>The rows the policy loss sees: with <paramref name="skipZeroGroups"/> only those of groups whose rewards differ,
    /// with <paramref name="maskTruncated"/> only those that did not stop at the token limit. A group whose rewards are all
    /// equal and ≥ <paramref name="positiveSignal"/> counts as carrying signal (OREAL's all-correct groups).</summary>
    internal static long[] TrainRows(IReadOnlyList<double> rewards, int g, IReadOnlyList<StopReason> stops, bool skipZeroGroups, bool maskTruncated,
        double? positiveSignal = null)
    {
        IEnumerable<long> rows = skipZeroGroups ? RowsOfGroupsWithSignal(rewards, g, positiveSignal) : Enumerable.Range(0, rewards.Count).Select(i => (long)i);
        return (maskTruncated ? rows.Where(i => stops[(int)i] != StopReason.MaxTokens) : rows).ToArray();
    }

    /// <summary>Share of the id groups (rows with equal <paramref name="ids"/>) whose rewards are all equal.</summary>
    internal static double ZeroAdvantageIdGroupFraction(IReadOnlyList<double> rewards, IReadOnlyList<string> ids)
    {
        var groups = ids.Select((id, i) => (id, r: rewards[i])).GroupBy(x => x.id, StringComparer.Ordinal).ToList();
        return groups.Count == 0 ? double.NaN : groups.Count(gr => gr.Select(x => x.r).Distinct().Count() == 1) / (double)groups.Count;
    }

    /// <summary>Rows of the groups (G consecutive rows) whose rewards are not all equal, or (with <paramref name="positiveSignal"/>)
    /// are all at least that value.</summary>
    internal static long[] RowsOfGroupsWithSignal(IReadOnlyList<double> rewards, int g, double? positiveSignal = null) =>
        Enumerable.Range(0, rewards.Count / g).Where(k => rewards.Skip(k * g).Take(g).Distinct().Count() > 1
                || (positiveSignal is { } p && rewards.Skip(k * g).Take(g).All(r => r >= p)))
            .SelectMany(k => Enumerable.Range(k * g, g)).Select(x => (long)x).ToArray();

    /// <summary>R² of reward vs. outcome over all rows (<c>PREFIX</c>all) and over the rows each PF-PPO filter keeps
    /// (best, best_worst, best_random) of groups of <paramref name="g"/> consecutive rows.</summary>
    internal static Dictionary<string, double> FilterR2(IReadOnlyList<double> rewards, IReadOnlyList<double> outcome, int g, RlOptions o, int seed, string prefix)
    {
        double R2(PolicyFilter f, double best, double worst)
        {
            var rows = PolicyFiltration.Select(rewards, g, f, best, worst, new Random(seed));
            return PolicyFiltration.RSquared(rows.Select(i => rewards[i]).ToList(), rows.Select(i => outcome[i]).ToList());
        }
        return new()
        {
            [prefix + "all"] = PolicyFiltration.RSquared(rewards, outcome),
            [prefix + "best"] = R2(PolicyFilter.BestWorst, o.FilterBestFraction, 0),
            [prefix + "best_worst"] = R2(PolicyFilter.BestWorst, o.FilterBestFraction, o.FilterWorstFraction),
            [prefix + "best_random"] = R2(PolicyFilter.BestRandom, o.FilterBestFraction, o.FilterWorstFraction),
        };
    }

    /// <summary>One run's state (reference, critic, optimizers, controllers, data position) and its phases.</summary>
    sealed class Session : IIterationTrainer, IDisposable
    {
        readonly RlTrainer _t;
        readonly RlOptions _o;
        readonly AlgorithmSpec _spec;
        readonly IReadOnlyList<RlPrompt> _prompts;
        readonly CancellationToken _cancel;
        readonly CausalLM? _reference;          // a frozen copy; null without KL or with LoRA (then the base, adapters off)
        readonly bool _referenceIsBase;
        readonly CausalLM? _critic;             // null without a critic, or with LoRA (then the head reads the policy's frozen base)
        readonly ScalarHead? _head;
        readonly bool _criticOnBase;            // LoRA: the value head sits on the policy's base with the adapters off
        CausalLM? _maskPolicy;                  // NLPO: the delayed copy whose top-p set masks the action space
        readonly PtxSource? _ptx;
        readonly OrealTokenModel? _tokenRm;     // OREAL: the token-level outcome reward head whose weights scale each token's term
        readonly optim.Optimizer _opt;
        readonly optim.Optimizer? _criticOpt;
        readonly IRolloutEngine _engine;
        readonly RolloutEngine _evalEngine;
        readonly ActorUpdate _actor;
        readonly bool _recompute;               // the trainer recomputes the old log-probs (the engine's are kept for the mismatch)
        readonly bool _tis;                     // truncated importance weights on the advantages
        readonly bool _foldable;                // the recompute can be taken from the update's first forward (see FoldOldLogProbs)
        readonly NonFiniteGuard _guard = new("rl");
        readonly NonFiniteGuard _criticGuard = new("rl critic");
        IKlController _kl;
        MovingAverageBaseline _baseline;
        RunningMoments _rewardStats = new();
        DataCursor _cursor;
        (int Epoch, int Position)? _cursorBeforePrefetch;   // what a checkpoint records while a prefetch has drawn ahead
        Task<RlBatch>? _prefetch;                          // rollout.async: the next iteration's collection, running
        int _prefetchIteration = -1;
        double _trainSeconds;                   // wall-clock without evaluation

        public EvalResult? Eval { get; private set; }
        public CausalLM Policy => _t.Policy;
        public ITokenizer Tokenizer => _t.Tokenizer;
        public optim.Optimizer Optimizer => _opt;

        public Session(RlTrainer t, IReadOnlyList<RlPrompt> prompts, CancellationToken cancel)
        {
            (_t, _o, _spec, _prompts, _cancel) = (t, t._o, t._spec, prompts, cancel);
            bool needReference = (_o.Beta > 0 || (_spec.TurnKl && _o.FirstTurnBeta > 0)) && _spec.Kl != KlPlacement.None;
            _referenceIsBase = needReference && Policy.Lora is not null;
            _reference = needReference && !_referenceIsBase ? Policy.Copy(trainable: false) : null;
            _criticOnBase = _spec.UsesCritic && Policy.Lora is not null;
            if (_criticOnBase && _o.Critic.Init == CriticInit.RewardModel)
                throw new ArgumentException("rl.critic.init: reward_model loads a second model; with model.lora the critic is a value head on the policy's frozen base (use init: policy)");
            if (_spec.UsesCritic && !_criticOnBase && _o.Critic.Init == CriticInit.RewardModel)
                (_critic, _head) = LoadRewardModelCritic(_o.Critic.Path ?? t.RewardModelDirectory
                    ?? throw new ArgumentException("rl.critic.init: reward_model needs rl.critic.path or a 'rewards' entry with 'model' (a reward-model folder)"));
            else
            {
                _critic = _spec.UsesCritic && !_criticOnBase ? Policy.Copy(trainable: true) : null;
                _head = _spec.UsesCritic ? new ScalarHead(Policy.Config.HiddenSize) : null;
            }
            _opt = optim.AdamW(Policy.TrainableParameters(), lr: _o.LearningRate, weight_decay: 0.0);
            _criticOpt = _head is null ? null : optim.AdamW(CriticParameters(), lr: _o.CriticLearningRate, weight_decay: 0.0);
            _kl = _o.TargetKl is { } target ? new AdaptiveKlController(_o.Beta, target, _o.KlHorizon) : new FixedKlController(_o.Beta);
            _baseline = new MovingAverageBaseline(_o.BaselineDecay);
            _evalEngine = new RolloutEngine(Policy, Tokenizer);
            _engine = t.Engine ?? _evalEngine;
            if (_o.ActionMaskTopP < 1)
            {
                if (t.Engine is not null) throw new ArgumentException("rl.action_mask_top_p (NLPO) samples with the built-in torch engine; remove the 'rollout' engine");
                _maskPolicy = Policy.Copy(trainable: false);
                _engine = new ActionMaskEngine(Policy, () => _maskPolicy!, Tokenizer, _o.ActionMaskTopP);
            }
            if (_o.PtxCoefficient > 0) _ptx = new PtxSource(_o.PtxData!, Tokenizer, _o.PtxBatchSize, _o.Seed);
            if (_o.OrealTokenWeights) _tokenRm = new OrealTokenModel(Policy.Config.HiddenSize, _o.OrealTokenRmLearningRate, _o.OrealTokenRmSteps);
            bool tokenLevel = _spec.PolicyLoss.RowsPerUnit == 1 && !_spec.PolicyLoss.OffPolicy;
            if (t.Tis == true && !tokenLevel)
                throw new ArgumentException($"rollout.tis weights token advantages; the policy loss of '{_o.Algorithm}' reads sequence advantages (set tis: false)");
            if (!(t.TisCap >= 1) || double.IsInfinity(t.TisCap)) throw new ArgumentException($"rollout.tis_cap must be a finite number ≥ 1, got {t.TisCap}");
            _tis = t.Tis ?? (tokenLevel && !_engine.SamplesTrainerPolicy);
            _recompute = _tis || !_engine.SamplesTrainerPolicy;
            _foldable = _recompute && t.FoldOldLogProbs && _spec.Kl != KlPlacement.InReward && !_spec.Estimator.ReadsLogProbs
                && (Policy.Lora?.Dropout ?? 0) == 0 && _maskPolicy is null;
            _actor = new ActorUpdate(Policy, _opt, _o, _spec, _guard) { ActionMask = _maskPolicy is null ? null : MaskOf, Ptx = _ptx };
            _cursor = new DataCursor(Math.Max(1, prompts.Count), _o.Seed);
            if (t.AsyncRollouts)
            {
                if (_engine.SamplesTrainerPolicy)
                    throw new ArgumentException("rollout.async overlaps generation with the update; the torch engine samples the very policy being updated (use engine: llamacpp or openai)");
                if (t.Environment is not null)
                    throw new ArgumentException("rollout.async is for prompt rollouts; multi-turn environments step through the engine turn by turn (remove rollout.async)");
            }
        }

        /// <summary>rollout.async: starts collecting iteration <paramref name="next"/> on a worker thread with the weights the
        /// engine holds now. The data position a checkpoint records stays the one before this draw, so a resumed run draws
        /// the same prompts for <paramref name="next"/>.</summary>
        void StartPrefetch(int next)
        {
            _cursorBeforePrefetch = (_cursor.Epoch, _cursor.Position);
            _prefetchIteration = next;
            _prefetch = System.Threading.Tasks.Task.Factory.StartNew(() => Collect(next), _cancel,
                TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        /// <summary>Waits for a running prefetch (the engine is not touched again before it is done); returns the seconds waited.</summary>
        double AwaitPrefetch()
        {
            if (_prefetch is null || _prefetch.IsCompleted) return 0;
            var sw = Stopwatch.StartNew();
            AwaitTask(_prefetch);   // its exception surfaces where the batch is taken
            return sw.Elapsed.TotalSeconds;
        }

        /// <summary>The prefetched batch of iteration <paramref name="it"/>, or null when none was started for it.</summary>
        RlBatch? TakePrefetched(int it)
        {
            if (_prefetch is null) return null;
            var task = _prefetch;
            bool mine = _prefetchIteration == it;
            _prefetch = null; _prefetchIteration = -1; _cursorBeforePrefetch = null;
            AwaitTask(task);
            if (!mine) return null;
            var b = task.GetAwaiter().GetResult();   // rethrows the worker's exception as it was
            b.PolicyLag = 1;
            return b;
        }

        static void AwaitTask(Task task) { try { task.Wait(); } catch (AggregateException) { } }

        public IterationReport Iterate(int it)
        {
            _cancel.ThrowIfCancellationRequested();
            if (_maskPolicy is not null && it > 0 && it % _o.ActionMaskUpdateEvery == 0)
            {
                // NLPO: every μ iterations the masking policy becomes a copy of the current policy.
                _maskPolicy.Dispose();
                _maskPolicy = Policy.Copy(trainable: false);
            }
            var wall = Stopwatch.StartNew();
            var batch = TakePrefetched(it) ?? Collect(it);
            if (_t.AsyncRollouts && it + 1 < _o.Iterations) StartPrefetch(it + 1);
            Filter(batch, it);
            using var scope = NewDisposeScope();
            var phase = Stopwatch.StartNew();
            MemLog("collect");
            Prepare(batch, it);
            ReferencePass(batch);
            MemLog("reference");
            batch.Timing["reference"] = Lap(phase);
            EstimateAdvantages(batch);
            WeightTokens(batch);
            batch.Timing["advantage"] = Lap(phase);
            var m = UpdateActor(batch, it, out double trainTokens, out int trainedRows);
            MemLog("update_actor");
            batch.Timing["update_actor"] = Lap(phase);
            var (valueLoss, valueClip) = UpdateCritic(batch, it);
            batch.Timing["update_critic"] = Lap(phase);
            batch.Timing["iteration"] = wall.Elapsed.TotalSeconds;   // wall clock before recording: with rollout.async the phases overlap
            var report = Record(batch, it, m, trainTokens, trainedRows, valueLoss, valueClip, phase);
            MemLog("record");
            return report;
        }

        static readonly bool MemLogOn = System.Environment.GetEnvironmentVariable("SHARPEN_MEMLOG") == "1";
        static void MemLog(string phase)
        {
            if (!MemLogOn) return;
            var h = Torch.ProcessMemory.HeapStats();
            Console.Error.WriteLine($"memlog {phase}: rss {Torch.ProcessMemory.ResidentBytes() / 1048576} MB, peak {Torch.ProcessMemory.PeakResidentBytes() / 1048576} MB, heap arena {h?.Arena / 1048576} MB mapped {h?.Mapped / 1048576} MB inuse {h?.InUse / 1048576} MB free {h?.Free / 1048576} MB, gc {GC.GetTotalMemory(false) / 1048576} MB");
        }

        // ---------------------------------------------------------------- phases

        /// <summary>Rollout + score. With dynamic sampling, more rounds of prompts until the batch holds
        /// PromptsPerIteration groups whose rewards differ, or MaxSamplingRounds rounds were drawn.</summary>
        RlBatch Collect(int it)
        {
            if (_t.Environment is { } env) return _spec.BranchedPairs ? CollectBranches(it, env) : CollectEpisodes(it, env);
            int maxNew = _o.MaxNewTokensAt(it);
            var b = new RlBatch { MaxNewTokens = maxNew };
            var rewards = RewardsFor(maxNew);
            int g = _o.SamplesPerPrompt;
            bool dynamic = _o.DynamicSampling && g > 1 && _spec.Estimator.GroupRelative;
            do
            {
                var round = _cursor.Next(_o.PromptsPerIteration).Select(i => _prompts[i]).ToList();
                if (_o.DatasetReset > 0) ResetToDataset(round, it, b);
                var sw = Stopwatch.StartNew();
                var texts = round.Select(p => p.Prompt).ToList();
                var ro = _engine.Generate(texts, new SamplingOptions
                {
                    SamplesPerPrompt = g, Temperature = _o.Temperature, TopP = _o.TopP, MaxNewTokens = maxNew,
                    Seed = (long)_o.Seed * 1_000_003 + it + 7_919L * 1_000_003 * b.Rounds, MaxBatchSequences = 512,
                });
                IReadOnlyList<Rollout>? greedy = _spec.UsesGreedyBaseline
                    ? _engine.Generate(texts, new SamplingOptions { Temperature = 0, MaxNewTokens = maxNew, MaxBatchSequences = 512 })
                    : null;
                b.Timing["generate"] = b.Timing.GetValueOrDefault("generate") + sw.Elapsed.TotalSeconds;
                sw.Restart();
                b.GeneratedTokens += ro.Sum(r => r.CompletionIds.Length) + (greedy?.Sum(r => r.CompletionIds.Length) ?? 0);
                var total = Score(b, rewards, round, ro, greedy);
                KeepGroups(b, round, ro, total, dynamic);
                b.Timing["score"] = b.Timing.GetValueOrDefault("score") + sw.Elapsed.TotalSeconds;
            } while (dynamic && b.Prompts.Count < _o.PromptsPerIteration && b.Rounds < _o.MaxSamplingRounds);
            if (_o.FineGrained is { } unit)
            {
                var sw = Stopwatch.StartNew();
                b.Segments = SegmentRewardScoring.Score(rewards, b.Prompts, b.Rollouts, Tokenizer, unit, _cancel);   // FGAIF: each segment scored
                b.Timing["score"] = b.Timing.GetValueOrDefault("score") + sw.Elapsed.TotalSeconds;
            }
            return b;
        }

        /// <summary>
        /// Multi-turn collection: P seeds × G trajectories (a group shares its seed, rows of a group adjacent) played in
        /// lock-step through the engine; each trajectory becomes one row, its first context as the prompt and everything
        /// after it (the policy's turns and the environment's text between them) as the "completion", whose loss mask
        /// (<see cref="MultiTurnBatch"/>) is 1 on the policy's tokens only. The row's reward is the trajectory's return.
        /// With dynamic sampling, more rounds of seeds until P groups whose returns differ were kept.
        /// </summary>
        RlBatch CollectEpisodes(int it, RlEnvironment env)
        {
            var b = new RlBatch { Trajectories = [], MaxNewTokens = _o.MaxNewTokensAt(it) };
            int g = _o.SamplesPerPrompt, p = _o.PromptsPerIteration;
            bool dynamic = _o.DynamicSampling && g > 1 && _spec.Estimator.GroupRelative;
            do
            {
                var sw = Stopwatch.StartNew();
                var groupSeeds = Enumerable.Range(0, p).Select(k => env.TrainSeedOffset + (it * _o.MaxSamplingRounds + b.Rounds) * p + k).ToArray();
                var seeds = groupSeeds.SelectMany(s => Enumerable.Repeat(s, g)).ToArray();
                var envs = seeds.Select(_ => env.Create()).ToArray();
                var options = env.Rollout with
                {
                    Sampling = env.Rollout.Sampling with
                    {
                        SamplesPerPrompt = 1, Temperature = _o.Temperature, TopP = _o.TopP, MaxNewTokens = b.MaxNewTokens, MaxBatchSequences = 512,
                        Seed = (long)_o.Seed * 1_000_003 + it * 1_000L + 7_919L * 1_000_003 * b.Rounds,
                    },
                };
                IReadOnlyList<Trajectory> played;
                try { played = new MultiTurnRollout(_engine, options, env.Renderer).RunAsync(envs, seeds, _cancel).GetAwaiter().GetResult(); }
                finally { foreach (var e in envs) (e as IDisposable)?.Dispose(); }
                b.Timing["generate"] = b.Timing.GetValueOrDefault("generate") + sw.Elapsed.TotalSeconds;
                if (played.FirstOrDefault(t => t.Turns.Count == 0) is { } empty)
                    throw new InvalidOperationException($"environment '{empty.Environment}' (seed {empty.Seed}): the first observation fills the token budget ({env.Rollout.MaxTrajectoryTokens}); raise env.token_budget");
                CountAttempts(b, played);
                if (_spec.ShapeTurnRewards is { } shape) played = played.Select(t => Reward(t, shape(t, _o))).ToArray();
                b.GeneratedTokens += played.Sum(t => t.Turns.Sum(x => x.TokenIds!.Length));
                var returns = played.Select(t => t.Return).ToArray();
                b.AllRewards.AddRange(returns);
                b.AllTrajectories.AddRange(played);
                b.Correct += played.Count(t => t.Succeeded);
                b.Rounds++;
                var signal = g > 1 ? RowsOfGroupsWithSignal(returns, g).Where(x => x % g == 0).Select(x => (int)(x / g)).ToHashSet() : [];
                bool lastChance = dynamic && b.Prompts.Count == 0 && b.Rounds >= _o.MaxSamplingRounds;
                for (int k = 0; k < p && b.Prompts.Count < p; k++)
                {
                    if (dynamic && !lastChance && !signal.Contains(k)) continue;
                    for (int j = 0; j < g; j++)
                    {
                        var t = played[k * g + j];
                        var seq = TrajectorySequence.FromTokens(t);
                        int c0 = t.Turns[0].ContextIds!.Length;
                        b.Rollouts.Add(new Rollout(b.Prompts.Count, j, seq.InputIds[..c0], seq.InputIds[c0..], "", seq.OldLogProbs![c0..],
                            t.Truncated ? StopReason.MaxTokens : StopReason.Eos));
                        b.Trajectories.Add(t);
                        b.Rewards.Add(t.Return);
                    }
                    b.Prompts.Add(new RlPrompt($"{played[k * g].Environment} seed {groupSeeds[k]}", new Dictionary<string, string> { ["seed"] = groupSeeds[k].ToString(System.Globalization.CultureInfo.InvariantCulture) }));
                }
            } while (dynamic && b.Prompts.Count < p && b.Rounds < _o.MaxSamplingRounds);
            return b;
        }

        /// <summary>
        /// REFUEL's collection (Gao et al. 2024, arXiv:2410.04612, Algorithm 1): P seeds, one on-policy episode each; for each,
        /// a turn h drawn uniformly from its turns; two environments replay its first h actions (<see cref="PrefixReplayEnvironment"/>)
        /// and the policy plays on from the shared prefix s_h to the end. Row pair (2k, 2k+1) is the two turn-h responses, each
        /// with the prefix as its prompt and its future return Q̂(s_h, y) (the sum of the rewards from turn h on) as its reward.
        /// Branches of one h are played together, with the rollout's turn limit reduced by h.
        /// </summary>
        RlBatch CollectBranches(int it, RlEnvironment env)
        {
            int p = _o.PromptsPerIteration;
            var b = new RlBatch { Trajectories = [], MaxNewTokens = _o.MaxNewTokensAt(it), Branched = true };
            var sw = Stopwatch.StartNew();
            var seeds = Enumerable.Range(0, p).Select(k => env.TrainSeedOffset + it * _o.MaxSamplingRounds * p + k).ToArray();
            var options = env.Rollout with
            {
                Sampling = env.Rollout.Sampling with
                {
                    SamplesPerPrompt = 1, Temperature = _o.Temperature, TopP = _o.TopP, MaxNewTokens = b.MaxNewTokens, MaxBatchSequences = 512,
                    Seed = (long)_o.Seed * 1_000_003 + it * 1_000L,
                },
            };
            var prefixes = Play(env, options, seeds.Select(_ => env.Create()).ToArray(), seeds);
            CountAttempts(b, prefixes);
            b.AllTrajectories.AddRange(prefixes);
            b.Trajectories!.AddRange(prefixes);
            b.AllRewards.AddRange(prefixes.Select(t => t.Return));
            b.Correct += prefixes.Count(t => t.Succeeded);
            b.GeneratedTokens += prefixes.Sum(t => t.Turns.Sum(x => x.TokenIds!.Length));
            var rng = new Random(unchecked(_o.Seed * 7_919 + it * 104_729) & int.MaxValue);
            var h = prefixes.Select(t => rng.Next(t.Turns.Count)).ToArray();
            var branches = new Trajectory[2 * p];
            foreach (var group in Enumerable.Range(0, p).GroupBy(k => h[k]))
            {
                var ks = group.ToArray();
                var actions = ks.Select(k => prefixes[k].Turns.Take(h[k]).Select(x => prefixes[k].Messages[x.MessageIndex].Content).ToArray()).ToArray();
                var envs = ks.SelectMany((k, j) => new IEnvironment[] { new PrefixReplayEnvironment(env.Create(), actions[j]), new PrefixReplayEnvironment(env.Create(), actions[j]) }).ToArray();
                var branchOptions = options with
                {
                    MaxTurns = Math.Max(1, options.MaxTurns - group.Key),
                    Sampling = options.Sampling with { Seed = options.Sampling.Seed + 7_919L * (group.Key + 1) },
                };
                var played = Play(env, branchOptions, envs, ks.SelectMany(k => new[] { seeds[k], seeds[k] }).ToArray());
                for (int j = 0; j < ks.Length; j++) (branches[2 * ks[j]], branches[2 * ks[j] + 1]) = (played[2 * j], played[2 * j + 1]);
            }
            b.Timing["generate"] = sw.Elapsed.TotalSeconds;
            for (int k = 0; k < p; k++)
            {
                b.Prompts.Add(new RlPrompt($"{prefixes[k].Environment} seed {seeds[k]} turn {h[k] + 1}", new Dictionary<string, string>
                {
                    ["seed"] = seeds[k].ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["turn"] = (h[k] + 1).ToString(System.Globalization.CultureInfo.InvariantCulture),
                }));
                for (int j = 0; j < 2; j++)
                {
                    var t = branches[2 * k + j];
                    var y = t.Turns[0];
                    b.GeneratedTokens += t.Turns.Sum(x => x.TokenIds!.Length);
                    b.Rollouts.Add(new Rollout(k, j, y.ContextIds!, y.TokenIds!, t.Messages[y.MessageIndex].Content, y.LogProbs!,
                        t.Truncated && t.Turns.Count == 1 ? StopReason.MaxTokens : StopReason.Eos));
                    b.Rewards.Add(t.Return);                                                   // Q̂(s_h, y): the rewards from turn h on
                }
            }
            b.Rounds = 1;
            return b;
        }

        /// <summary>Plays <paramref name="envs"/> (reset with <paramref name="seeds"/>) to the end through the engine; disposes them.</summary>
        IReadOnlyList<Trajectory> Play(RlEnvironment env, MultiTurnOptions options, IEnvironment[] envs, int[] seeds)
        {
            IReadOnlyList<Trajectory> played;
            try { played = new MultiTurnRollout(_engine, options, env.Renderer).RunAsync(envs, seeds, _cancel).GetAwaiter().GetResult(); }
            finally { foreach (var e in envs) (e as IDisposable)?.Dispose(); }
            if (played.FirstOrDefault(t => t.Turns.Count == 0) is { } empty)
                throw new InvalidOperationException($"environment '{empty.Environment}' (seed {empty.Seed}): the first observation (with any replayed prefix) fills the token budget ({env.Rollout.MaxTrajectoryTokens}); raise env.token_budget");
            return played;
        }

        /// <summary>A trajectory with its turns' rewards replaced by <paramref name="rewards"/>.</summary>
        static Trajectory Reward(Trajectory t, double[] rewards) =>
            t with { Turns = t.Turns.Select((x, k) => x with { Reward = rewards[k] }).ToArray() };

        /// <summary>Counts the episodes whose last turn reports both attempts' verdicts (the self-correction environment).</summary>
        static void CountAttempts(RlBatch b, IReadOnlyList<Trajectory> played)
        {
            var (n, first, second) = b.Attempts;
            foreach (var t in played)
                if (t.FinalInfo.TryGetValue("first_correct", out var f) && t.FinalInfo.TryGetValue("second_correct", out var s))
                    (n, first, second) = (n + 1, first + (f == "true" ? 1 : 0), second + (s == "true" ? 1 : 0));
            b.Attempts = (n, first, second);
        }

        /// <summary>The caller's rewards, plus DAPO's overlong punishment (L_max = this iteration's limit) when rl.overlong_buffer is set.</summary>
        IReadOnlyList<WeightedReward> RewardsFor(int maxNew) => _o.OverlongBuffer > 0
            ? [.. _t.Rewards, new(new OverlongPenalty(maxNew, _o.OverlongBuffer), _o.OverlongPenalty)]
            : _t.Rewards;

        /// <summary>Scores a round's rollouts (and greedy completions) with the rewards; counts verified-correct ones.</summary>
        double[] Score(RlBatch b, IReadOnlyList<WeightedReward> rewards, List<RlPrompt> round, IReadOnlyList<Rollout> ro, IReadOnlyList<Rollout>? greedy)
        {
            var ctx = RlPrompt.Contexts(round, ro);
            var sc = RewardCombiner.ScoreAsync(rewards, ctx, _cancel).AsTask().GetAwaiter().GetResult();
            if (greedy is not null)
                b.GreedyRewards = RewardCombiner.ScoreAsync(rewards, RlPrompt.Contexts(round, greedy), _cancel).AsTask().GetAwaiter().GetResult().Total;
            if (_t.Task is { } task) b.Correct += ctx.Count(c => task.Verify(TaskReward.ToProblem(c), c.Completion).Correct);
            b.AllRewards.AddRange(sc.Total);
            foreach (var (name, mean) in sc.MeanByFunction)
                if (!double.IsNaN(mean)) b.FunctionSums[name] = (b.FunctionSums.GetValueOrDefault(name).Sum + mean, b.FunctionSums.GetValueOrDefault(name).Rounds + 1);
                else b.FunctionSums.TryAdd(name, (0, 0));
            b.Rounds++;
            return sc.Total;
        }

        /// <summary>DR-PO: each prompt of the round is, with probability <see cref="RlOptions.DatasetReset"/>, replaced by a reset
        /// to a random prefix of its dataset response (<see cref="DatasetReset.Reset"/>); seeded by the run seed, iteration and round.</summary>
        void ResetToDataset(List<RlPrompt> round, int it, RlBatch b)
        {
            var rng = new Random(unchecked(_o.Seed * 7_919 + it * 104_729 + b.Rounds * 31 + 17));
            for (int k = 0; k < round.Count; k++)
            {
                if (rng.NextDouble() >= _o.DatasetReset) continue;
                if (DatasetReset.Reset(round[k], Tokenizer, rng) is { } reset) { round[k] = reset; b.ResetPrompts++; }
            }
        }

        /// <summary>Without dynamic sampling every group is kept; with it, the groups that carry signal, in prompt order
        /// (and, when no round had any, the last round's groups: their advantages are zero, only the KL term acts).</summary>
        void KeepGroups(RlBatch b, List<RlPrompt> round, IReadOnlyList<Rollout> ro, double[] total, bool dynamic)
        {
            int g = _o.SamplesPerPrompt;
            var signal = g > 1 ? RowsOfGroupsWithSignal(total, g, _spec.Estimator.PositiveGroupsCarrySignal).Where(x => x % g == 0).Select(x => (int)(x / g)).ToHashSet() : [];
            bool lastChance = dynamic && b.Prompts.Count == 0 && b.Rounds >= _o.MaxSamplingRounds;
            for (int k = 0; k < round.Count && b.Prompts.Count < _o.PromptsPerIteration; k++)
            {
                if (dynamic && !lastChance && !signal.Contains(k)) continue;
                for (int j = 0; j < g; j++)
                {
                    b.Rollouts.Add(ro[k * g + j] with { PromptIndex = b.Prompts.Count });
                    b.Rewards.Add(total[k * g + j]);
                }
                b.Prompts.Add(round[k]);
            }
        }

        /// <summary>
        /// PF-PPO (Zhang et al. 2024): with a task, the R² of reward vs. the verifier's outcome on the samples each filter would
        /// keep (<c>pf/r2_all</c>, <c>pf/r2_best</c>, <c>pf/r2_best_worst</c>, <c>pf/r2_best_random</c>), on this iteration's
        /// rollouts before any update has seen them; then, with <c>rl.filter</c>, only the kept rows stay in the batch.
        /// </summary>
        void Filter(RlBatch b, int it)
        {
            int g = _o.SamplesPerPrompt;
            if (b.Trajectories is not null || g < 2 || b.Rollouts.Count % g != 0) return;
            bool measure = _t.Task is not null && (_o.Filter != PolicyFilter.None || _spec.Name == "pf_ppo");
            if (!measure && _o.Filter == PolicyFilter.None) return;
            double[]? outcome = null;
            if (_t.Task is { } task)
            {
                var ctx = RlPrompt.Contexts(b.Prompts, b.Rollouts);
                outcome = ctx.Select(c => task.Verify(TaskReward.ToProblem(c), c.Completion).Correct ? 1.0 : 0.0).ToArray();
                foreach (var (key, value) in FilterR2(b.Rewards, outcome, g, _o, unchecked(_o.Seed * 31 + it) & int.MaxValue, "pf/r2_"))
                    b.Extra[key] = value;
            }
            if (_o.Filter == PolicyFilter.None) return;
            var kept = PolicyFiltration.Select(b.Rewards, g, _o.Filter, _o.FilterBestFraction, _o.FilterWorstFraction,
                new Random(unchecked(_o.Seed * 31 + it) & int.MaxValue));
            int generated = b.Rollouts.Count;
            var rollouts = kept.Select(i => b.Rollouts[i]).ToList();
            var rewards = kept.Select(i => b.Rewards[i]).ToList();
            b.Rollouts.Clear(); b.Rollouts.AddRange(rollouts);
            b.Rewards.Clear(); b.Rewards.AddRange(rewards);
            b.Extra["pf/kept_fraction"] = kept.Length / (double)generated;
        }

        /// <summary>
        /// PF-PPO's filter choice on held-out rollouts: G samples of each of the first <c>eval_problems</c> held-out problems (never
        /// trained on), scored by the run's rewards and the verifier; the R² of reward vs. outcome on what each filter would keep
        /// (<c>pf/heldout_r2_all</c>, <c>_best</c>, <c>_best_worst</c>, <c>_best_random</c>). Logged on evaluation rows.
        /// </summary>
        Dictionary<string, double> HeldOutFilterR2(IVerifiableTask task, IReadOnlyList<Problem> problems, int it)
        {
            int g = _o.SamplesPerPrompt;
            var prompts = problems.Select(RlPrompt.From).ToList();
            IReadOnlyList<Rollout> ro;
            using (no_grad())
                ro = _evalEngine.Generate(prompts.Select(p => p.Prompt).ToList(), new SamplingOptions
                {
                    SamplesPerPrompt = g, Temperature = _o.Temperature, TopP = _o.TopP, MaxNewTokens = _o.MaxNewTokens,
                    Seed = (long)_o.Seed * 7_919 + 1_000_003L * (it + 1), MaxBatchSequences = 512,
                });
            var ctx = RlPrompt.Contexts(prompts, ro);
            var rewards = RewardCombiner.ScoreAsync(_t.Rewards, ctx, _cancel).AsTask().GetAwaiter().GetResult().Total;
            var outcome = ctx.Select(c => task.Verify(TaskReward.ToProblem(c), c.Completion).Correct ? 1.0 : 0.0).ToArray();
            return FilterR2(rewards, outcome, g, _o, unchecked(_o.Seed * 37 + it) & int.MaxValue, "pf/heldout_r2_");
        }

        /// <summary>The kept rollouts as token tensors, with the engine's log-probs <c>(B, A)</c>; the old log-probs are the
        /// engine's, or, when the trainer recomputes them, its own forward pass's (and then the truncated IS weights).</summary>
        void Prepare(RlBatch b, int it)
        {
            int padId = Tokenizer.PadTokenId ?? 0;
            if (b.Trajectories is { } played && !b.Branched)
            {
                // Multi-turn: the "completion" holds the environment's text too; only the policy's tokens are trained on,
                // and each turn's reward sits at its last token (for token-level estimators).
                var mt = MultiTurnBatch.Build(played, padId);
                (b.Seq, b.OldLogProbs, b.TokenRewards) = (mt.Seq, mt.OldLogProbs, mt.TurnRewards);
                b.TurnStates = MultiTurnBatch.StateIds(played, mt.TurnIds, b.Mask);
                if (_spec.TurnKl) b.KlWeights = MultiTurnReturns.TurnKlWeights(mt.TurnIds, b.Mask, _o.FirstTurnBeta ?? _o.Beta, _o.Beta);   // (B, A)
                return;
            }
            b.Seq = SequenceBatch.Build(b.Rollouts.Select(r => (IReadOnlyList<int>)r.PromptIds).ToList(),
                b.Rollouts.Select(r => (IReadOnlyList<int>)r.CompletionIds).ToList(), padId);
            b.EngineLogProbs = Pad(b.Rollouts.Select(r => r.LogProbs).ToList(), b.Seq.CompletionIds.shape[1]) * b.Mask;   // (B, A)
            if (b.Segments is { } segments) b.TokenRewards = SegmentRewardScoring.Place(segments, b.Mask, _o.SmoothWindow);   // (B, A) dense segment rewards
            if (!_recompute) { b.OldLogProbs = b.EngineLogProbs; return; }
            if (_foldable && it >= _o.CriticWarmupIterations && !FiltersRows() && (_o.MiniBatchSize == 0 || _o.MiniBatchSize >= b.Rollouts.Count))
            {
                // The update's first minibatch is every row on the sampled parameters: it supplies the old log-probs (UpdateActor).
                b.Folded = new FoldedOldLogProbs(b.EngineLogProbs, _tis ? _t.TisCap : null);
                b.OldLogProbs = null!;
                return;
            }
            bool wasTraining = Policy.training;
            Policy.eval();
            try
            {
                using (no_grad()) b.OldLogProbs = Batched(b.Seq, m => Scoring.CompletionLogProbs(Policy, m)) * b.Mask;   // (B, A)
            }
            finally { if (wasTraining) Policy.train(); }
            b.Mismatch = TruncatedImportance.Mismatch(b.OldLogProbs, b.EngineLogProbs, b.Mask);
            if (_tis) b.TisWeights = TruncatedImportance.Weights(b.OldLogProbs, b.EngineLogProbs, b.Mask, _t.TisCap);   // (B, A)
        }

        /// <summary>Reference log-probs and critic values, without gradients; the per-token KL to the reference.</summary>
        void ReferencePass(RlBatch b)
        {
            using (no_grad())
            {
                if (_reference is not null) b.RefLogProbs = Batched(b.Seq, m => Scoring.CompletionLogProbs(_reference, m));          // (B, A)
                else if (_referenceIsBase)
                    using (Policy.AdaptersDisabled()) b.RefLogProbs = Batched(b.Seq, m => Scoring.CompletionLogProbs(Policy, m));
                if (_head is not null) b.OldValues = Batched(b.Seq, CriticValues);                                                   // (B, A)
            }
            // Folded: the KL to the reference is known after the update's first pass; nothing before it reads it (the estimator
            // does not, the KL is not in the reward), so zeros stand in until UpdateActor sets it.
            b.TokenKl = b.Folded is not null ? zeros_like(b.EngineLogProbs)
                : b.RefLogProbs is null ? zeros_like(b.OldLogProbs) : KlEstimators.K1(b.OldLogProbs, b.RefLogProbs) * b.Mask;   // (B, A)
        }

        /// <summary>The update trains on a subset of the rows (skip_zero_advantage_groups, mask_truncated_completions).</summary>
        bool FiltersRows() => (_o.SkipZeroAdvantageGroups && _o.SamplesPerPrompt > 1 && _spec.Estimator.GroupRelative) || _o.MaskTruncatedCompletions;

        /// <summary>Rewards (normalised and clipped if asked) → the algorithm's estimator → advantages (whitened if asked).</summary>
        void EstimateAdvantages(RlBatch b)
        {
            b.Beta = _kl.Value;
            var r = tensor(b.Rewards.ToArray()).to(ScalarType.Float32);                                     // (B)
            if (_o.NormalizeRewards) _rewardStats.Update(b.Rewards);
            r = RewardNormalization.Apply(r, _o.NormalizeRewards, _rewardStats.Mean, _rewardStats.Std, _o.RewardClip);   // PPO-max
            int g = _o.SamplesPerPrompt;
            var greedy = b.GreedyRewards is null ? null : tensor(b.GreedyRewards).to(ScalarType.Float32).repeat_interleave(g);   // (B)
            var tokenRewards = b.TokenRewards is { } tr && _o.RewardClip > 0 ? tr.clamp(-_o.RewardClip, _o.RewardClip) : b.TokenRewards;
            var ctx = new AdvantageContext(r, b.Mask, g, b.TokenKl, b.Beta, _spec.Kl == KlPlacement.InReward && b.RefLogProbs is not null,
                b.OldValues, greedy, _baseline, _o.Gamma, _o.Lambda, _o.EffectiveScaleRewards, TokenRewards: tokenRewards, GroupIds: GroupIds(b),
                OldLogProbs: b.OldLogProbs, Divergence: _o.Divergence, Target: _o.Target, TurnStates: b.TurnStates);
            var est = _spec.Estimator.Estimate(ctx);
            b.Advantages = _o.WhitenAdvantages ? AdvantageEstimators.Whiten(est.Advantages, b.Mask) * b.Mask : est.Advantages;
            b.SequenceAdvantages = est.SequenceAdvantages;
            b.Returns = est.Returns;
            if (_o.GroupBy is not null) b.ZeroAdvantageGroups = ZeroAdvantageIdGroupFraction(b.Rewards, IdsOf(b));
            else if (g > 1) b.ZeroAdvantageGroups = AdvantageEstimators.ZeroAdvantageGroupFraction(tensor((b.Branched ? b.Rewards : b.AllRewards).ToArray()).to(ScalarType.Float32), g);
        }

        /// <summary>
        /// OREAL's token weights (arXiv:2502.06781 §2.4): the token-level outcome reward head takes its steps on this batch's
        /// outcomes (reward ≥ 0.5 = correct, OREAL's threshold), then each token's advantage is multiplied by its weight ω⁺ (correct
        /// rows) or ω⁻ (wrong rows). With the token-level loss −ω_t·A·log π, weighting the advantage is weighting the token's term.
        /// </summary>
        void WeightTokens(RlBatch b)
        {
            if (_tokenRm is null) return;
            var hidden = Batched(b.Seq, m => OrealTokenModel.Hidden(Policy, m));                                  // (B, A, C)
            var correct = tensor(b.Rewards.Select(r => r >= 0.5).ToArray());                                      // (B) bool
            var (before, after) = _tokenRm.Train(hidden, b.Mask, correct.to_type(ScalarType.Float32));
            var w = _tokenRm.Weights(hidden, b.Mask, correct);                                                     // (B, A)
            b.Advantages = b.Advantages * w;
            b.Extra["oreal/token_rm_loss_before"] = before;
            b.Extra["oreal/token_rm_loss"] = after;
            var pos = correct.to_type(ScalarType.Float32).unsqueeze(1) * b.Mask;                                    // (B, A)
            var neg = b.Mask - pos;
            double Mean(Tensor on) { double n = on.sum().item<float>(); return n > 0 ? (w * on).sum().item<float>() / n : double.NaN; }
            b.Extra["oreal/token_weight_positive"] = Mean(pos);
            b.Extra["oreal/token_weight_negative"] = Mean(neg);
        }

        /// <summary>With rl.group_by, each row's group index <c>(B)</c> (rows whose prompts share the column's value); else null.</summary>
        Tensor? GroupIds(RlBatch b) => _o.GroupBy is null ? null : tensor(AdvantageEstimators.DenseGroupIds(IdsOf(b)).Indices);

        List<string> IdsOf(RlBatch b) => b.Rollouts.Select(r => b.Prompts[r.PromptIndex].Fields[_o.GroupBy!]).ToList();

        /// <summary>K epochs of minibatch updates of the policy on the rows that carry signal; then the engine syncs.</summary>
        UpdateMetrics UpdateActor(RlBatch b, int it, out double trainTokens, out int trainedRows)
        {
            var m = new UpdateMetrics();
            var advantages = b.TisWeights is { } w ? b.Advantages * w : b.Advantages;   // min(π_trainer/π_engine, C)·A: the weighted PG term
            trainTokens = 0;
            trainedRows = b.Rollouts.Count;
            if (it < _o.CriticWarmupIterations) return m;
            int g = _o.SamplesPerPrompt;
            bool skipZero = _o.SkipZeroAdvantageGroups && g > 1 && _spec.Estimator.GroupRelative;
            if (skipZero || _o.MaskTruncatedCompletions)
            {
                // Keep the rows of groups whose rewards differ (the others have zero advantage) and/or the rows that
                // ended before the token limit; the advantages were computed over every row.
                var keep = TrainRows(b.Rewards, g, b.Rollouts.Select(r => r.Stop).ToList(), skipZero, _o.MaskTruncatedCompletions,
                    _spec.Estimator.PositiveGroupsCarrySignal);
                trainedRows = keep.Length;
                if (keep.Length > 0)
                {
                    var rows = tensor(keep);
                    trainTokens = _actor.Run(b.Seq.Rows(rows), b.OldLogProbs.index_select(0, rows), advantages.index_select(0, rows),
                        b.SequenceAdvantages.index_select(0, rows), b.RefLogProbs?.index_select(0, rows), b.Beta, it, m, b.KlWeights?.index_select(0, rows));
                }
            }
            else if (b.Folded is { } folded)
            {
                trainTokens = _actor.Run(b.Seq, null, b.Advantages, b.SequenceAdvantages, b.RefLogProbs, b.Beta, it, m, b.KlWeights, folded);
                b.OldLogProbs = folded.Old!;                                                                          // (B, A)
                b.TisWeights = folded.Weights;                                                                        // (B, A) or null
                b.Mismatch = TruncatedImportance.Mismatch(b.OldLogProbs, b.EngineLogProbs, b.Mask);
                if (b.RefLogProbs is not null) b.TokenKl = KlEstimators.K1(b.OldLogProbs, b.RefLogProbs) * b.Mask;    // (B, A)
            }
            else trainTokens = _actor.Run(b.Seq, b.OldLogProbs, advantages, b.SequenceAdvantages, b.RefLogProbs, b.Beta, it, m, b.KlWeights);
            b.Timing["rollout_wait"] = AwaitPrefetch();   // rollout.async: the engine finishes the next batch before it takes new weights
            _engine.SyncWeights(Policy);
            return m;
        }

        /// <summary>PPO's critic: K epochs of clipped value-loss steps toward the GAE returns. Returns (loss, clip fraction).</summary>
        (double Loss, double ClipFraction) UpdateCritic(RlBatch b, int it)
        {
            if (_head is null) return (double.NaN, double.NaN);
            double vl = 0, vc = 0; int steps = 0;
            int n = b.Rollouts.Count;
            for (int ep = 0; ep < _o.Epochs; ep++)
                foreach (var rows in ActorUpdate.MiniBatches(_o, _spec.PolicyLoss.RowsPerUnit, n, it, ep + 1000))
                {
                    _criticOpt!.zero_grad();
                    var rowsT = tensor(rows.Select(x => (long)x).ToArray());
                    var agg = new Aggregation(LossAggregation.TokenMean, b.Mask.index_select(0, rowsT).sum().item<float>(), rows.Length);
                    double stepLoss = 0;
                    for (int s0 = 0; s0 < rows.Length; s0 += _o.MicroBatchSize)
                    {
                        using var micro = NewDisposeScope();
                        var idx = rowsT.narrow(0, s0, Math.Min(_o.MicroBatchSize, rows.Length - s0));
                        var sub = b.Seq.Rows(idx);
                        var (loss, cf) = ValueLosses.ClippedMse(CriticValues(sub), b.OldValues!.index_select(0, idx),
                            b.Returns!.index_select(0, idx), sub.CompletionMask, _o.ValueClip, agg);
                        loss.backward();
                        double share = idx.shape[0] / (double)rows.Length;
                        double value = loss.item<float>();
                        stepLoss += value; vl += value; vc += cf * share;
                    }
                    _criticGuard.Step(_criticOpt, CriticParameters(), _o.MaxGradNorm, stepLoss, steps + 1);
                    steps++;
                }
            return (vl / Math.Max(1, steps), vc / Math.Max(1, steps));
        }

        /// <summary>KL control, the metrics row, evaluation on schedule and the time budget.</summary>
        IterationReport Record(RlBatch b, int it, UpdateMetrics m, double trainTokens, int trainedRows, double valueLoss, double valueClip, Stopwatch phase)
        {
            int n = b.Rollouts.Count;
            double klMean = b.TokenKl.sum(1).mean().item<float>();
            _kl.Update(klMean, n);
            double? accuracy = _t.Task is null ? null : b.Correct / (double)b.AllRewards.Count;
            var (advMean, advStd) = Masked(b.Advantages, b.Mask);
            var row = new JsonObject
            {
                ["step"] = it + 1, ["max_new_tokens"] = b.MaxNewTokens, ["reward_mean"] = b.AllRewards.Average(), ["reward_std"] = Std([.. b.AllRewards]),
                ["kl"] = b.RefLogProbs is null ? null : klMean, ["beta"] = b.Beta, ["entropy"] = m.Entropy, ["loss"] = m.Loss,
                ["clip_fraction"] = m.ClipFraction, ["approx_kl"] = m.ApproxKl, ["ratio_max"] = m.RatioMax, ["grad_norm"] = m.GradNorm,
                ["advantage_mean"] = advMean, ["advantage_std"] = advStd,
                ["zero_advantage_group_fraction"] = double.IsNaN(b.ZeroAdvantageGroups) ? null : b.ZeroAdvantageGroups,
                ["completion_length"] = b.Rollouts.Average(x => x.CompletionIds.Length), ["trained_sequences"] = trainedRows,
                ["stopped_at_eos"] = b.Rollouts.Count(x => x.Stop == StopReason.Eos) / (double)n,
                ["generation_tokens_per_s"] = Math.Round(b.GeneratedTokens / Math.Max(b.Timing["generate"], 1e-9), 1),
                ["train_tokens_per_s"] = Math.Round(trainTokens / Math.Max(b.Timing["update_actor"], 1e-9), 1),
            };
            if (accuracy is { } acc) row["accuracy"] = acc;
            if (_o.DatasetReset > 0) row["dataset_reset_prompts"] = b.ResetPrompts;
            if (_t.AsyncRollouts) { row["rollout/policy_lag"] = b.PolicyLag; row["rollout/wait_seconds"] = Math.Round(b.Timing.GetValueOrDefault("rollout_wait"), 3); }
            if (b.Mismatch is var (absDiff, engineKl)) { row["rollout/logprob_abs_diff"] = absDiff; row["rollout/kl_engine_trainer"] = engineKl; }
            if (b.TisWeights is { } tw)
            {
                double tokens = Math.Max(1, b.Mask.sum().item<float>());
                row["rollout/tis_weight_mean"] = tw.sum().item<float>() / tokens;
                row["rollout/tis_capped_fraction"] = ((tw >= _t.TisCap * (1 - 1e-6)).to_type(ScalarType.Float32) * b.Mask).sum().item<float>() / tokens;
            }
            if (b.Trajectories is not null)
            {
                row["success_rate"] = b.Correct / (double)b.AllTrajectories.Count;
                row["mean_turns"] = b.AllTrajectories.Average(t => (double)t.Turns.Count);
                row["completion_length"] = b.Trajectories.Average(t => (double)t.Turns.Sum(x => x.TokenIds!.Length));   // the policy's tokens
                // Turns the environment flagged as illegal (info legal/valid: false), over all the rollouts' turns.
                int turns = b.AllTrajectories.Sum(t => t.Turns.Count);
                if (b.AllTrajectories.Any(t => t.Turns.Any(x => x.Info.ContainsKey("legal") || x.Info.ContainsKey("valid"))))
                    row["illegal_turn_rate"] = b.AllTrajectories.Sum(t => t.Turns.Count(x =>
                        (x.Info.TryGetValue("legal", out var l) ? l : x.Info.GetValueOrDefault("valid", "true")) == "false")) / (double)Math.Max(1, turns);
            }
            if (b.Attempts.N > 0)
            {
                row["first_attempt_accuracy"] = b.Attempts.First / (double)b.Attempts.N;
                row["second_attempt_accuracy"] = b.Attempts.Second / (double)b.Attempts.N;
                row["self_correction_delta"] = (b.Attempts.Second - b.Attempts.First) / (double)b.Attempts.N;   // SCoRe's Δ(t1, t2)
            }
            if (b.GreedyRewards is not null) row["greedy_reward_mean"] = b.GreedyRewards.Average();
            if (_o.DynamicSampling && _o.SamplesPerPrompt > 1 && _spec.Estimator.GroupRelative) { row["sampling_rounds"] = b.Rounds; row["trained_groups"] = b.Prompts.Count; }
            if (_head is not null)
            {
                row["value_loss"] = valueLoss; row["value_clip_fraction"] = valueClip;
                row["value_mean"] = Masked(b.OldValues!, b.Mask).Mean;   // the critic's V(s_t) before this iteration's update
            }
            if (!double.IsNaN(m.PtxLoss)) row["ptx_loss"] = m.PtxLoss;
            foreach (var (name, value) in b.Extra) row[name] = double.IsNaN(value) ? null : value;
            if (_guard.Skipped + _criticGuard.Skipped > 0) row["skipped_nonfinite_steps"] = _guard.Skipped + _criticGuard.Skipped;
            foreach (var (name, (sum, rounds)) in b.FunctionSums) row[$"reward/{name}"] = rounds > 0 ? sum / rounds : null;
            foreach (var (name, secs) in b.Timing) row[$"timing/{name}"] = Math.Round(secs, 3);
            bool lastOne = it + 1 == _o.Iterations || (_o.MaxSeconds > 0 && _trainSeconds + b.Timing.Values.Sum() >= _o.MaxSeconds);
            if (_t.Task is { } task && _t.EvalProblems.Count > 0 && ((_o.EvalEvery > 0 && (it + 1) % _o.EvalEvery == 0) || lastOne))
            {
                phase.Restart();
                Eval = Evaluator.Run(_evalEngine, task, _t.EvalProblems.Take(_o.EvalProblems).ToList(), maxNewTokens: _o.MaxNewTokens);
                row["eval_accuracy"] = Eval.Accuracy;
                if ((_o.Filter != PolicyFilter.None || _spec.Name == "pf_ppo") && _o.SamplesPerPrompt > 1 && b.Trajectories is null)
                    foreach (var (key, value) in HeldOutFilterR2(task, _t.EvalProblems.Take(_o.EvalProblems).ToList(), it))
                        row[key] = double.IsNaN(value) ? null : value;
                b.Timing["eval"] = Lap(phase);
                row["timing/eval"] = Math.Round(b.Timing["eval"], 3);
            }
            row["memory/rss_mb"] = Math.Round(Torch.ProcessMemory.ResidentBytes() / 1048576.0, 1);
            row["memory/peak_rss_mb"] = Math.Round(Torch.ProcessMemory.PeakResidentBytes() / 1048576.0, 1);
            if (_t.Environment is { } env && _o.EvalProblems > 0 && ((_o.EvalEvery > 0 && (it + 1) % _o.EvalEvery == 0) || lastOne))
            {
                phase.Restart();
                var ee = EvaluateEnvironment(env);
                (row["eval_success_rate"], row["eval_mean_turns"], row["eval_mean_return"]) = (ee.SuccessRate, ee.MeanTurns, ee.MeanReturn);
                b.Timing["eval"] = Lap(phase);
                row["timing/eval"] = Math.Round(b.Timing["eval"], 3);
            }
            // The environment's own counters (a frozen model's calls, requests and tokens since the previous row, evaluation included).
            if (_t.Environment?.Metrics is { } envMetrics)
                foreach (var (name, value) in envMetrics()) row[name] = value;
            _trainSeconds += b.Timing.Where(kv => kv.Key != "eval").Sum(kv => kv.Value);
            row["train_seconds"] = Math.Round(_trainSeconds, 3);
            _t.Log?.Invoke($"iter {it + 1}/{_o.Iterations}  reward {b.AllRewards.Average():F3}" + (accuracy is { } ac2 ? $"  acc {ac2:P1}" : "") +
                           (b.RefLogProbs is null ? "" : $"  kl {klMean:F4}") + $"  len {b.Rollouts.Average(x => x.CompletionIds.Length):F1}" +
                           $"  gen {b.Timing["generate"]:F1}s upd {b.Timing["update_actor"]:F1}s" +
                           (row["eval_accuracy"] is not null ? $"  eval_acc {Eval!.Accuracy:P1}" : "") +
                           (b.Trajectories is null ? "" : $"  success {row["success_rate"]!.GetValue<double>():P1}  turns {row["mean_turns"]!.GetValue<double>():F2}") +
                           (row["eval_success_rate"] is { } es ? $"  eval_success {es.GetValue<double>():P1}" : ""));
            return new IterationReport(row, Stop: _o.MaxSeconds > 0 && _trainSeconds >= _o.MaxSeconds);
        }

        /// <summary>Greedy episodes on the held-out seeds; the trajectories go to eval_transcripts.jsonl by <see cref="Summary"/>.</summary>
        EnvironmentEvalResult EvaluateEnvironment(RlEnvironment env)
        {
            var seeds = env.EvalSeeds ?? Enumerable.Range(0, _o.EvalProblems).ToArray();
            var options = env.Rollout with { Sampling = env.Rollout.Sampling with { SamplesPerPrompt = 1, Temperature = 0, MaxNewTokens = _o.MaxNewTokens } };
            using var _ = no_grad();
            var result = EnvironmentEvaluator.Run(_evalEngine, env.Create, seeds, options, env.Renderer, cancel: _cancel);
            _t.EnvironmentEval = result;
            return result;
        }

        // ---------------------------------------------------------------- checkpoint state

        public JsonObject CheckpointState() => new()
        {
            ["position"] = _cursorBeforePrefetch?.Position ?? _cursor.Position, ["epoch"] = _cursorBeforePrefetch?.Epoch ?? _cursor.Epoch, ["optimizer_steps"] = _actor.Steps, ["seed"] = _o.Seed,
            ["baseline"] = _baseline.Initialized ? _baseline.Value : null, ["kl_beta"] = _kl.Value, ["reward_moments"] = _rewardStats.ToJson(),
            ["algorithm"] = _o.Algorithm, ["ptx_epoch"] = _ptx?.State.Epoch, ["ptx_position"] = _ptx?.State.Position,
        };

        public void SaveExtra(string tmp)
        {
            if (_reference is not null) HfCheckpoint.Save(Path.Combine(tmp, "reference"), _reference);
            if (_maskPolicy is not null) HfCheckpoint.Save(Path.Combine(tmp, "masking_policy"), _maskPolicy);
            if (_tokenRm is not null) Safetensors.Save(Path.Combine(tmp, OrealTokenModel.FileName), _tokenRm.State());
            if (_criticOnBase)
            {
                Safetensors.Save(Path.Combine(tmp, "critic_" + ScalarHead.FileName), _head!.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter.detach()));
                ((TorchSharp.Modules.OptimizerHelper)_criticOpt!).save_state_dict(Path.Combine(tmp, "critic_optimizer.bin"));
            }
            if (_critic is not null)
            {
                HfCheckpoint.Save(Path.Combine(tmp, "critic"), _critic, head: _head);
                ((TorchSharp.Modules.OptimizerHelper)_criticOpt!).save_state_dict(Path.Combine(tmp, "critic_optimizer.bin"));
            }
        }

        public void Restore(string latest, JsonObject s)
        {
            _cursor = new DataCursor(Math.Max(1, _prompts.Count), _o.Seed, s["epoch"]!.GetValue<int>(), s["position"]!.GetValue<int>());
            _actor.Steps = s["optimizer_steps"]!.GetValue<int>();
            if (s["baseline"] is { } b) _baseline.Restore(b.GetValue<double>());
            if (s["kl_beta"] is { } kb) _kl = _o.TargetKl is { } t2 ? new AdaptiveKlController(kb.GetValue<double>(), t2, _o.KlHorizon) : new FixedKlController(kb.GetValue<double>());
            _rewardStats = RunningMoments.FromJson(s["reward_moments"] as JsonObject);
            if (_reference is not null) HfCheckpoint.LoadWeightsInto(_reference, Path.Combine(latest, "reference"));
            if (_maskPolicy is not null) HfCheckpoint.LoadWeightsInto(_maskPolicy, Path.Combine(latest, "masking_policy"));
            if (_tokenRm is not null && File.Exists(Path.Combine(latest, OrealTokenModel.FileName)))
                _tokenRm.Load(Safetensors.Load(Path.Combine(latest, OrealTokenModel.FileName)));
            if (_ptx is not null && s["ptx_epoch"] is { } pe && s["ptx_position"] is { } pp) _ptx.Restore(_o.Seed, pe.GetValue<int>(), pp.GetValue<int>());
            if (_criticOnBase)
            {
                var hw = Safetensors.Load(Path.Combine(latest, "critic_" + ScalarHead.FileName));
                using (no_grad()) foreach (var (name, p) in _head!.named_parameters()) p.copy_(hw[name]);
                ((TorchSharp.Modules.OptimizerHelper)_criticOpt!).load_state_dict(Path.Combine(latest, "critic_optimizer.bin"));
            }
            if (_critic is not null)
            {
                HfCheckpoint.LoadWeightsInto(_critic, Path.Combine(latest, "critic"), _head);
                ((TorchSharp.Modules.OptimizerHelper)_criticOpt!).load_state_dict(Path.Combine(latest, "critic_optimizer.bin"));
            }
            _engine.SyncWeights(Policy);
        }

        public void Finish(int completed) { }

        public JsonObject Summary(int completed, double seconds, string finalDir)
        {
            var summary = new JsonObject
            {
                ["algorithm"] = _o.Algorithm, ["iterations"] = completed, ["seconds"] = Math.Round(seconds, 2), ["final_checkpoint"] = finalDir,
            };
            if (_guard.Skipped + _criticGuard.Skipped > 0) summary["skipped_nonfinite_steps"] = _guard.Skipped + _criticGuard.Skipped;
            if (_head is not null)
            {
                summary["critic_parameters"] = CriticParameters().Sum(p => p.numel());   // with LoRA: the value head alone
                summary["critic_init"] = _criticOnBase ? "policy_base" : _o.Critic.Init == CriticInit.RewardModel ? "reward_model" : "policy";
            }
            if (Eval is not null) foreach (var (k, v) in Eval.ToJson()) summary[k] = v?.DeepClone();
            if (_t.EnvironmentEval is { } ee)
            {
                foreach (var (k, v) in ee.ToJson()) summary[k] = v?.DeepClone();
                var transcripts = Path.Combine(Path.GetDirectoryName(finalDir)!, "eval_transcripts.jsonl");
                TrajectoryJsonl.Write(transcripts, ee.Trajectories, includeTokens: false);
                summary["transcripts"] = transcripts;
            }
            return summary;
        }

        public void Dispose()
        {
            if (_prefetch is { } running) AwaitTask(running);   // never free what a worker may still read
            _reference?.Dispose(); _critic?.Dispose(); _maskPolicy?.Dispose(); _head?.Dispose(); _tokenRm?.Dispose(); _opt.Dispose(); _criticOpt?.Dispose();
        }

        // ---------------------------------------------------------------- helpers


        static double Lap(Stopwatch phase) { double s = phase.Elapsed.TotalSeconds; phase.Restart(); return s; }

        Tensor Batched(SequenceBatch b, Func<SequenceBatch, Tensor> f)
        {
            long total = b.InputIds.shape[0];
            var parts = new List<Tensor>();
            for (long s = 0; s < total; s += _o.MicroBatchSize)
            {
                // Each micro-batch's forward pass (activations, logits) is freed before the next one starts; only its
                // (rows, A) result outlives it. Left to the iteration's scope, the 4 micro-batches of the quickstart's
                // reference pass held 3.4 GB until the iteration ended.
                using var micro = NewDisposeScope();
                parts.Add(f(b.Rows(arange(s, Math.Min(total, s + _o.MicroBatchSize), dtype: ScalarType.Int64))).MoveToOuterDisposeScope());
            }
            var all = cat(parts, 0);
            foreach (var p in parts) p.Dispose();
            return all;
        }

        /// <summary>The critic's trainable parameters: the critic model's and the head's, or with LoRA the head's alone.</summary>
        IEnumerable<TorchSharp.Modules.Parameter> CriticParameters() => (_critic?.parameters() ?? []).Concat(_head!.parameters());

        /// <summary>V(s_t) per completion token <c>(B, A)</c>: the critic model's, or with LoRA the head on the policy's frozen
        /// base (adapters off; the base's hidden states carry no gradient, only the head learns).</summary>
        Tensor CriticValues(SequenceBatch m)
        {
            if (_critic is not null) return Values(_critic, _head!, m);
            Tensor hidden;
            using (no_grad())
            using (Policy.AdaptersDisabled())
                hidden = Policy.Forward(m.InputIds, m.AttentionMask, returnHidden: true, lastLogitsOnly: true).Hidden!;   // (B, T, C)
            return _head!.forward(hidden).narrow(1, m.PromptLength - 1, m.CompletionIds.shape[1]) * m.CompletionMask;      // (B, A)
        }

        /// <summary>NLPO: the masking policy's top-p set at each completion position <c>(b, A, V)</c>.</summary>
        Tensor MaskOf(SequenceBatch m)
        {
            using var _ = no_grad();
            var logits = _maskPolicy!.Forward(m.InputIds, m.AttentionMask).Logits.narrow(1, m.PromptLength - 1, m.CompletionIds.shape[1]);
            return ActionMaskEngine.TopPKeep(logits, _o.ActionMaskTopP);
        }

        /// <summary>PPO-max's critic from a reward model: its weights and scalar head (the head predicts the value).</summary>
        (CausalLM, ScalarHead) LoadRewardModelCritic(string dir)
        {
            LoadedModel loaded;
            try { loaded = HfCheckpoint.Load(dir); }
            catch (CheckpointException e) { throw new ArgumentException($"rl.critic.init: reward_model: {e.Message}"); }
            if (loaded.Head is null)
            {
                loaded.Model.Dispose();
                throw new ArgumentException($"rl.critic.init: reward_model: {dir} has no {ScalarHead.FileName}; not a reward-model checkpoint");
            }
            if (loaded.Model.Config.VocabSize != Policy.Config.VocabSize)
            {
                loaded.Model.Dispose(); loaded.Head.Dispose();
                throw new ArgumentException($"rl.critic.init: reward_model: {dir} has a vocabulary of {loaded.Model.Config.VocabSize} tokens, the policy {Policy.Config.VocabSize}; the critic reads the policy's tokens");
            }
            loaded.Model.train();
            foreach (var p in loaded.Model.parameters()) p.requires_grad = true;
            return (loaded.Model, loaded.Head);
        }

        /// <summary>V(s_t) for each completion token t: the head on the hidden state that predicts token t. (B, A)</summary>
        static Tensor Values(CausalLM critic, ScalarHead head, SequenceBatch b)
        {
            var hidden = critic.Forward(b.InputIds, b.AttentionMask, returnHidden: true, lastLogitsOnly: true).Hidden!;   // (B, T, C)
            return head.forward(hidden).narrow(1, b.PromptLength - 1, b.CompletionIds.shape[1]) * b.CompletionMask;      // (B, A)
        }

        static (double Mean, double Std) Masked(Tensor x, Tensor mask)
        {
            double cnt = Math.Max(1, mask.sum().item<float>());
            double mean = (x * mask).sum().item<float>() / cnt;
            double var = (((x - mean) * mask).pow(2).sum().item<float>()) / cnt;
            return (mean, Math.Sqrt(var));
        }

        static double Std(double[] xs)
        {
            double m = xs.Average();
            return Math.Sqrt(xs.Sum(x => (x - m) * (x - m)) / xs.Length);
        }
    }

    CausalLM Policy => policy;
    ITokenizer Tokenizer => tokenizer;
    IReadOnlyList<WeightedReward> Rewards => rewards;

    /// <summary>Behaviour log-probs padded to <paramref name="width"/> columns <c>(B, A)</c>.</summary>
    internal static Tensor Pad(IReadOnlyList<float[]> rows, long width)
    {
        var flat = new float[rows.Count * width];
        for (int i = 0; i < rows.Count; i++) rows[i].CopyTo(flat, i * width);
        return tensor(flat).view(rows.Count, width);
    }
}
