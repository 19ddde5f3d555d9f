using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Sharpen.Training.Preference;

/// <summary>
/// Offline preference-optimisation settings (the <c>preference</c> section of a recipe). The loss is one of
/// <see cref="PreferenceLosses.Names"/>; only the coefficients of the chosen loss are read.
/// </summary>
public sealed record PreferenceOptions : StepSchedule
{
    /// <summary>Loss name: dpo, cdpo, ipo, rdpo, orpo, simpo, cpo, cpo_simpo, cream (reads a consistency column), upo (reads a certainty column) or tpo (listwise over ranked rows).</summary>
    public string Loss { get; init; } = "dpo";
    /// <summary>β: the reward scale of dpo, cdpo, rdpo and simpo.</summary>
    public double Beta { get; init; } = 0.1;
    /// <summary>Label smoothing ε in [0, 0.5): cDPO's, and the optional one of simpo, cpo and cpo_simpo.</summary>
    public double LabelSmoothing { get; init; } = 0.0;
    /// <summary>rDPO's known rate of flipped labels ε in [0, 0.5).</summary>
    public double FlipRate { get; init; } = 0.1;
    /// <summary>IPO's τ; its loss is minimal at h = 1/(2τ).</summary>
    public double Tau { get; init; } = 0.1;
    /// <summary>ORPO's λ, the weight of the odds-ratio term next to the chosen NLL.</summary>
    public double Lambda { get; init; } = 0.1;
    /// <summary>SimPO's (and cpo_simpo's) target reward margin γ.</summary>
    public double Gamma { get; init; } = 1.0;
    /// <summary>CPO's weight α of the chosen completion's NLL (cpo, cpo_simpo; TRL's <c>cpo_alpha</c>).</summary>
    public double Alpha { get; init; } = 1.0;
    /// <summary>tpo only: TPO's Adaptive Step Reward (arXiv:2410.12854) — a response's reward is the weighted mean of its steps'
    /// per-token log-ratios, each step weighted by 1 + the cosine similarity of its mean hidden state with the top-ranked
    /// response's same step, instead of the summed log-ratio. Default false.</summary>
    public bool AdaptiveStepReward { get; init; }
    /// <summary>With <see cref="AdaptiveStepReward"/>: how completions are cut into steps (newline, countdown, delimiter:TEXT or regex:PATTERN).</summary>
    public string StepSplitter { get; init; } = "newline";

    /// <summary>Whether the loss compares against a frozen reference policy (every loss but orpo, simpo, cpo and cpo_simpo).</summary>
    public bool NeedsReference => PreferenceLosses.Registry.Get(Loss).NeedsReference;

    /// <summary>The coefficients the loss reads.</summary>
    public PreferenceCoefficients Coefficients => new(Beta, LabelSmoothing, FlipRate, Tau, Lambda, Gamma, Alpha);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field (recipe key in snake_case).</summary>
    public PreferenceOptions Validate()
    {
        void Positive(double v, string key) => OptionChecks.Positive("preference", v, key);
        void NonNegative(double v, string key) => OptionChecks.NonNegative("preference", v, key);
        void Rate(double v, string key) { if (!(v >= 0 && v < 0.5)) throw new ArgumentException($"preference.{key} must be in [0, 0.5), got {v}"); }
        if (Loss is null || !PreferenceLosses.Names.Contains(Loss))
            throw new ArgumentException($"preference.loss: unknown loss '{Loss}'. Known: {string.Join(", ", PreferenceLosses.Names)}.");
        Positive(Beta, "beta"); Rate(LabelSmoothing, "label_smoothing"); Rate(FlipRate, "flip_rate"); Positive(Tau, "tau");
        NonNegative(Lambda, "lambda"); NonNegative(Gamma, "gamma"); NonNegative(Alpha, "alpha");
        if (AdaptiveStepReward && Loss != "tpo") throw new ArgumentException($"preference.adaptive_step_reward works with loss: tpo only (got '{Loss}')");
        try { Sharpen.Data.StepSplitter.Parse(StepSplitter); }
        catch (ArgumentException e) { throw new ArgumentException($"preference.step_splitter: {e.Message}", e); }
        ValidateSchedule("preference");
        return this;
    }
}

/// <summary>What a preference run produced.</summary>
public sealed record PreferenceResult(int Steps, double FinalLoss, double FinalAccuracy, string FinalCheckpoint);

/// <summary>
/// Offline preference optimisation (DPO and relatives), top to bottom: tokenize the pairs once; score every pair once
/// with a frozen copy of the starting policy (the reference; cached in <c>reference_logprobs.json</c> under a key of
/// the reference weights and the tokenized pairs; skipped for the reference-free orpo and simpo); then per step take
/// BatchSize pairs in a seeded order, score chosen and rejected with the policy in one stacked pass, apply the named
/// loss from <see cref="PreferenceLosses"/>, clip, AdamW step with warm-up + cosine learning rate, and log. Checkpoints
/// hold weights, optimizer moments, step and data position (epoch, position); a resumed run computes the reference from
/// the starting model it was given (the cache makes that free) before loading the checkpoint, so it ends where an
/// uninterrupted run would.
/// </summary>
public sealed class PreferenceTrainer(CausalLM policy, ITokenizer tokenizer, PreferenceOptions options)
{
    /// <summary>Receives one human-readable line per log step and about the reference log-probs.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>The reference cache's file name inside the output directory.</summary>
    public const string ReferenceFile = "reference_logprobs.json";

    PreferenceOptions _o = options.Validate();

    /// <summary>A tokenized preference pair (completions end with EOS); <paramref name="Weight"/> is the row's per-pair weight
    /// column (CREAM's consistency, UPO's certainty) when the loss reads one, else 1; <paramref name="Strength"/> is
    /// P(chosen ≻ rejected), which only OSP's soft-preference loss reads (1 = certain).</summary>
    internal sealed record Pair(int[] Prompt, int[] Chosen, int[] Rejected, double Weight = 1, double Strength = 1.0);

    /// <summary>Trains; writes metrics.jsonl, summary.json, reference_logprobs.json and final/ into <paramref name="outDir"/>.</summary>
    public PreferenceResult Run(IReadOnlyList<PreferenceExample> pairs, string outDir, CancellationToken cancel = default) =>
        Run(pairs, outDir, resume: false, cancel);

    /// <summary>
    /// Trains as <see cref="Run(IReadOnlyList{PreferenceExample}, string, CancellationToken)"/>; with <paramref name="resume"/>,
    /// continues from the newest checkpoint under <c>outDir/checkpoints</c> (the policy passed in must be the starting model).
    /// </summary>
    public PreferenceResult Run(IReadOnlyList<PreferenceExample> pairs, string outDir, bool resume, CancellationToken cancel = default)
    {
        if (pairs.Count == 0) throw new ArgumentException("the preference set is empty");
        if (PreferenceLosses.Registry.Get(_o.Loss).Listwise) return RunListwise(pairs, outDir, resume, cancel);
        long started = Stopwatch.GetTimestamp();
        Directory.CreateDirectory(outDir);
        var data = Encode(pairs);
        _o = StepSchedule.Sized(_o, data.Count);
        int padId = tokenizer.PadTokenId ?? 0;
        var (refChosen, refRejected) = _o.NeedsReference ? ReferenceLogProbs(data, outDir, padId) : (null, null);

        return Train(data.Count, batch =>
        {
            Tensor? rc = refChosen is null ? null : tensor(batch.Select(i => refChosen[i]).ToArray());        // (b)
            Tensor? rr = refRejected is null ? null : tensor(batch.Select(i => refRejected[i]).ToArray());    // (b)
            return PairLoss(policy, _o, batch.Select(i => data[i]).ToList(), rc, rr, padId);
        }, summary => summary["pairs"] = data.Count, outDir, resume, started, cancel);
    }

    /// <summary>The step loop both forms share: <paramref name="items"/> items (pairs or lists), <paramref name="loss"/> of a
    /// step's items, and <paramref name="counts"/> writing the summary's count fields.</summary>
    PreferenceResult Train(int items, Func<IReadOnlyList<int>, (Tensor Loss, PreferenceMetrics Metrics)> loss, Action<JsonObject> counts,
        string outDir, bool resume, long started, CancellationToken cancel)
    {
        policy.train();
        using var opt = optim.AdamW(policy.TrainableParameters(), lr: _o.LearningRate, weight_decay: 0.0);
        double lastAccuracy = double.NaN;
        var work = new StepWork
        {
            Items = items,
            Backward = batch =>
            {
                var (l, m) = loss(batch);
                double lossValue = l.item<float>();
                l.backward();
                lastAccuracy = m.Accuracy;
                return new StepOutcome(lossValue, [new("accuracy", m.Accuracy), new("margin", m.Margin),
                    new("chosen_reward", m.ChosenReward), new("rejected_reward", m.RejectedReward)]);
            },
            Summary = r =>
            {
                var summary = new JsonObject
                {
                    ["steps"] = r.Steps, ["loss_name"] = _o.Loss, ["final_loss"] = StepLoop.Round(r.FinalLoss), ["final_accuracy"] = StepLoop.Round(lastAccuracy),
                };
                counts(summary);
                summary["seconds"] = Math.Round(r.Seconds, 2);
                summary["final_checkpoint"] = r.FinalCheckpoint;
                return summary;
            },
        };
        var loop = new StepLoop(policy, tokenizer, opt, policy.TrainableParameters(), StepLoopSettings.From("preference", _o) with { LossLabel = _o.Loss })
            { Log = Log, Started = started };
        var result = loop.Run(work, outDir, resume, cancel);
        return new PreferenceResult(result.Steps, result.FinalLoss, lastAccuracy, result.FinalCheckpoint);
    }

    /// <summary>
    /// A listwise loss (TPO): the pairs are regrouped into ranked lists (<see cref="RankedLists.Group"/>), the reference's summed
    /// log-probs of every completion are computed once with a frozen copy of the starting policy (not cached), and each step
    /// takes BatchSize lists. Metrics, checkpoints and resume as for pairs; summary.json counts <c>lists</c>.
    /// </summary>
    PreferenceResult RunListwise(IReadOnlyList<PreferenceExample> pairs, string outDir, bool resume, CancellationToken cancel)
    {
        long started = Stopwatch.GetTimestamp();
        Directory.CreateDirectory(outDir);
        var splitter = _o.AdaptiveStepReward ? Sharpen.Data.StepSplitter.Parse(_o.StepSplitter) : null;
        var lists = RankedLists.Group(pairs, tokenizer, CompletionTokens.EosId(tokenizer, policy.Config), splitter);
        _o = StepSchedule.Sized(_o, lists.Count);
        int padId = tokenizer.PadTokenId ?? 0;
        float[][] reference = [];
        float[][][] tokenReference = [];
        var (frozen, release) = policy.FrozenReference();
        using (release)
        {
            if (splitter is null) reference = RankedLists.SummedLogProbs(frozen, lists, padId);
            else tokenReference = RankedLists.TokenLogProbs(frozen, lists, padId);
        }
        Log?.Invoke($"reference log-probs: computed for {lists.Count} ranked lists ({lists.Sum(l => l.Completions.Length)} completions)");

        return Train(lists.Count,
            batch => splitter is null
                ? RankedLists.Loss(policy, batch.Select(i => lists[i]).ToList(), batch.Select(i => reference[i]).ToList(), _o.Beta, padId)
                : RankedLists.AdaptiveLoss(policy, batch.Select(i => lists[i]).ToList(), batch.Select(i => tokenReference[i]).ToList(), _o.Beta, padId),
            summary =>
            {
                summary["pairs"] = pairs.Count; summary["lists"] = lists.Count;
                if (splitter is not null) summary["completion_steps"] = lists.Sum(l => l.StepOf!.Sum(x => x[^1] + 1));
            }, outDir, resume, started, cancel);
    }

    /// <summary>
    /// The preference loss <paramref name="o"/> names on a batch of pairs: one stacked policy pass (rows 0..b-1 the
    /// chosen completions, b..2b-1 the rejected ones), summed log-probs and lengths, then <see cref="PreferenceLosses"/>.
    /// Shared by the offline and the online trainer.
    /// </summary>
    internal static (Tensor Loss, PreferenceMetrics Metrics) PairLoss(CausalLM policy, PreferenceOptions o, IReadOnlyList<Pair> pairs,
        Tensor? refChosen, Tensor? refRejected, int padId) =>
        PairLoss(policy, o.Loss, o.Coefficients, pairs, refChosen, refRejected, padId);

    /// <summary>The loss named <paramref name="loss"/> with coefficients <paramref name="c"/>; INPO also reads the previous iterate's summed log-probs.</summary>
    internal static (Tensor Loss, PreferenceMetrics Metrics) PairLoss(CausalLM policy, string loss, PreferenceCoefficients c, IReadOnlyList<Pair> pairs,
        Tensor? refChosen, Tensor? refRejected, int padId, Tensor? previousChosen = null, Tensor? previousRejected = null)
    {
        int b = pairs.Count;
        var sb = SequenceBatch.Build(pairs.Select(p => (IReadOnlyList<int>)p.Prompt).Concat(pairs.Select(p => p.Prompt)).ToList(),
            pairs.Select(p => (IReadOnlyList<int>)p.Chosen).Concat(pairs.Select(p => p.Rejected)).ToList(), padId);
        var summed = Scoring.CompletionLogProbs(policy, sb).sum(1);                       // (2b)
        var lengths = sb.CompletionMask.sum(1);                                           // (2b)
        var input = new PreferenceInput(summed.narrow(0, 0, b), summed.narrow(0, b, b), refChosen, refRejected,
            lengths.narrow(0, 0, b), lengths.narrow(0, b, b), previousChosen, previousRejected,
            Strengths: tensor(pairs.Select(p => (float)p.Strength).ToArray()));                   // (b)
        var entry = PreferenceLosses.Registry.Get(loss);
        if (entry.PairWeightField is not null) input = input with { PairWeights = tensor(pairs.Select(p => (float)p.Weight).ToArray()) };   // (b)
        return entry.Compute(input, c);
    }

    /// <summary>
    /// Summed reference log-probs of every pair's chosen and rejected completion, from the cache when its key matches,
    /// otherwise computed with a frozen copy of the policy (as it is now; with LoRA, the policy with its adapters off) and
    /// written to the cache.
    /// </summary>
    (float[] Chosen, float[] Rejected) ReferenceLogProbs(List<Pair> data, string outDir, int padId)
    {
        var path = Path.Combine(outDir, ReferenceFile);
        var key = ReferenceCache.Key(policy, data.Count, data.SelectMany(p => new[] { p.Prompt, p.Chosen, p.Rejected }));
        if (ReferenceCache.TryLoad(path, key, data.Count, ["chosen", "rejected"], Log) is { } cached) return (cached[0], cached[1]);

        float[] chosen, rejected;
        var (reference, release) = policy.FrozenReference();   // with LoRA the base (adapters off), else a frozen copy
        using (release) (chosen, rejected) = SummedLogProbs(reference, data, padId);
        ReferenceCache.Save(path, key, "pairs", [("chosen", chosen), ("rejected", rejected)]);
        Log?.Invoke($"reference log-probs: computed for {data.Count} pairs ({path})");
        return (chosen, rejected);
    }

    /// <summary>Summed log-probs (no gradients) of every pair's chosen and rejected completion under <paramref name="model"/>.</summary>
    internal static (float[] Chosen, float[] Rejected) SummedLogProbs(CausalLM model, IReadOnlyList<Pair> pairs, int padId)
    {
        var prompts = pairs.Select(p => (IReadOnlyList<int>)p.Prompt).ToList();
        return (Scoring.SummedScores(model, prompts, pairs.Select(p => (IReadOnlyList<int>)p.Chosen).ToList(), padId),
                Scoring.SummedScores(model, prompts, pairs.Select(p => (IReadOnlyList<int>)p.Rejected).ToList(), padId));
    }



    /// <summary>The pair's <paramref name="field"/> column as a number in [0, 1]; an error naming the pair and the key otherwise.</summary>
    static double PairWeight(PreferenceExample e, int index, string field)
    {
        if (!e.Fields.TryGetValue(field, out var text))
            throw new ArgumentException($"pair {index + 1}: the loss needs a \"{field}\" number in [0, 1] on every row; this row has none");
        if (!double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) || !(v >= 0 && v <= 1))
            throw new ArgumentException($"pair {index + 1}: \"{field}\" is {text}; expected a number in [0, 1]");
        return v;
    }

    List<Pair> Encode(IReadOnlyList<PreferenceExample> pairs)
    {
        var eos = CompletionTokens.EosId(tokenizer, policy.Config);
        var weightField = PreferenceLosses.Registry.Get(_o.Loss).PairWeightField;
        return pairs.Select((e, i) =>
        {
            var p = CompletionTokens.PromptIds(tokenizer, e.Prompt, "a pair's prompt");
            var c = CompletionTokens.Ids(tokenizer, eos, e.Chosen);
            var r = CompletionTokens.Ids(tokenizer, eos, e.Rejected);
            return new Pair(p, c, r, weightField is null ? 1 : PairWeight(e, i, weightField));
        }).ToList();
    }
}
