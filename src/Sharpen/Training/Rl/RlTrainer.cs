using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tasks;
using Sharpen.Tokenizers;
using static TorchSharp.torch;
using Sharpen.Evaluation;

namespace Sharpen.Training.Rl;

/// <summary>What an RL run produced.</summary>
public sealed record RlResult(int Iterations, EvalResult? Eval, string FinalCheckpoint, double Seconds);

/// <summary>
/// The online RL loop, one iteration top to bottom: sample prompts → generate G completions each
/// (the rollout engine returns the behaviour log-probs) → score with the reward functions →
/// reference log-probs (and critic values for PPO) → advantages by the algorithm's estimator →
/// K epochs of minibatch updates with its policy loss (+ KL in the loss for GRPO) → critic update →
/// metrics row. The loop knows the algorithm only through <see cref="RlAlgorithms"/> names.
/// </summary>
public sealed class RlTrainer(CausalLM policy, ITokenizer tokenizer, RlOptions options, IReadOnlyList<WeightedReward> rewards)
{
    /// <summary>Human-readable progress lines.</summary>
    public Action<string>? Log { get; init; }
    /// <summary>Optional task: accuracy of rollouts and greedy held-out accuracy are measured with its verifier.</summary>
    public IVerifiableTask? Task { get; init; }
    /// <summary>Held-out problems for the greedy evaluation.</summary>
    public IReadOnlyList<Problem> EvalProblems { get; init; } = [];

    readonly RlOptions _o = options.Validate();
    // The caller's rewards, plus DAPO's overlong punishment when rl.overlong_buffer is set.
    readonly IReadOnlyList<WeightedReward> _rewards = options.OverlongBuffer > 0
        ? [.. rewards, new(new OverlongPenalty(options.MaxNewTokens, options.OverlongBuffer), options.OverlongPenalty)]
        : rewards;
    readonly AlgorithmSpec _spec = RlAlgorithms.Get(options.Algorithm);

    /// <summary>Runs the iterations; writes metrics.jsonl, summary.json, checkpoints/ and final/ into <paramref name="outDir"/>.</summary>
    public RlResult Run(IReadOnlyList<RlPrompt> prompts, string outDir, bool resume = false, CancellationToken cancel = default)
    {
        if (prompts.Count == 0) throw new ArgumentException("no prompts");
        var total = Stopwatch.StartNew();
        int padId = tokenizer.PadTokenId ?? 0;
        bool needReference = _o.Beta > 0 && _spec.Kl != KlPlacement.None;
        // With LoRA the reference is the frozen base (the policy with its adapters off), so no copy is made or checkpointed.
        bool referenceIsBase = needReference && policy.Lora is not null;
        using var reference = needReference && !referenceIsBase ? policy.Copy(trainable: false) : null;
        using var critic = _spec.UsesCritic ? policy.Copy(trainable: true) : null;
        using var head = _spec.UsesCritic ? new ScalarHead(policy.Config.HiddenSize) : null;
        using var opt = optim.AdamW(policy.TrainableParameters(), lr: _o.LearningRate, weight_decay: 0.0);
        using var criticOpt = critic is null ? null : optim.AdamW(critic.parameters().Concat(head!.parameters()), lr: _o.CriticLearningRate, weight_decay: 0.0);
        IKlController kl = _o.TargetKl is { } target ? new AdaptiveKlController(_o.Beta, target, _o.KlHorizon) : new FixedKlController(_o.Beta);
        var baseline = new MovingAverageBaseline(_o.BaselineDecay);
        var rewardStats = new RunningMoments();
        var engine = new RolloutEngine(policy, tokenizer);
        var ckptRoot = Path.Combine(outDir, "checkpoints");
        var runLog = new RunLog(outDir, append: resume);

        int start = 0, position = 0, epoch = 0, optSteps = 0;
        if (resume && TrainingCheckpoint.Latest(ckptRoot) is { } latest)
        {
            var s = TrainingCheckpoint.Restore(latest, policy, opt);
            start = s["step"]!.GetValue<int>();
            position = s["position"]!.GetValue<int>();
            epoch = s["epoch"]!.GetValue<int>();
            optSteps = s["optimizer_steps"]!.GetValue<int>();
            if (s["baseline"] is { } b) baseline.Restore(b.GetValue<double>());
            if (s["kl_beta"] is { } kb) kl = _o.TargetKl is { } t2 ? new AdaptiveKlController(kb.GetValue<double>(), t2, _o.KlHorizon) : new FixedKlController(kb.GetValue<double>());
            rewardStats = RunningMoments.FromJson(s["reward_moments"] as JsonObject);
            if (reference is not null) LoadInto(reference, Path.Combine(latest, "reference"));
            if (critic is not null)
            {
                var c = HfCheckpoint.Load(Path.Combine(latest, "critic"));
                using (c.Model) critic.LoadWeights(c.Model.Weights().ToDictionary(w => w.Name, w => w.Tensor), latest);
                CopyHead(c.Head ?? throw new CheckpointException($"{latest}/critic: no {ScalarHead.FileName}"), head!);
                ((TorchSharp.Modules.OptimizerHelper)criticOpt!).load_state_dict(Path.Combine(latest, "critic_optimizer.bin"));
            }
            runLog.TruncateAfter(start);
            Log?.Invoke($"resumed from {latest} at iteration {start}");
        }
        var cursor = new DataCursor(prompts.Count, _o.Seed, epoch, position);
        EvalResult? eval = null;
        double trainSeconds = 0;   // wall-clock without evaluation
        int lastIteration = start;

        for (int it = start; it < _o.Iterations; it++)
        {
            cancel.ThrowIfCancellationRequested();
            var timing = new Dictionary<string, double>();
            var phase = Stopwatch.StartNew();
            double Lap() { double s = phase.Elapsed.TotalSeconds; phase.Restart(); return s; }

            // ---- generate and score (with dynamic sampling: more rounds of prompts until the batch holds
            //      PromptsPerIteration groups whose rewards differ, or MaxSamplingRounds rounds were drawn)
            int g = _o.SamplesPerPrompt;
            var batch = new List<RlPrompt>();
            var rollouts = new List<Rollout>();
            var kept = new List<double>();
            var allRewards = new List<double>();
            var functionSums = new Dictionary<string, (double Sum, int Rounds)>();
            int rounds = 0, correct = 0;
            double genTokens = 0;
            IReadOnlyList<Rollout>? greedy = null;
            double[]? greedyR = null;
            bool dynamic = _o.DynamicSampling && g > 1 && _spec.Estimator is "grpo" or "dr_grpo" or "rloo";
            do
            {
                var round = cursor.Next(_o.PromptsPerIteration).Select(i => prompts[i]).ToList();
                var roundPhase = Stopwatch.StartNew();
                var ro = engine.Generate(round.Select(p => p.Prompt).ToList(), new SamplingOptions
                {
                    SamplesPerPrompt = g, Temperature = _o.Temperature, TopP = _o.TopP, MaxNewTokens = _o.MaxNewTokens,
                    Seed = (long)_o.Seed * 1_000_003 + it + 7_919L * 1_000_003 * rounds, MaxBatchSequences = 512,
                });
                if (_spec.UsesGreedyBaseline)
                    greedy = engine.Generate(round.Select(p => p.Prompt).ToList(), new SamplingOptions { Temperature = 0, MaxNewTokens = _o.MaxNewTokens, MaxBatchSequences = 512 });
                timing["generate"] = timing.GetValueOrDefault("generate") + roundPhase.Elapsed.TotalSeconds;
                roundPhase.Restart();
                genTokens += ro.Sum(r => r.CompletionIds.Length) + (greedy?.Sum(r => r.CompletionIds.Length) ?? 0);
                var ctx = RlPrompt.Contexts(round, ro);
                var sc = RewardCombiner.ScoreAsync(_rewards, ctx, cancel).AsTask().GetAwaiter().GetResult();
                if (greedy is not null)
                {
                    var gctx = RlPrompt.Contexts(round, greedy);
                    greedyR = RewardCombiner.ScoreAsync(_rewards, gctx, cancel).AsTask().GetAwaiter().GetResult().Total;
                }
                if (Task is not null) correct += ctx.Count(c => Task.Verify(TaskReward.ToProblem(c), c.Completion).Correct);
                allRewards.AddRange(sc.Total);
                foreach (var (name, mean) in sc.MeanByFunction)
                    if (!double.IsNaN(mean)) functionSums[name] = (functionSums.GetValueOrDefault(name).Sum + mean, functionSums.GetValueOrDefault(name).Rounds + 1);
                    else functionSums.TryAdd(name, (0, 0));
                rounds++;
                var signal = g > 1 ? RowsOfGroupsWithSignal(sc.Total, g).Where(x => x % g == 0).Select(x => (int)(x / g)).ToHashSet() : [];
                // Without dynamic sampling every group is kept; with it, the groups that carry signal, in prompt order
                // (and, when no round had any, the last round's groups: their advantages are zero, only the KL term acts).
                bool lastChance = dynamic && batch.Count == 0 && rounds >= _o.MaxSamplingRounds;
                for (int k = 0; k < round.Count && batch.Count < _o.PromptsPerIteration; k++)
                {
                    if (dynamic && !lastChance && !signal.Contains(k)) continue;
                    for (int j = 0; j < g; j++)
                    {
                        var r0 = ro[k * g + j];
                        rollouts.Add(r0 with { PromptIndex = batch.Count });
                        kept.Add(sc.Total[k * g + j]);
                    }
                    batch.Add(round[k]);
                }
                timing["score"] = timing.GetValueOrDefault("score") + roundPhase.Elapsed.TotalSeconds;
            } while (dynamic && batch.Count < _o.PromptsPerIteration && rounds < _o.MaxSamplingRounds);
            int n = rollouts.Count;
            double[] rawR = [.. kept];
            double? accuracy = Task is null ? null : correct / (double)allRewards.Count;
            var meanByFunction = functionSums.ToDictionary(kv => kv.Key, kv => kv.Value.Rounds > 0 ? kv.Value.Sum / kv.Value.Rounds : double.NaN);
            phase.Restart();

            using var iterScope = NewDisposeScope();
            var seq = SequenceBatch.Build(rollouts.Select(r => (IReadOnlyList<int>)r.PromptIds).ToList(),
                rollouts.Select(r => (IReadOnlyList<int>)r.CompletionIds).ToList(), padId);
            long a = seq.CompletionIds.shape[1];
            var mask = seq.CompletionMask;                                                       // (B, A)
            var oldLogp = Pad(rollouts.Select(r => r.LogProbs).ToList(), a);                     // (B, A) behaviour log-probs

            // ---- reference log-probs and critic values (no gradients)
            Tensor? refLogp = null, oldValues = null;
            using (no_grad())
            {
                if (reference is not null) refLogp = Batched(seq, m => Scoring.CompletionLogProbs(reference, m));      // (B, A)
                else if (referenceIsBase)
                    using (policy.AdaptersDisabled()) refLogp = Batched(seq, m => Scoring.CompletionLogProbs(policy, m));
                if (critic is not null) oldValues = Batched(seq, m => Values(critic, head!, m));                    // (B, A)
            }
            timing["reference"] = Lap();

            // ---- advantages
            var klTok = refLogp is null ? zeros_like(oldLogp) : KlEstimators.K1(oldLogp, refLogp) * mask;  // (B, A)
            var klSeq = klTok.sum(1);                                                            // (B)
            double beta = kl.Value;
            var r = tensor(rawR).to(ScalarType.Float32);                                         // (B)
            if (_o.NormalizeRewards)
            {
                rewardStats.Update(rawR);
                r = (r - rewardStats.Mean) / (rewardStats.Std + 1e-8);
            }
            if (_o.RewardClip > 0) r = r.clamp(-_o.RewardClip, _o.RewardClip);
            bool klInReward = _spec.Kl == KlPlacement.InReward && refLogp is not null;
            Tensor? returns = null;
            Tensor adv, seqAdv;
            switch (_spec.Estimator)
            {
                case "gae":
                {
                    var lastIdx = (mask.sum(1) - 1).clamp_min(0).to(ScalarType.Int64).unsqueeze(1);          // (B, 1)
                    var tokR = (klInReward ? -beta * klTok : zeros_like(klTok))
                        .scatter_add(1, lastIdx, r.unsqueeze(1)) * mask;                                     // (B, A): KL per token, R at the last token
                    var o = AdvantageEstimators.Gae(new GaeInput(tokR, oldValues!, mask, _o.Gamma, _o.Lambda));
                    adv = o.Advantages; returns = o.Returns; seqAdv = r;
                    break;
                }
                case "grpo" or "dr_grpo":
                    adv = AdvantageEstimators.Grpo(new GroupOutcomeInput(r, mask, g), scaleByStd: _spec.Estimator == "grpo" && _o.ScaleByStd).Advantages;
                    seqAdv = r;
                    break;
                case "rloo":
                {
                    var rr = klInReward ? r - beta * klSeq : r;
                    adv = AdvantageEstimators.Rloo(new GroupOutcomeInput(rr, mask, g)).Advantages;
                    seqAdv = rr;
                    break;
                }
                case "remax":
                {
                    var rr = klInReward ? r - beta * klSeq : r;
                    var b = tensor(greedyR!).to(ScalarType.Float32).repeat_interleave(g);
                    adv = AdvantageEstimators.Remax(new RemaxInput(rr, mask, b)).Advantages;
                    seqAdv = rr - b;
                    break;
                }
                case "p3o":
                {
                    // P3O: the KL-regularised reward r − β·KL(y) enters the pairwise loss; its advantages (r − pair mean =
                    // (r₁ − r₂)/2) are kept for the metrics.
                    var rr = klInReward ? r - beta * klSeq : r;
                    adv = AdvantageEstimators.Grpo(new GroupOutcomeInput(rr, mask, g), scaleByStd: false).Advantages;
                    seqAdv = rr;
                    break;
                }
                default: // reinforce (REINFORCE and TOPR): moving-average baseline c
                {
                    var rr = klInReward ? r - beta * klSeq : r;
                    double mean = rr.mean().item<float>();
                    double c = baseline.Initialized ? baseline.Value : mean;
                    adv = AdvantageEstimators.Reinforce(new BaselineInput(rr, mask, c)).Advantages;
                    seqAdv = rr - c;
                    baseline.Update(mean);
                    break;
                }
            }
            if (_o.WhitenAdvantages) adv = AdvantageEstimators.Whiten(adv, mask) * mask;
            double zeroGroups = g > 1 ? AdvantageEstimators.ZeroAdvantageGroupFraction(tensor(allRewards.ToArray()).to(ScalarType.Float32), g) : double.NaN;  // every generated group
            timing["advantage"] = Lap();

            // ---- update the actor (K epochs of minibatches; micro-batches accumulate with global counts)
            var m = new UpdateMetrics();
            double trainTokens = 0;
            int trainedRows = n;
            if (it >= _o.CriticWarmupIterations)
            {
                bool skipZero = _o.SkipZeroAdvantageGroups && g > 1 && _spec.Estimator is "grpo" or "dr_grpo" or "rloo";
                if (skipZero || _o.MaskTruncatedCompletions)
                {
                    // Keep the rows of groups whose rewards differ (the others have zero advantage) and/or the rows that
                    // ended before the token limit; the advantages were computed over every row.
                    var keep = TrainRows(rawR, g, rollouts.Select(r => r.Stop).ToList(), skipZero, _o.MaskTruncatedCompletions);
                    trainedRows = keep.Length;
                    if (keep.Length > 0)
                    {
                        var rowsT = tensor(keep);
                        trainTokens = UpdateActor(opt, Rows(seq, rowsT), oldLogp.index_select(0, rowsT), adv.index_select(0, rowsT),
                            seqAdv.index_select(0, rowsT), refLogp?.index_select(0, rowsT), beta, it, m, ref optSteps);
                    }
                }
                else trainTokens = UpdateActor(opt, seq, oldLogp, adv, seqAdv, refLogp, beta, it, m, ref optSteps);
            }
            timing["update_actor"] = Lap();

            // ---- update the critic (PPO)
            double valueLoss = double.NaN, valueClipFrac = double.NaN;
            if (critic is not null)
            {
                double vl = 0, vc = 0; int steps = 0;
                for (int ep = 0; ep < _o.Epochs; ep++)
                    foreach (var rows in MiniBatches(n, it, ep + 1000))
                    {
                        criticOpt!.zero_grad();
                        var rowsT = tensor(rows.Select(x => (long)x).ToArray());
                        var agg = new Aggregation(LossAggregation.TokenMean, mask.index_select(0, rowsT).sum().item<float>(), rows.Length);
                        for (int s0 = 0; s0 < rows.Length; s0 += _o.MicroBatchSize)
                        {
                            using var micro = NewDisposeScope();
                            var idx = rowsT.narrow(0, s0, Math.Min(_o.MicroBatchSize, rows.Length - s0));
                            var sub = Rows(seq, idx);
                            var (loss, cf) = ValueLosses.ClippedMse(Values(critic, head!, sub), oldValues!.index_select(0, idx),
                                returns!.index_select(0, idx), sub.CompletionMask, _o.ValueClip, agg);
                            loss.backward();
                            double share = idx.shape[0] / (double)rows.Length;
                            vl += loss.item<float>(); vc += cf * share;
                        }
                        if (_o.MaxGradNorm > 0) nn.utils.clip_grad_norm_(critic.parameters().Concat(head!.parameters()), _o.MaxGradNorm);
                        criticOpt.step();
                        steps++;
                    }
                valueLoss = vl / Math.Max(1, steps); valueClipFrac = vc / Math.Max(1, steps);
            }
            timing["update_critic"] = Lap();

            // ---- KL control, metrics, evaluation, checkpoint
            double klMean = klSeq.mean().item<float>();
            kl.Update(klMean, n);
            var row = new JsonObject
            {
                ["step"] = it + 1, ["reward_mean"] = allRewards.Average(), ["reward_std"] = Std([.. allRewards]),
                ["kl"] = refLogp is null ? null : klMean, ["beta"] = beta, ["entropy"] = m.Entropy, ["loss"] = m.Loss,
                ["clip_fraction"] = m.ClipFraction, ["approx_kl"] = m.ApproxKl, ["ratio_max"] = m.RatioMax, ["grad_norm"] = m.GradNorm,
                ["advantage_mean"] = Masked(adv, mask).Mean, ["advantage_std"] = Masked(adv, mask).Std,
                ["zero_advantage_group_fraction"] = double.IsNaN(zeroGroups) ? null : zeroGroups,
                ["completion_length"] = rollouts.Average(x => x.CompletionIds.Length), ["trained_sequences"] = trainedRows,
                ["stopped_at_eos"] = rollouts.Count(x => x.Stop == StopReason.Eos) / (double)n,
                ["generation_tokens_per_s"] = Math.Round(genTokens / Math.Max(timing["generate"], 1e-9), 1),
                ["train_tokens_per_s"] = Math.Round(trainTokens / Math.Max(timing["update_actor"], 1e-9), 1),
            };
            if (accuracy is { } acc) row["accuracy"] = acc;
            if (greedyR is not null) row["greedy_reward_mean"] = greedyR.Average();
            if (dynamic) { row["sampling_rounds"] = rounds; row["trained_groups"] = batch.Count; }
            if (critic is not null) { row["value_loss"] = valueLoss; row["value_clip_fraction"] = valueClipFrac; }
            foreach (var (name, mean) in meanByFunction) row[$"reward/{name}"] = double.IsNaN(mean) ? null : mean;
            foreach (var (name, secs) in timing) row[$"timing/{name}"] = Math.Round(secs, 3);
            bool lastOne = it + 1 == _o.Iterations || (_o.MaxSeconds > 0 && trainSeconds + timing.Values.Sum() >= _o.MaxSeconds);
            if (Task is not null && EvalProblems.Count > 0 && ((_o.EvalEvery > 0 && (it + 1) % _o.EvalEvery == 0) || lastOne))
            {
                eval = Evaluator.Run(engine, Task, EvalProblems.Take(_o.EvalProblems).ToList(), maxNewTokens: _o.MaxNewTokens);
                row["eval_accuracy"] = eval.Accuracy;
                timing["eval"] = Lap();
                row["timing/eval"] = Math.Round(timing["eval"], 3);
            }
            trainSeconds += timing.Where(kv => kv.Key != "eval").Sum(kv => kv.Value);
            row["train_seconds"] = Math.Round(trainSeconds, 3);
            runLog.Metrics(row);
            lastIteration = it + 1;
            Log?.Invoke($"iter {it + 1}/{_o.Iterations}  reward {allRewards.Average():F3}" + (accuracy is { } ac2 ? $"  acc {ac2:P1}" : "") +
                        (refLogp is null ? "" : $"  kl {klMean:F4}") + $"  len {rollouts.Average(x => x.CompletionIds.Length):F1}" +
                        $"  gen {timing["generate"]:F1}s upd {timing["update_actor"]:F1}s" +
                        (row["eval_accuracy"] is not null ? $"  eval_acc {eval!.Accuracy:P1}" : ""));

            if (_o.CheckpointEvery > 0 && (it + 1) % _o.CheckpointEvery == 0 && it + 1 < _o.Iterations)
            {
                var state = new JsonObject
                {
                    ["position"] = cursor.Position, ["epoch"] = cursor.Epoch, ["optimizer_steps"] = optSteps, ["seed"] = _o.Seed,
                    ["baseline"] = baseline.Initialized ? baseline.Value : null, ["kl_beta"] = kl.Value, ["reward_moments"] = rewardStats.ToJson(),
                    ["algorithm"] = _o.Algorithm,
                };
                var dir = TrainingCheckpoint.Save(ckptRoot, it + 1, policy, tokenizer, opt, state, _o.KeepCheckpoints,
                    extra: tmp =>
                    {
                        if (reference is not null) HfCheckpoint.Save(Path.Combine(tmp, "reference"), reference);
                        if (critic is not null)
                        {
                            HfCheckpoint.Save(Path.Combine(tmp, "critic"), critic, head: head);
                            ((TorchSharp.Modules.OptimizerHelper)criticOpt!).save_state_dict(Path.Combine(tmp, "critic_optimizer.bin"));
                        }
                    });
                Log?.Invoke($"checkpoint {dir}");
            }
            if (_o.MaxSeconds > 0 && trainSeconds >= _o.MaxSeconds) break;
        }

        var finalDir = Path.Combine(outDir, "final");
        HfCheckpoint.SaveAtomically(finalDir, policy, tokenizer);
        var summary = new JsonObject
        {
            ["algorithm"] = _o.Algorithm, ["iterations"] = lastIteration, ["seconds"] = Math.Round(total.Elapsed.TotalSeconds, 2),
            ["final_checkpoint"] = finalDir,
        };
        if (eval is not null) foreach (var (k, v) in eval.ToJson()) summary[k] = v?.DeepClone();
        runLog.Summary(summary);
        return new RlResult(lastIteration, eval, finalDir, total.Elapsed.TotalSeconds);
    }


    /// <summary>K epochs of minibatch updates of the policy; returns the completion tokens trained on.</summary>
    double UpdateActor(optim.Optimizer opt, SequenceBatch seq, Tensor oldLogp, Tensor adv, Tensor seqAdv, Tensor? refLogp, double beta,
        int it, UpdateMetrics m, ref int optSteps)
    {
        long n = seq.InputIds.shape[0], a = seq.CompletionIds.shape[1];
        var mask = seq.CompletionMask;
        double trainTokens = 0;
        for (int ep = 0; ep < _o.Epochs; ep++)
        {
            foreach (var rows in MiniBatches((int)n, it, ep))
            {
                opt.zero_grad();
                var rowsT = tensor(rows.Select(x => (long)x).ToArray());
                var mbMask = mask.index_select(0, rowsT);
                var agg = new Aggregation(_o.Aggregation, mbMask.sum().item<float>(), rows.Length, _o.MaxNewTokens);
                for (int s0 = 0; s0 < rows.Length; s0 += _o.MicroBatchSize)
                {
                    using var micro = NewDisposeScope();
                    var idx = rowsT.narrow(0, s0, Math.Min(_o.MicroBatchSize, rows.Length - s0));
                    var sub = Rows(seq, idx);
                    var logits = policy.Forward(sub.InputIds, sub.AttentionMask).Logits.narrow(1, seq.PromptLength - 1, a);   // (b, A, V)
                    var logp = Scoring.TokenLogProbs(logits, sub.CompletionIds) * sub.CompletionMask;                         // (b, A)
                    var input = new PolicyLossInput(logp, oldLogp.index_select(0, idx), adv.index_select(0, idx), sub.CompletionMask);
                    var (loss, pm) = _spec.PolicyLoss switch
                    {
                        "ppo_clip" => PolicyLosses.PpoClip(input, new ClipOptions(_o.ClipLow, _o.ClipHigh, _o.DualClip), agg),
                        "topr" => PolicyLosses.Topr(input, seqAdv.index_select(0, idx), agg),
                        "p3o_clip" => PairwisePolicyLosses.P3o(input, seqAdv.index_select(0, idx), _o.ClipLow, rows.Length / 2.0),
                        _ => PolicyLosses.Vanilla(input, agg),
                    };
                    if (_spec.Kl == KlPlacement.InLoss && refLogp is not null && beta > 0)
                    {
                        var klLoss = LossAggregator.Aggregate(KlEstimators.Get(_o.KlEstimator)(logp, refLogp.index_select(0, idx)), sub.CompletionMask, agg);
                        loss = loss + beta * klLoss;
                    }
                    if (_o.EntropyCoefficient > 0)
                        loss = loss - _o.EntropyCoefficient * LossAggregator.Aggregate(PolicyLosses.TokenEntropy(logits), sub.CompletionMask, agg);
                    loss.backward();
                    double share = idx.shape[0] / (double)rows.Length;
                    m.Add(loss.item<float>(), pm, Entropy(logits, sub.CompletionMask), share);
                    trainTokens += sub.CompletionMask.sum().item<float>();
                }
                m.GradNorm = _o.MaxGradNorm > 0 ? nn.utils.clip_grad_norm_(policy.TrainableParameters(), _o.MaxGradNorm) : double.NaN;
                double lr = _o.WarmupSteps > 0 && optSteps < _o.WarmupSteps ? _o.LearningRate * (optSteps + 1) / _o.WarmupSteps : _o.LearningRate;
                foreach (var pg in opt.ParamGroups) pg.LearningRate = lr;
                opt.step();
                optSteps++;
            }
        }
        return trainTokens;
    }

    /// <summary>
    /// Offline RL from scored completions with their behaviour log-probs (TOPR, Le Roux et al. 2025):
    /// no generation; each iteration takes PromptsPerIteration × SamplesPerPrompt rows in a seeded
    /// order, c is the moving-average reward baseline, and the tapered loss weights positive
    /// trajectories by 1 and negative ones by the truncated ratio clamp(π/μ, 0, 1).
    /// </summary>
    public RlResult RunOffline(IReadOnlyList<ScoredCompletion> data, string outDir, CancellationToken cancel = default)
    {
        if (_spec.PolicyLoss != "topr") throw new ArgumentException($"offline training needs an off-policy loss; '{_o.Algorithm}' is on-policy (use topr)");
        if (data.Count == 0) throw new ArgumentException("no scored completions");
        var total = Stopwatch.StartNew();
        int padId = tokenizer.PadTokenId ?? 0;
        int eos = CompletionTokens.EosId(tokenizer, policy.Config);
        var encoded = new List<(int[] P, int[] C, float[] Lp, double R)>(data.Count);
        for (int i = 0; i < data.Count; i++)
        {
            var d = data[i];
            var where = d.Source ?? $"scored completion {i + 1}";
            var lps = d.LogProbs ?? throw new ArgumentException(
                $"{where}: TOPR needs the behaviour log-prob of every completion token (\"logprobs\": [...]); " +
                (d.LogProb is null ? "the row has none" : "a sequence-level \"logprob\" is not enough"));
            var p = tokenizer.Encode(d.Prompt).ToArray();
            var c = tokenizer.Encode(d.Completion, addSpecialTokens: false).ToList();
            if (lps.Length == c.Count + 1) c.Add(eos);
            if (lps.Length != c.Count)
                throw new ArgumentException($"{where}: {lps.Length} log-probs but the completion encodes to {c.Count} tokens (or {c.Count + 1} with EOS)");
            encoded.Add((p, c.ToArray(), lps, d.Reward));
        }
        using var opt = optim.AdamW(policy.TrainableParameters(), lr: _o.LearningRate, weight_decay: 0.0);
        var baseline = new MovingAverageBaseline(_o.BaselineDecay);
        var runLog = new RunLog(outDir);
        var engine = new RolloutEngine(policy, tokenizer);
        int perIteration = _o.PromptsPerIteration * _o.SamplesPerPrompt, position = 0, epoch = 0, optSteps = 0;
        var cursor = new DataCursor(encoded.Count, _o.Seed, epoch, position);
        EvalResult? eval = null;
        for (int it = 0; it < _o.Iterations; it++)
        {
            cancel.ThrowIfCancellationRequested();
            var sw = Stopwatch.StartNew();
            var rows = cursor.Next(perIteration).Select(i => encoded[i]).ToList();
            using var scope = NewDisposeScope();
            var seq = SequenceBatch.Build(rows.Select(r => (IReadOnlyList<int>)r.P).ToList(), rows.Select(r => (IReadOnlyList<int>)r.C).ToList(), padId);
            var oldLogp = Pad(rows.Select(r => r.Lp).ToList(), seq.CompletionIds.shape[1]);
            var r = tensor(rows.Select(x => x.R).ToArray()).to(ScalarType.Float32);
            double mean = rows.Average(x => x.R);
            double c = baseline.Initialized ? baseline.Value : mean;
            var adv = AdvantageEstimators.Reinforce(new BaselineInput(r, seq.CompletionMask, c)).Advantages;
            var m = new UpdateMetrics();
            UpdateActor(opt, seq, oldLogp, adv, r - c, null, 0, it, m, ref optSteps);
            baseline.Update(mean);
            var row = new JsonObject
            {
                ["step"] = it + 1, ["reward_mean"] = mean, ["baseline"] = c, ["loss"] = m.Loss, ["entropy"] = m.Entropy,
                ["truncated_fraction"] = m.ClipFraction, ["grad_norm"] = m.GradNorm, ["seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 3),
            };
            if (Task is not null && EvalProblems.Count > 0 && ((_o.EvalEvery > 0 && (it + 1) % _o.EvalEvery == 0) || it + 1 == _o.Iterations))
            {
                eval = Evaluator.Run(engine, Task, EvalProblems.Take(_o.EvalProblems).ToList(), maxNewTokens: _o.MaxNewTokens);
                row["eval_accuracy"] = eval.Accuracy;
            }
            runLog.Metrics(row);
            Log?.Invoke($"offline iter {it + 1}/{_o.Iterations}  reward {mean:F3}  baseline {c:F3}  loss {m.Loss:F4}" + (row["eval_accuracy"] is not null ? $"  eval_acc {eval!.Accuracy:P1}" : ""));
        }
        var finalDir = Path.Combine(outDir, "final");
        HfCheckpoint.SaveAtomically(finalDir, policy, tokenizer);
        var summary = new JsonObject { ["algorithm"] = _o.Algorithm, ["mode"] = "offline", ["iterations"] = _o.Iterations, ["rows"] = data.Count,
            ["seconds"] = Math.Round(total.Elapsed.TotalSeconds, 2), ["final_checkpoint"] = finalDir };
        if (eval is not null) foreach (var (k, v) in eval.ToJson()) summary[k] = v?.DeepClone();
        runLog.Summary(summary);
        return new RlResult(_o.Iterations, eval, finalDir, total.Elapsed.TotalSeconds);
    }

    // ---------------------------------------------------------------- helpers

    /// <summary>The rows the policy loss sees: with <paramref name="skipZeroGroups"/> only those of groups whose rewards differ,
    /// with <paramref name="maskTruncated"/> only those that did not stop at the token limit.</summary>
    internal static long[] TrainRows(IReadOnlyList<double> rewards, int g, IReadOnlyList<StopReason> stops, bool skipZeroGroups, bool maskTruncated)
    {
        IEnumerable<long> rows = skipZeroGroups ? RowsOfGroupsWithSignal(rewards, g) : Enumerable.Range(0, rewards.Count).Select(i => (long)i);
        return (maskTruncated ? rows.Where(i => stops[(int)i] != StopReason.MaxTokens) : rows).ToArray();
    }

    /// <summary>Rows of the groups (G consecutive rows) whose rewards are not all equal.</summary>
    internal static long[] RowsOfGroupsWithSignal(IReadOnlyList<double> rewards, int g) =>
        Enumerable.Range(0, rewards.Count / g).Where(k => rewards.Skip(k * g).Take(g).Distinct().Count() > 1)
            .SelectMany(k => Enumerable.Range(k * g, g)).Select(x => (long)x).ToArray();

    IEnumerable<int[]> MiniBatches(int n, int iteration, int epoch)
    {
        var rng = new Random(unchecked(_o.Seed * 7919 + iteration * 104729 + epoch) & int.MaxValue);
        // Pairwise losses (P3O) shuffle whole pairs, so the two samples of a prompt stay adjacent in every (micro-)batch.
        int unit = _spec.PolicyLoss == "p3o_clip" ? 2 : 1;
        var units = Enumerable.Range(0, n / unit).ToArray();
        if (_o.Epochs > 1 || _o.MiniBatchSize > 0)
            for (int i = units.Length - 1; i > 0; i--) { int j = rng.Next(i + 1); (units[i], units[j]) = (units[j], units[i]); }
        var rows = units.SelectMany(u => Enumerable.Range(u * unit, unit)).ToArray();
        int size = _o.MiniBatchSize > 0 ? _o.MiniBatchSize : n;
        for (int s = 0; s < n; s += size) yield return rows[s..Math.Min(n, s + size)];
    }

    static SequenceBatch Rows(SequenceBatch b, Tensor idx) => new(b.InputIds.index_select(0, idx), b.AttentionMask.index_select(0, idx),
        b.CompletionIds.index_select(0, idx), b.CompletionMask.index_select(0, idx), b.PromptLength);

    Tensor Batched(SequenceBatch b, Func<SequenceBatch, Tensor> f)
    {
        long total = b.InputIds.shape[0];
        var parts = new List<Tensor>();
        for (long s = 0; s < total; s += _o.MicroBatchSize)
            parts.Add(f(Rows(b, arange(s, Math.Min(total, s + _o.MicroBatchSize), dtype: ScalarType.Int64))));
        return cat(parts, 0);
    }

    /// <summary>V(s_t) for each completion token t: the head on the hidden state that predicts token t. (B, A)</summary>
    static Tensor Values(CausalLM critic, ScalarHead head, SequenceBatch b)
    {
        var hidden = critic.Forward(b.InputIds, b.AttentionMask, returnHidden: true, lastLogitsOnly: true).Hidden!;   // (B, T, C)
        return head.forward(hidden).narrow(1, b.PromptLength - 1, b.CompletionIds.shape[1]) * b.CompletionMask;      // (B, A)
    }

    static double Entropy(Tensor logits, Tensor mask)
    {
        using var _ = no_grad();
        var h = PolicyLosses.TokenEntropy(logits.detach());                                  // (b, A)
        return ((h * mask).sum() / mask.sum().clamp_min(1)).item<float>();
    }

    static Tensor Pad(IReadOnlyList<float[]> rows, long width)
    {
        var flat = new float[rows.Count * width];
        for (int i = 0; i < rows.Count; i++) rows[i].CopyTo(flat, i * width);
        return tensor(flat).view(rows.Count, width);
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



    static void LoadInto(CausalLM model, string dir)
    {
        var loaded = HfCheckpoint.Load(dir);
        using (loaded.Model) model.LoadWeights(loaded.Model.Weights().ToDictionary(w => w.Name, w => w.Tensor), dir);
    }

    static void CopyHead(ScalarHead from, ScalarHead to)
    {
        using var _ = no_grad();
        var src = from.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in to.named_parameters()) p.copy_(src[name]);
    }

    sealed class UpdateMetrics
    {
        double _loss, _clip, _akl, _ent, _w;
        public double RatioMax { get; private set; } = double.NaN;
        public double GradNorm { get; set; } = double.NaN;
        public double Loss => _w > 0 ? _loss / _w : double.NaN;
        public double ClipFraction => _w > 0 ? _clip / _w : double.NaN;
        public double ApproxKl => _w > 0 ? _akl / _w : double.NaN;
        public double Entropy => _w > 0 ? _ent / _w : double.NaN;

        public void Add(double loss, PolicyLossMetrics pm, double entropy, double share)
        {
            _loss += loss; _clip += pm.ClipFraction * share; _akl += pm.ApproxKl * share; _ent += entropy * share; _w += share;
            RatioMax = double.IsNaN(RatioMax) ? pm.RatioMax : Math.Max(RatioMax, pm.RatioMax);
        }
    }
}

/// <summary>Running mean and variance of rewards (Welford), for PPO-max reward normalisation.</summary>
sealed class RunningMoments
{
    long _n;
    double _mean, _m2;
    public double Mean => _mean;
    public double Std => _n > 1 ? Math.Sqrt(_m2 / (_n - 1)) : 1.0;

    public void Update(IEnumerable<double> xs)
    {
        foreach (var x in xs)
        {
            _n++;
            double d = x - _mean;
            _mean += d / _n;
            _m2 += d * (x - _mean);
        }
    }

    public JsonObject ToJson() => new() { ["n"] = _n, ["mean"] = _mean, ["m2"] = _m2 };

    public static RunningMoments FromJson(JsonObject? o) => o is null ? new() : new()
    {
        _n = o["n"]!.GetValue<long>(), _mean = o["mean"]!.GetValue<double>(), _m2 = o["m2"]!.GetValue<double>(),
    };
}
