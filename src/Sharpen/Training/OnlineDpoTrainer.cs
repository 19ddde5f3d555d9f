using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Checkpoints;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Training;

/// <summary>How online DPO forms one preference pair from a prompt's scored samples.</summary>
public enum PairSelection
{
    /// <summary>The highest-reward sample (first one on ties) against the lowest-reward sample (first one on ties).</summary>
    BestVsWorst,
    /// <summary>Two distinct samples drawn at random; the better one is chosen.</summary>
    Random,
}

/// <summary>Which policy the preference loss compares against.</summary>
public enum ReferenceUpdate
{
    /// <summary>The policy at the start of the run, frozen (online DPO).</summary>
    Initial,
    /// <summary>The policy at the start of each iteration, π_t (DNO's and SPIN's reference: the previous iterate).</summary>
    PreviousIterate,
}

/// <summary>Where an iteration's preference pairs come from.</summary>
public enum PairSource
{
    /// <summary>Both sides are scored candidates of the prompt (the policy's samples, plus the data's completion with
    /// <see cref="OnlineDpoOptions.IncludeDataCompletion"/>), picked by <see cref="OnlineDpoOptions.PairSelection"/>.</summary>
    Samples,
    /// <summary>SPIN: chosen = the data's completion (the "real" answer), rejected = each of the policy's samples.</summary>
    DataVsSample,
}

/// <summary>
/// Online (iterative) preference-optimisation settings, shared by online DPO, DNO and SPIN (the <c>online_dpo</c>,
/// <c>dno</c> and <c>spin</c> recipe sections): sample from the current policy, form pairs (judged by the rewards, or
/// against the data's answer), train a preference loss on them. The loss is one of <see cref="PreferenceLosses.Names"/>
/// or <c>spin</c>; β is its reward scale (τ for ipo, λ for spin); the other coefficients take the defaults of
/// <see cref="PreferenceOptions"/>. The presets <see cref="Dno"/> and <see cref="Spin"/> carry those papers' settings.
/// </summary>
public sealed record OnlineDpoOptions
{
    /// <summary>Name written to summary.json: online_dpo, dno or spin (set by the presets).</summary>
    public string Algorithm { get; init; } = "online_dpo";
    /// <summary>Sample–judge–update rounds.</summary>
    public int Iterations { get; init; } = 100;
    /// <summary>Prompts sampled per iteration.</summary>
    public int PromptsPerIteration { get; init; } = 16;
    /// <summary>Completions sampled per prompt (≥ 2 for sample-vs-sample pairs, ≥ 1 for SPIN).</summary>
    public int SamplesPerPrompt { get; init; } = 4;
    /// <summary>Sampling temperature (&gt; 0).</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Completion length cap in tokens.</summary>
    public int MaxNewTokens { get; init; } = 256;
    /// <summary>Preference loss name: dpo, cdpo, ipo, rdpo, orpo, simpo or spin.</summary>
    public string Loss { get; init; } = "dpo";
    /// <summary>β of the loss (τ for ipo, λ for spin).</summary>
    public double Beta { get; init; } = 0.1;
    /// <summary>AdamW learning rate (constant, no weight decay).</summary>
    public double LearningRate { get; init; } = 5e-6;
    /// <summary>Clip the global gradient norm to this (0 = off).</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Passes (epochs) over each iteration's pairs.</summary>
    public int UpdatesPerIteration { get; init; } = 1;
    /// <summary>Pairs per optimizer step within a pass (0 = all of the iteration's pairs in one step).</summary>
    public int MiniBatchSize { get; init; }
    /// <summary>How a prompt's pair is picked from its scored candidates.</summary>
    public PairSelection PairSelection { get; init; } = PairSelection.BestVsWorst;
    /// <summary>Pairs whose reward margin is below this are dropped (the default drops ties); DNO's margin filter.</summary>
    public double MinMargin { get; init; } = 1e-9;
    /// <summary>The loss's reference: the initial policy, or the previous iterate π_t (DNO, SPIN).</summary>
    public ReferenceUpdate ReferenceUpdate { get; init; } = ReferenceUpdate.Initial;
    /// <summary>Sample-vs-sample pairs, or SPIN's data-vs-sample pairs.</summary>
    public PairSource PairSource { get; init; } = PairSource.Samples;
    /// <summary>Add the data's completion (a gold or teacher answer) to each prompt's scored candidates (DNO-Prct).</summary>
    public bool IncludeDataCompletion { get; init; }
    /// <summary>Checkpoint every N iterations (0 = only the final model); a checkpoint can be resumed.</summary>
    public int CheckpointEvery { get; init; }
    /// <summary>Checkpoints kept.</summary>
    public int KeepCheckpoints { get; init; } = 2;
    /// <summary>Seed of the prompt order, the sampling and random pair selection.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Whether the loss compares against a reference policy (every loss but orpo and simpo).</summary>
    public bool NeedsReference => Loss is not ("orpo" or "simpo");

    /// <summary>The recipe kinds (and presets) these options serve.</summary>
    public static IReadOnlyList<string> Kinds { get; } = ["online_dpo", "dno", "spin"];

    /// <summary>The preset of <paramref name="kind"/>: online_dpo (the defaults), dno or spin.</summary>
    public static OnlineDpoOptions For(string kind) => kind switch
    {
        "online_dpo" => new(),
        "dno" => Dno(),
        "spin" => Spin(),
        _ => throw new ArgumentException($"unknown online preference method '{kind}'; known: {string.Join(", ", Kinds)}"),
    };

    /// <summary>
    /// DNO-Prct (Rosset et al. 2024, arXiv:2404.03715, Algorithm 2): per iteration K = 5 samples per prompt from π_t plus
    /// the data's gold answer, scored by the oracle; the best and the worst form a pair only if their margin clears the
    /// threshold; DPO (β = 0.1) against the reference π_t. The margin threshold 0.5 is Sharpen's for rewards in [0, 1] (the
    /// paper filters on its judge's score scale).
    /// </summary>
    public static OnlineDpoOptions Dno() => new()
    {
        Algorithm = "dno", SamplesPerPrompt = 5, IncludeDataCompletion = true, PairSelection = PairSelection.BestVsWorst,
        MinMargin = 0.5, Loss = "dpo", Beta = 0.1, ReferenceUpdate = ReferenceUpdate.PreviousIterate, LearningRate = 5e-7,
        UpdatesPerIteration = 1,
    };

    /// <summary>
    /// SPIN (Chen et al. 2024, arXiv:2401.01335): the opponent π_t answers each SFT prompt once; pairs are (the data's
    /// answer, the opponent's); the logistic loss with λ = 0.1 against π_t, 2 epochs per iteration, learning rate 5e-7.
    /// </summary>
    public static OnlineDpoOptions Spin() => new()
    {
        Algorithm = "spin", SamplesPerPrompt = 1, PairSource = PairSource.DataVsSample, Loss = "spin", Beta = 0.1,
        ReferenceUpdate = ReferenceUpdate.PreviousIterate, LearningRate = 5e-7, UpdatesPerIteration = 2, Iterations = 4,
    };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field as <c>&lt;algorithm&gt;.&lt;key&gt;</c>.</summary>
    public OnlineDpoOptions Validate()
    {
        var k = Kinds.Contains(Algorithm) ? Algorithm : "online_dpo";
        void Positive(double v, string key) => OptionChecks.Positive(k, v, key);
        void NonNegative(double v, string key) => OptionChecks.NonNegative(k, v, key);
        if (!Kinds.Contains(Algorithm)) throw new ArgumentException($"{k}.algorithm: unknown '{Algorithm}'; known: {string.Join(", ", Kinds)}");
        if (Loss is null || !(PreferenceLosses.Names.Contains(Loss) || Loss == "spin"))
            throw new ArgumentException($"{k}.loss: unknown loss '{Loss}'. Known: {string.Join(", ", PreferenceLosses.Names)}, spin.");
        Positive(Iterations, "iterations"); Positive(PromptsPerIteration, "prompts_per_iteration");
        if (!Enum.IsDefined(PairSource)) throw new ArgumentException($"{k}.pair_source: unknown value {PairSource}");
        int minSamples = PairSource == PairSource.DataVsSample || IncludeDataCompletion ? 1 : 2;
        if (SamplesPerPrompt < minSamples) throw new ArgumentException($"{k}.samples_per_prompt must be ≥ {minSamples} to form a pair, got {SamplesPerPrompt}");
        Positive(Temperature, "temperature"); Positive(MaxNewTokens, "max_new_tokens"); Positive(Beta, "beta");
        Positive(LearningRate, "learning_rate"); NonNegative(MaxGradNorm, "max_grad_norm"); Positive(UpdatesPerIteration, "updates_per_iteration");
        NonNegative(MiniBatchSize, "mini_batch_size");
        if (!Enum.IsDefined(PairSelection)) throw new ArgumentException($"{k}.pair_selection: unknown value {PairSelection}");
        if (!Enum.IsDefined(ReferenceUpdate)) throw new ArgumentException($"{k}.reference_update: unknown value {ReferenceUpdate}");
        NonNegative(MinMargin, "min_margin"); NonNegative(CheckpointEvery, "checkpoint_every"); Positive(KeepCheckpoints, "keep_checkpoints");
        return this;
    }
}

/// <summary>What an online preference run produced.</summary>
public sealed record OnlineDpoResult(int Iterations, double FinalLoss, double FinalRewardMean, int TotalPairs, string FinalCheckpoint, double Seconds);

/// <summary>
/// Online / iterative preference optimisation: online DPO (Xu et al. 2023; Guo et al. 2024), DNO-Prct (Rosset et al.
/// 2024) and SPIN (Chen et al. 2024) are settings of this one loop (see <see cref="OnlineDpoOptions"/>). One iteration
/// top to bottom: take PromptsPerIteration prompts in a seeded order → sample SamplesPerPrompt completions each from the
/// current policy π_t (seed from (Seed, iteration)) → score them with the rewards (the judge or oracle) → KL(π_t ‖ ref)
/// estimate on the samples → with <see cref="ReferenceUpdate.PreviousIterate"/> the reference becomes a copy of π_t →
/// pairs (one per prompt from its scored candidates with MinMargin, or SPIN's data-vs-sample pairs) → summed reference
/// log-probs (no_grad) → UpdatesPerIteration passes of AdamW steps of the preference loss over the pairs → π_{t+1} →
/// metrics row → maybe a checkpoint.
/// </summary>
public sealed class OnlineDpoTrainer(CausalLM policy, ITokenizer tokenizer, OnlineDpoOptions options, IReadOnlyList<WeightedReward> rewards)
{
    /// <summary>The prompt field that carries the data's completion (SPIN's real answer, DNO's gold answer).</summary>
    public const string DataCompletionField = "completion";

    /// <summary>Human-readable progress lines.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Called after each iteration's update with (iteration 1-based, the policy, the reference it used or null).</summary>
    public Action<int, CausalLM, CausalLM?>? AfterIteration { get; init; }

    /// <summary>
    /// Optional pair oracle: given one prompt's sample rewards and the iteration's seeded generator, returns the
    /// (chosen, rejected) sample indices or null to drop the prompt. Null (the default) uses <see cref="SelectPair"/>
    /// with the options' PairSelection and MinMargin. A stochastic labeller (e.g. Bradley–Terry with label flips) goes here.
    /// </summary>
    public Func<IReadOnlyList<double>, Random, (int Chosen, int Rejected)?>? PairOracle { get; init; }

    readonly OnlineDpoOptions _o = options.Validate();

    /// <summary>
    /// The pair of one prompt's samples by <paramref name="selection"/>, or null when its reward margin is below
    /// <paramref name="minMargin"/> (or fewer than two samples). Random selection draws from <paramref name="rng"/>.
    /// </summary>
    public static (int Chosen, int Rejected)? SelectPair(IReadOnlyList<double> rewards, PairSelection selection, double minMargin = 1e-9, Random? rng = null)
    {
        if (rewards.Count < 2) return null;
        int chosen, rejected;
        if (selection == PairSelection.BestVsWorst)
        {
            chosen = 0; rejected = 0;
            for (int i = 1; i < rewards.Count; i++)
            {
                if (rewards[i] > rewards[chosen]) chosen = i;
                if (rewards[i] < rewards[rejected]) rejected = i;
            }
        }
        else
        {
            rng ??= new Random(0);
            int i = rng.Next(rewards.Count);
            int j = rng.Next(rewards.Count - 1);
            if (j >= i) j++;
            (chosen, rejected) = rewards[j] > rewards[i] ? (j, i) : (i, j);
        }
        if (chosen == rejected || !(rewards[chosen] - rewards[rejected] >= minMargin)) return null;
        return (chosen, rejected);
    }

    /// <summary>
    /// Runs the iterations; writes metrics.jsonl, summary.json, checkpoints/ (every CheckpointEvery iterations) and final/
    /// into <paramref name="outDir"/>. With <paramref name="resume"/> it continues from the newest checkpoint there:
    /// prompt order, sampling seeds and pair choices depend only on (Seed, iteration), so the resumed run trains on what
    /// the uninterrupted run would have.
    /// </summary>
    public OnlineDpoResult Run(IReadOnlyList<RlPrompt> prompts, string outDir, bool resume = false, CancellationToken cancel = default)
    {
        if (prompts.Count == 0) throw new ArgumentException("no prompts");
        bool needData = _o.PairSource == PairSource.DataVsSample;
        if (needData && prompts.FirstOrDefault(p => !p.Fields.ContainsKey(DataCompletionField)) is { } bad)
            throw new ArgumentException($"{_o.Algorithm}: every prompt needs its data completion (the real answer); '{bad.Prompt}' has none");
        var total = Stopwatch.StartNew();
        Directory.CreateDirectory(outDir);
        int padId = tokenizer.PadTokenId ?? 0;
        int eos = DataOrder.EosId(tokenizer, policy.Config);
        using var reference = _o.NeedsReference ? policy.Copy(trainable: false) : null;
        using var opt = optim.AdamW(policy.parameters(), lr: _o.LearningRate, weight_decay: 0.0);
        var engine = new RolloutEngine(policy, tokenizer);
        var ckptRoot = Path.Combine(outDir, "checkpoints");
        var runLog = new RunLog(outDir, append: resume);

        int start = 0, position = 0, epoch = 0, totalPairs = 0;
        if (resume && TrainingCheckpoint.Latest(ckptRoot) is { } latest)
        {
            var st = TrainingCheckpoint.Restore(latest, policy, opt);
            start = st["step"]!.GetValue<int>();
            position = st["position"]!.GetValue<int>();
            epoch = st["epoch"]!.GetValue<int>();
            totalPairs = st["pairs"]!.GetValue<int>();
            if (reference is not null) CopyWeights(LoadModel(Path.Combine(latest, "reference")), reference, dispose: true);
            runLog.TruncateAfter(start);
            Log?.Invoke($"resumed from {latest} at iteration {start}");
        }
        var cursor = new DataCursor(prompts.Count, _o.Seed, epoch, position);
        double lastLoss = double.NaN, lastReward = double.NaN;
        for (int it = start; it < _o.Iterations; it++)
        {
            cancel.ThrowIfCancellationRequested();
            var phase = Stopwatch.StartNew();
            var batch = cursor.Next(_o.PromptsPerIteration).Select(i => prompts[i]).ToList();
            long seed = (long)_o.Seed * 1_000_003 + it;
            policy.eval();
            var rollouts = engine.Generate(batch.Select(p => p.Prompt).ToList(), new SamplingOptions
            {
                SamplesPerPrompt = _o.SamplesPerPrompt, Temperature = _o.Temperature, MaxNewTokens = _o.MaxNewTokens,
                Seed = seed, MaxBatchSequences = 512,
            });
            // The data's completions (gold answers) as scored candidates: DNO scores them with the samples.
            var gold = batch.Select(p => p.Fields.TryGetValue(DataCompletionField, out var c) ? c : null).ToList();
            bool withGold = _o.IncludeDataCompletion && _o.PairSource == PairSource.Samples;
            var contexts = rollouts.Select(r => new RewardContext(batch[r.PromptIndex].Prompt, r.CompletionText, batch[r.PromptIndex].Fields, r.CompletionIds.Length)).ToList();
            var goldRows = withGold ? Enumerable.Range(0, batch.Count).Where(p => gold[p] is not null).ToList() : [];
            var goldIds = gold.Select(g => g is null ? null : DataOrder.CompletionIds(tokenizer, eos, g)).ToList();
            contexts.AddRange(goldRows.Select(p => new RewardContext(batch[p].Prompt, gold[p]!, batch[p].Fields, goldIds[p]!.Length)));
            double[] all = rewards.Count > 0
                ? RewardCombiner.ScoreAsync(rewards, contexts, cancel).AsTask().GetAwaiter().GetResult().Total
                : Enumerable.Repeat(double.NaN, contexts.Count).ToArray();
            double[] scores = all[..rollouts.Count];
            double generateSeconds = phase.Elapsed.TotalSeconds;
            phase.Restart();

            // ---- KL(π_t ‖ reference) on π_t's own samples (k1, summed per sequence); then DNO/SPIN move the reference to π_t
            double klRef = double.NaN;
            if (reference is not null)
            {
                var refLp = Scoring.Score(reference, rollouts.Select(r => (IReadOnlyList<int>)r.PromptIds).ToList(),
                    rollouts.Select(r => (IReadOnlyList<int>)r.CompletionIds).ToList(), padId);
                klRef = rollouts.Select((r, i) => r.LogProbs.Sum(x => (double)x) - refLp[i].Sum(x => (double)x)).Average();
                if (_o.ReferenceUpdate == ReferenceUpdate.PreviousIterate) CopyWeights(policy, reference, dispose: false);
            }

            // ---- pairs
            var rng = new Random(unchecked((int)(seed & int.MaxValue)));
            var pairs = new List<PreferenceTrainer.Pair>();
            int dropped = 0;
            for (int p = 0; p < batch.Count; p++)
            {
                var group = Enumerable.Range(0, rollouts.Count).Where(i => rollouts[i].PromptIndex == p).ToList();
                if (_o.PairSource == PairSource.DataVsSample)
                {
                    foreach (var i in group) pairs.Add(new PreferenceTrainer.Pair(rollouts[i].PromptIds, goldIds[p]!, rollouts[i].CompletionIds));
                    continue;
                }
                var ids = group.Select(i => rollouts[i].CompletionIds).ToList();
                var cand = group.Select(i => scores[i]).ToList();
                int g = goldRows.IndexOf(p);
                if (g >= 0) { ids.Add(goldIds[p]!); cand.Add(all[rollouts.Count + g]); }
                var pick = PairOracle is null ? SelectPair(cand, _o.PairSelection, _o.MinMargin, rng) : PairOracle(cand, rng);
                if (pick is not { } pr) { dropped++; continue; }
                pairs.Add(new PreferenceTrainer.Pair(rollouts[group[0]].PromptIds, ids[pr.Chosen], ids[pr.Rejected]));
            }
            totalPairs += pairs.Count;

            // ---- updates: UpdatesPerIteration passes over the pairs in minibatches
            double loss = double.NaN, accuracy = double.NaN, margin = double.NaN;
            if (pairs.Count > 0)
            {
                policy.train();
                float[]? refC = null, refR = null;
                if (reference is not null) (refC, refR) = PreferenceTrainer.SummedLogProbs(reference, pairs, padId);
                int size = _o.MiniBatchSize > 0 ? _o.MiniBatchSize : pairs.Count;
                for (int u = 0; u < _o.UpdatesPerIteration; u++)
                {
                    var perm = u == 0 && size >= pairs.Count ? Enumerable.Range(0, pairs.Count).ToArray() : DataOrder.Permutation(pairs.Count, _o.Seed + it, u);
                    double sl = 0, sa = 0, sm = 0;
                    for (int s0 = 0; s0 < perm.Length; s0 += size)
                    {
                        var rows = perm[s0..Math.Min(perm.Length, s0 + size)];
                        var (l, m) = Step(opt, rows.Select(i => pairs[i]).ToList(), refC is null ? null : rows.Select(i => refC[i]).ToArray(),
                            refR is null ? null : rows.Select(i => refR[i]).ToArray(), padId);
                        double w = rows.Length / (double)perm.Length;
                        sl += l * w; sa += m.Accuracy * w; sm += m.Margin * w;
                    }
                    if (u == 0) { loss = sl; accuracy = sa; margin = sm; }   // the first pass: before most of this iteration's updates
                }
                policy.eval();
            }
            AfterIteration?.Invoke(it + 1, policy, reference);
            double updateSeconds = phase.Elapsed.TotalSeconds;
            double rewardMean = scores.Length > 0 && rewards.Count > 0 ? scores.Average() : double.NaN;
            lastReward = rewardMean;
            if (!double.IsNaN(loss)) lastLoss = loss;

            runLog.Metrics(new JsonObject
            {
                ["step"] = it + 1, ["reward_mean"] = Round(rewardMean), ["pairs"] = pairs.Count, ["dropped_ties"] = dropped,
                ["loss"] = Round(loss), ["accuracy"] = Round(accuracy), ["margin"] = Round(margin), ["kl_ref"] = Round(klRef),
                ["completion_length"] = Round(rollouts.Average(r => r.CompletionIds.Length)),
                ["timing/generate"] = Math.Round(generateSeconds, 4), ["timing/update"] = Math.Round(updateSeconds, 4),
                ["seconds"] = Math.Round(total.Elapsed.TotalSeconds, 3),
            });
            Log?.Invoke($"iter {it + 1}/{_o.Iterations}  reward {rewardMean:F4}  pairs {pairs.Count} (dropped {dropped})  {_o.Loss} {loss:F4}  acc {accuracy:P0}  kl_ref {klRef:F4}");

            if (_o.CheckpointEvery > 0 && (it + 1) % _o.CheckpointEvery == 0 && it + 1 < _o.Iterations)
            {
                var state = new JsonObject
                {
                    ["position"] = cursor.Position, ["epoch"] = cursor.Epoch, ["pairs"] = totalPairs, ["seed"] = _o.Seed, ["algorithm"] = _o.Algorithm,
                };
                var dir = TrainingCheckpoint.Save(ckptRoot, it + 1, policy, tokenizer, opt, state, _o.KeepCheckpoints,
                    extra: tmp => { if (reference is not null) HfCheckpoint.Save(Path.Combine(tmp, "reference"), reference); });
                Log?.Invoke($"checkpoint {dir}");
            }
        }

        var finalDir = Path.Combine(outDir, "final");
        HfCheckpoint.SaveAtomically(finalDir, policy, tokenizer);
        total.Stop();
        runLog.Summary(new JsonObject
        {
            ["algorithm"] = _o.Algorithm, ["loss_name"] = _o.Loss, ["iterations"] = _o.Iterations, ["final_loss"] = Round(lastLoss),
            ["final_reward_mean"] = Round(lastReward), ["pairs"] = totalPairs, ["pair_selection"] = _o.PairSelection.ToString(),
            ["pair_source"] = _o.PairSource.ToString(), ["reference_update"] = _o.ReferenceUpdate.ToString(),
            ["seconds"] = Math.Round(total.Elapsed.TotalSeconds, 2), ["final_checkpoint"] = finalDir,
        });
        return new OnlineDpoResult(_o.Iterations, lastLoss, lastReward, totalPairs, finalDir, total.Elapsed.TotalSeconds);
    }

    (double Loss, PreferenceMetrics Metrics) Step(optim.Optimizer opt, List<PreferenceTrainer.Pair> pairs, float[]? refC, float[]? refR, int padId)
    {
        using var scope = NewDisposeScope();
        opt.zero_grad();
        // The online trainer exposes β only: the other losses keep PreferenceOptions' defaults, IPO's τ and SPIN's λ are β.
        var o = new PreferenceOptions { Loss = _o.Loss, Beta = _o.Beta, Tau = _o.Beta };
        var (loss, metrics) = PreferenceTrainer.PairLoss(policy, o, pairs, refC is null ? null : tensor(refC), refR is null ? null : tensor(refR), padId);
        double value = loss.item<float>();
        loss.backward();
        if (_o.MaxGradNorm > 0) nn.utils.clip_grad_norm_(policy.parameters(), _o.MaxGradNorm);
        opt.step();
        return (value, metrics);
    }

    /// <summary>Copies every weight of <paramref name="from"/> into <paramref name="to"/> (same architecture).</summary>
    static void CopyWeights(CausalLM from, CausalLM to, bool dispose)
    {
        try { to.LoadWeights(from.Weights().ToDictionary(w => w.Name, w => w.Tensor), "policy"); }
        finally { if (dispose) from.Dispose(); }
    }

    static CausalLM LoadModel(string dir) => HfCheckpoint.Load(dir).Model;

    static double Round(double x) => double.IsFinite(x) ? Math.Round(x, 6) : x;
}
