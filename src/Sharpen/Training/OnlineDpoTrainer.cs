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

/// <summary>
/// Online (iterative) DPO settings: sample from the current policy, let the rewards judge, train a preference loss on
/// the pairs. The loss is one of <see cref="PreferenceLosses.Names"/>; β is its reward scale (for ipo it is τ); the
/// other coefficients take the defaults of <see cref="PreferenceOptions"/>.
/// </summary>
public sealed record OnlineDpoOptions
{
    /// <summary>Sample–judge–update rounds.</summary>
    public int Iterations { get; init; } = 100;
    /// <summary>Prompts sampled per iteration (one pair at most per prompt).</summary>
    public int PromptsPerIteration { get; init; } = 16;
    /// <summary>Completions sampled per prompt (≥ 2).</summary>
    public int SamplesPerPrompt { get; init; } = 4;
    /// <summary>Sampling temperature (&gt; 0).</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Completion length cap in tokens.</summary>
    public int MaxNewTokens { get; init; } = 256;
    /// <summary>Preference loss name: dpo, cdpo, ipo, rdpo, orpo or simpo.</summary>
    public string Loss { get; init; } = "dpo";
    /// <summary>β of the loss (τ for ipo).</summary>
    public double Beta { get; init; } = 0.1;
    /// <summary>AdamW learning rate (constant, no weight decay).</summary>
    public double LearningRate { get; init; } = 5e-6;
    /// <summary>Clip the global gradient norm to this (0 = off).</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Optimizer steps per iteration on that iteration's pairs.</summary>
    public int UpdatesPerIteration { get; init; } = 1;
    /// <summary>How a prompt's pair is picked.</summary>
    public PairSelection PairSelection { get; init; } = PairSelection.BestVsWorst;
    /// <summary>Pairs whose reward margin is below this are dropped (the default drops ties).</summary>
    public double MinMargin { get; init; } = 1e-9;
    /// <summary>Seed of the prompt order, the sampling and random pair selection.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Whether the loss compares against a frozen reference policy (every loss but orpo and simpo).</summary>
    public bool NeedsReference => Loss is not ("orpo" or "simpo");

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field as <c>online_dpo.&lt;key&gt;</c>.</summary>
    public OnlineDpoOptions Validate()
    {
        void Positive(double v, string key) { if (!(v > 0) || double.IsInfinity(v)) throw new ArgumentException($"online_dpo.{key} must be positive, got {v}"); }
        void NonNegative(double v, string key) { if (!(v >= 0) || double.IsInfinity(v)) throw new ArgumentException($"online_dpo.{key} must be ≥ 0, got {v}"); }
        if (Loss is null || !PreferenceLosses.Names.Contains(Loss))
            throw new ArgumentException($"online_dpo.loss: unknown loss '{Loss}'. Known: {string.Join(", ", PreferenceLosses.Names)}.");
        Positive(Iterations, "iterations"); Positive(PromptsPerIteration, "prompts_per_iteration");
        if (SamplesPerPrompt < 2) throw new ArgumentException($"online_dpo.samples_per_prompt must be ≥ 2 to form a pair, got {SamplesPerPrompt}");
        Positive(Temperature, "temperature"); Positive(MaxNewTokens, "max_new_tokens"); Positive(Beta, "beta");
        Positive(LearningRate, "learning_rate"); NonNegative(MaxGradNorm, "max_grad_norm"); Positive(UpdatesPerIteration, "updates_per_iteration");
        if (!Enum.IsDefined(PairSelection)) throw new ArgumentException($"online_dpo.pair_selection: unknown value {PairSelection}");
        NonNegative(MinMargin, "min_margin");
        return this;
    }
}

/// <summary>What an online DPO run produced.</summary>
public sealed record OnlineDpoResult(int Iterations, double FinalLoss, double FinalRewardMean, int TotalPairs, string FinalCheckpoint, double Seconds);

/// <summary>
/// Online / iterative DPO (Xu et al. 2023; Guo et al. 2024, online AI feedback), one iteration top to bottom: take
/// PromptsPerIteration prompts in a seeded order → sample SamplesPerPrompt completions each from the current policy
/// (seed from (Seed, iteration)) → score them with the rewards (the judge) → one pair per prompt by
/// <see cref="OnlineDpoOptions.PairSelection"/>, dropping pairs whose margin is below MinMargin → summed log-probs of
/// chosen and rejected under the frozen reference (the policy at the start; no_grad) → UpdatesPerIteration AdamW
/// steps of the preference loss on all kept pairs → metrics row.
/// </summary>
public sealed class OnlineDpoTrainer(CausalLM policy, ITokenizer tokenizer, OnlineDpoOptions options, IReadOnlyList<WeightedReward> rewards)
{
    /// <summary>Human-readable progress lines.</summary>
    public Action<string>? Log { get; init; }

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


    /// <summary>Runs the iterations; writes metrics.jsonl, summary.json and final/ into <paramref name="outDir"/>.</summary>
    public OnlineDpoResult Run(IReadOnlyList<RlPrompt> prompts, string outDir, CancellationToken cancel = default)
    {
        if (prompts.Count == 0) throw new ArgumentException("no prompts");
        var total = Stopwatch.StartNew();
        Directory.CreateDirectory(outDir);
        int padId = tokenizer.PadTokenId ?? 0;
        using var reference = _o.NeedsReference ? policy.Copy(trainable: false) : null;
        using var opt = optim.AdamW(policy.parameters(), lr: _o.LearningRate, weight_decay: 0.0);
        var engine = new RolloutEngine(policy, tokenizer);
        var runLog = new RunLog(outDir);

        int position = 0, epoch = 0, totalPairs = 0;
        var order = DataOrder.Permutation(prompts.Count, _o.Seed, epoch);
        double lastLoss = double.NaN, lastReward = double.NaN;
        for (int it = 0; it < _o.Iterations; it++)
        {
            cancel.ThrowIfCancellationRequested();
            var phase = Stopwatch.StartNew();
            var batch = new List<RlPrompt>(_o.PromptsPerIteration);
            while (batch.Count < _o.PromptsPerIteration)
            {
                if (position == prompts.Count) { epoch++; position = 0; order = DataOrder.Permutation(prompts.Count, _o.Seed, epoch); }
                batch.Add(prompts[order[position++]]);
            }
            long seed = (long)_o.Seed * 1_000_003 + it;
            policy.eval();
            var rollouts = engine.Generate(batch.Select(p => p.Prompt).ToList(), new SamplingOptions
            {
                SamplesPerPrompt = _o.SamplesPerPrompt, Temperature = _o.Temperature, MaxNewTokens = _o.MaxNewTokens,
                Seed = seed, MaxBatchSequences = 512,
            });
            var contexts = rollouts.Select(r => new RewardContext(batch[r.PromptIndex].Prompt, r.CompletionText, batch[r.PromptIndex].Fields, r.CompletionIds.Length)).ToList();
            double[] scores = RewardCombiner.ScoreAsync(rewards, contexts, cancel).AsTask().GetAwaiter().GetResult().Total;
            double generateSeconds = phase.Elapsed.TotalSeconds;
            phase.Restart();

            // ---- pairs: one per prompt, ties (margin < MinMargin) dropped
            var rng = new Random(unchecked((int)(seed & int.MaxValue)));
            var pairs = new List<PreferenceTrainer.Pair>();
            int dropped = 0;
            for (int p = 0; p < batch.Count; p++)
            {
                var group = Enumerable.Range(0, rollouts.Count).Where(i => rollouts[i].PromptIndex == p).ToList();
                var groupScores = group.Select(i => scores[i]).ToList();
                var pick = PairOracle is null ? SelectPair(groupScores, _o.PairSelection, _o.MinMargin, rng) : PairOracle(groupScores, rng);
                if (pick is not { } pr) { dropped++; continue; }
                var (c, r) = (rollouts[group[pr.Chosen]], rollouts[group[pr.Rejected]]);
                pairs.Add(new PreferenceTrainer.Pair(c.PromptIds, c.CompletionIds, r.CompletionIds));
            }
            totalPairs += pairs.Count;

            // ---- updates
            double loss = double.NaN, accuracy = double.NaN, margin = double.NaN;
            if (pairs.Count > 0)
            {
                policy.train();
                float[]? refC = null, refR = null;
                if (reference is not null) (refC, refR) = PreferenceTrainer.SummedLogProbs(reference, pairs, padId);
                for (int u = 0; u < _o.UpdatesPerIteration; u++)
                {
                    var (l, m) = Step(opt, pairs, refC, refR, padId);
                    if (u == 0) { loss = l; accuracy = m.Accuracy; margin = m.Margin; }   // before this iteration's updates
                }
                policy.eval();
            }
            double updateSeconds = phase.Elapsed.TotalSeconds;
            double rewardMean = scores.Length > 0 ? scores.Average() : double.NaN;
            lastReward = rewardMean;
            if (!double.IsNaN(loss)) lastLoss = loss;

            runLog.Metrics(new JsonObject
            {
                ["step"] = it + 1, ["reward_mean"] = Round(rewardMean), ["pairs"] = pairs.Count, ["dropped_ties"] = dropped,
                ["loss"] = Round(loss), ["accuracy"] = Round(accuracy), ["margin"] = Round(margin),
                ["timing/generate"] = Math.Round(generateSeconds, 4), ["timing/update"] = Math.Round(updateSeconds, 4),
            });
            Log?.Invoke($"iter {it + 1}/{_o.Iterations}  reward {rewardMean:F4}  pairs {pairs.Count} (dropped {dropped})  {_o.Loss} {loss:F4}  acc {accuracy:P0}");
        }

        var finalDir = Path.Combine(outDir, "final");
        HfCheckpoint.SaveAtomically(finalDir, policy, tokenizer);
        total.Stop();
        runLog.Summary(new JsonObject
        {
            ["algorithm"] = "online_dpo", ["loss_name"] = _o.Loss, ["iterations"] = _o.Iterations, ["final_loss"] = Round(lastLoss),
            ["final_reward_mean"] = Round(lastReward), ["pairs"] = totalPairs, ["pair_selection"] = _o.PairSelection.ToString(),
            ["seconds"] = Math.Round(total.Elapsed.TotalSeconds, 2), ["final_checkpoint"] = finalDir,
        });
        return new OnlineDpoResult(_o.Iterations, lastLoss, lastReward, totalPairs, finalDir, total.Elapsed.TotalSeconds);
    }

    (double Loss, PreferenceMetrics Metrics) Step(optim.Optimizer opt, List<PreferenceTrainer.Pair> pairs, float[]? refC, float[]? refR, int padId)
    {
        using var scope = NewDisposeScope();
        opt.zero_grad();
        // The online trainer exposes β only: the other losses keep PreferenceOptions' defaults and IPO's τ is β.
        var o = new PreferenceOptions { Loss = _o.Loss, Beta = _o.Beta, Tau = _o.Beta };
        var (loss, metrics) = PreferenceTrainer.PairLoss(policy, o, pairs, refC is null ? null : tensor(refC), refR is null ? null : tensor(refR), padId);
        double value = loss.item<float>();
        loss.backward();
        if (_o.MaxGradNorm > 0) nn.utils.clip_grad_norm_(policy.parameters(), _o.MaxGradNorm);
        opt.step();
        return (value, metrics);
    }




    static double Round(double x) => double.IsFinite(x) ? Math.Round(x, 6) : x;
}
