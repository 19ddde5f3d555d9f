using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;
using Sharpen.Training.Preference;

namespace Sharpen.Training.Rl;

/// <summary>The A-LoL variants of Baheti et al. 2023 (arXiv:2305.14718); recipe names in snake_case.</summary>
public enum AlolVariant
{
    /// <summary>A-LoL: sequence-level importance weight clamp(π(y)/π_ref(y), 1 − ε, 1 + ε) (<see cref="OfflinePolicyLosses.Alol"/>).</summary>
    Main,
    /// <summary>A-LoL ref-free: weight 1 (<see cref="OfflinePolicyLosses.AlolRefFree"/>).</summary>
    RefFree,
    /// <summary>A-LoL seq: per-token clipped weights (<see cref="OfflinePolicyLosses.AlolSeq"/>).</summary>
    Seq,
    /// <summary>A-LoL KL: weight 1 plus β·(log π(y) − log π_ref(y)) (<see cref="OfflinePolicyLosses.AlolKl"/>).</summary>
    Kl,
}

/// <summary>How A-LoL draws the kept rows (A &gt; 0) of each batch.</summary>
public enum AlolSampling
{
    /// <summary>Seeded shuffles of the kept rows, each row once per epoch.</summary>
    Uniform,
    /// <summary>Priority sampling as in the authors' code: rows drawn with replacement with probability ∝ A.</summary>
    Advantage,
}

/// <summary>
/// Offline policy-gradient settings on scored completions (the <c>offline_pg</c> section of a recipe): CoPG or A-LoL.
/// Only the coefficients of the chosen loss are read.
/// </summary>
public sealed record OfflinePolicyOptions : StepSchedule
{
    /// <summary>The shared schedule's defaults, with a lower peak learning rate.</summary>
    public OfflinePolicyOptions() { LearningRate = 2e-5; }

    /// <summary>Names accepted by <see cref="Loss"/>.</summary>
    public static readonly IReadOnlyList<string> Losses = ["copg", "alol", "direct_advantage_po"];

    /// <summary><c>copg</c> (Contrastive Policy Gradient, pairs of completions of one prompt), <c>alol</c> (A-LoL, one completion
    /// = one action) or <c>direct_advantage_po</c> (step-level Direct Advantage Policy Optimization on step-labelled solutions,
    /// <see cref="DirectAdvantagePoTrainer"/>).</summary>
    public string Loss { get; init; } = "copg";
    /// <summary>β, the strength of the KL regularisation towards the reference: CoPG's β, and A-LoL KL's penalty weight.</summary>
    public double Beta { get; init; } = 0.1;
    /// <summary>CoPG's loss scale: <c>squared</c> (default) minimises (ΔR − βh)², whose gradient is 2β times the paper's CoPG
    /// direction; <c>paper</c> divides it by 2β so the gradient is the paper's and its learning rates carry over.</summary>
    public string CopgScale { get; init; } = "squared";
    /// <summary>A-LoL's importance-weight clip ε: w = clamp(π/π_ref, 1 − ε, 1 + ε), in (0, 1), per sequence (main) or per
    /// token (seq); the paper uses 0.9. Not read by ref_free and kl.</summary>
    public double Clip { get; init; } = 0.9;
    /// <summary>A-LoL variant (arXiv:2305.14718): <c>main</c> (default), <c>ref_free</c>, <c>seq</c> or <c>kl</c>.</summary>
    public AlolVariant AlolVariant { get; init; } = AlolVariant.Main;
    /// <summary>A-LoL batch sampling: <c>advantage</c> (default; with replacement, probability ∝ A, as the authors' code
    /// does) or <c>uniform</c> (shuffled epochs over the kept rows).</summary>
    public AlolSampling AlolSampling { get; init; } = AlolSampling.Advantage;
    /// <summary>A-LoL: folds of the value cross-fit; the rows' prompts are split into this many folds and each fold's V(x)
    /// comes from a head fitted on the other folds (fewer folds when there are fewer distinct prompts: one prompt each). 1 =
    /// fit and score the same rows (in-sample; the head can interpolate the rewards it is compared with).</summary>
    public int ValueFolds { get; init; } = 5;
    /// <summary>A-LoL: full-batch Adam steps fitting each fold's value head V_ref(x) to the rewards by MSE.</summary>
    public int ValueFitSteps { get; init; } = 200;
    /// <summary>A-LoL: learning rate of the value-head fit.</summary>
    public double ValueLearningRate { get; init; } = 1e-2;

    /// <summary>direct_advantage_po: a trained step critic (a PRM folder, <c>prm.json</c>) to score the steps with; null = fit
    /// one first, from the starting policy's weights, on the data's Monte-Carlo step labels, into <c>OUTPUT/critic</c>.</summary>
    public string? Critic { get; init; }
    /// <summary>direct_advantage_po: optimizer steps of the critic fit (when <see cref="Critic"/> is not given).</summary>
    public int CriticSteps { get; init; } = 200;
    /// <summary>direct_advantage_po: peak learning rate of the critic fit.</summary>
    public double CriticLearningRate { get; init; } = 1e-3;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field (recipe key in snake_case).</summary>
    public OfflinePolicyOptions Validate()
    {
        void Positive(double v, string key) => OptionChecks.Positive("offline_pg", v, key);
        void NonNegative(double v, string key) => OptionChecks.NonNegative("offline_pg", v, key);
        if (Loss is null || !Losses.Contains(Loss))
            throw new ArgumentException($"offline_pg.loss: unknown loss '{Loss}'. Known: {string.Join(", ", Losses)}.");
        Positive(Beta, "beta");
        if (CopgScale is not ("squared" or "paper")) throw new ArgumentException($"offline_pg.copg_scale: unknown '{CopgScale}'. Known: squared, paper.");
        if (!(Clip > 0 && Clip < 1)) throw new ArgumentException($"offline_pg.clip must be in (0, 1), got {Clip}");
        if (!Enum.IsDefined(AlolVariant)) throw new ArgumentException($"offline_pg.alol_variant: unknown variant {AlolVariant}");
        if (!Enum.IsDefined(AlolSampling)) throw new ArgumentException($"offline_pg.alol_sampling: unknown sampling {AlolSampling}");
        Positive(ValueFolds, "value_folds");
        Positive(CriticSteps, "critic_steps"); Positive(CriticLearningRate, "critic_learning_rate");
        if (Critic is not null && string.IsNullOrWhiteSpace(Critic)) throw new ArgumentException("offline_pg.critic is empty; give a PRM folder or leave the key out to fit the critic first");
        NonNegative(ValueFitSteps, "value_fit_steps"); Positive(ValueLearningRate, "value_learning_rate");
        ValidateSchedule("offline_pg");
        return this;
    }
}

/// <summary>What an offline policy-gradient run produced.</summary>
/// <param name="Steps">Optimizer steps taken.</param>
/// <param name="FinalLoss">Loss of the last step (before its update).</param>
/// <param name="Items">What was trained on: pairs (CoPG) or rows with a positive advantage (A-LoL).</param>
/// <param name="ValueMse">A-LoL: mean squared error of the cross-fitted (out-of-fold) values against the training rewards (NaN for CoPG).</param>
/// <param name="FinalCheckpoint">The final model folder.</param>
public sealed record OfflinePolicyResult(int Steps, double FinalLoss, int Items, double ValueMse, string FinalCheckpoint);

/// <summary>
/// Offline policy gradient on scored completions, top to bottom: tokenize once; score every completion once with a frozen
/// copy of the starting policy (the reference; cached in <c>reference_logprobs.json</c> keyed by the reference weights and
/// the tokenized rows); then
/// <list type="bullet">
/// <item><b>CoPG</b>: the items are <b>all</b> unordered pairs of distinct rows with the same prompt (each pair once, in
/// row order); per step, BatchSize pairs, one stacked policy pass, <see cref="OfflinePolicyLosses.Copg"/>.</item>
/// <item><b>A-LoL</b>: V_ref(x) is a <see cref="ScalarHead"/> on the frozen reference's final hidden state at the last
/// prompt token, fitted by full-batch MSE to rewards <b>out of sample</b>: the prompts are split into
/// <see cref="OfflinePolicyOptions.ValueFolds"/> folds and each fold's V comes from a head fitted on the other folds' rows
/// (<see cref="ValueCrossFit"/>). A = R − V; rows with A ≤ 0 are dropped once, before training; per step, BatchSize kept
/// rows, drawn with probability ∝ A (with replacement) or uniformly, and the loss of the chosen
/// <see cref="AlolVariant"/> (<see cref="OfflinePolicyLosses.Alol"/>, <see cref="OfflinePolicyLosses.AlolRefFree"/>,
/// <see cref="OfflinePolicyLosses.AlolSeq"/>, <see cref="OfflinePolicyLosses.AlolKl"/>).</item>
/// </list>
/// Departures from the paper: A-LoL fits V_πref on the reference's own greedy samples of separate validation prompts; here it
/// is fitted on the given rows of the other folds' prompts (the same target when the rows were sampled from the reference),
/// with a linear head (the authors use an attention head with a sigmoid output scaled to the reward range).
/// Then clip, AdamW with warm-up + cosine learning rate, log, checkpoint. Behaviour log-probs in the rows are not used.
/// Checkpoints hold weights, optimizer moments, step and data position; a resumed run is handed the starting model,
/// rebuilds the reference quantities from it, then loads the checkpoint, so it ends where an uninterrupted run would.
/// </summary>
public sealed class OfflinePolicyTrainer(CausalLM policy, ITokenizer tokenizer, OfflinePolicyOptions options)
{
    /// <summary>Receives one human-readable line per log step and about the reference and value fit.</summary>
    public Action<string>? Log { get; init; }

    readonly OfflinePolicyOptions _o = options.Validate();

    sealed record Row(int[] Prompt, int[] Completion, double Reward);

    /// <summary>Trains; writes metrics.jsonl, summary.json, reference_logprobs.json, checkpoints/ and final/ into <paramref name="outDir"/>.</summary>
    public OfflinePolicyResult Run(IReadOnlyList<ScoredCompletion> data, string outDir, bool resume = false, CancellationToken cancel = default)
    {
        if (data.Count == 0) throw new ArgumentException("no scored completions");
        long started = Stopwatch.GetTimestamp();
        Directory.CreateDirectory(outDir);
        int padId = tokenizer.PadTokenId ?? 0;
        int eos = CompletionTokens.EosId(tokenizer, policy.Config);
        var rows = data.Select((d, i) =>
        {
            var p = tokenizer.Encode(d.Prompt).ToArray();
            if (p.Length == 0) throw new ArgumentException($"{d.Source ?? $"scored completion {i + 1}"}: the prompt encodes to no tokens");
            return new Row(p, CompletionTokens.Ids(tokenizer, eos, d.Completion), d.Reward);
        }).ToList();

        // Reference quantities, from the starting weights (before any checkpoint is loaded). One reference, taken only if the
        // log-prob cache misses or A-LoL needs its value features, serves both and is released before training.
        float[] refLogp;
        float[][] refTokens;
        Objective objective;
        using (var reference = new ReferenceLease(policy))
        {
            (refLogp, refTokens) = ReferenceLogProbs(rows, outDir, padId, reference);
            objective = _o.Loss == "copg" ? CopgPairs(data) : AlolKeptRows(data, rows, refTokens, padId, reference);
        }
        var items = objective.Items;

        policy.train();
        using var opt = optim.AdamW(policy.TrainableParameters(), lr: _o.LearningRate, weight_decay: 0.0);
        var work = new StepWork
        {
            Items = items.Count,
            SampleWeights = objective.SampleWeights,
            Backward = batch => Backward(objective, rows, batch.Select(i => items[i]).ToList(), refLogp, padId),
            Summary = r =>
            {
                var summary = new JsonObject
                {
                    ["steps"] = r.Steps, ["loss_name"] = _o.Loss, ["final_loss"] = StepLoop.Round(r.FinalLoss), ["rows"] = rows.Count,
                    [objective.ItemsName] = items.Count, ["seconds"] = Math.Round(r.Seconds, 2), ["final_checkpoint"] = r.FinalCheckpoint,
                };
                objective.Summarize(summary, rows.Count);
                return summary;
            },
        };
        var settings = StepLoopSettings.From("offline_pg", StepSchedule.Sized(_o, items.Count)) with { LossLabel = _o.Loss, MetricsAfterGradNorm = true };
        var result = new StepLoop(policy, tokenizer, opt, policy.TrainableParameters(), settings) { Log = Log, Started = started }.Run(work, outDir, resume, cancel);
        return new OfflinePolicyResult(result.Steps, result.FinalLoss, items.Count, objective.ValueMse, result.FinalCheckpoint);
    }

    /// <summary>CoPG's items: <b>all</b> unordered pairs of distinct rows with the same prompt, each pair once, in row order.</summary>
    Copg CopgPairs(IReadOnlyList<ScoredCompletion> data)
    {
        var items = new List<int[]>();
        foreach (var group in Enumerable.Range(0, data.Count).GroupBy(i => data[i].Prompt))
        {
            var idx = group.ToList();
            for (int a = 0; a < idx.Count; a++)
                for (int b = a + 1; b < idx.Count; b++) items.Add([idx[a], idx[b]]);
        }
        if (items.Count == 0) throw new ArgumentException("CoPG needs at least two scored completions of the same prompt; every prompt has one");
        Log?.Invoke($"copg: {items.Count} pairs from {data.Count} rows");
        return new Copg(items, _o.Beta, _o.CopgScale == "paper");
    }

    /// <summary>A-LoL's items: the rows with a positive advantage A = R − V_ref(x), V cross-fitted over the prompts' folds.</summary>
    Alol AlolKeptRows(IReadOnlyList<ScoredCompletion> data, List<Row> rows, float[][] refTokens, int padId, ReferenceLease reference)
    {
        var folds = ValueCrossFit.PromptFolds(data.Select(d => d.Prompt).ToList(), _o.ValueFolds, _o.Seed);
        int foldsUsed = folds.Max() + 1;
        if (foldsUsed < _o.ValueFolds)
            Log?.Invoke($"alol: {foldsUsed} distinct prompts < value_folds {_o.ValueFolds}; cross-fitting with {foldsUsed} folds of one prompt each");
        var (values, valueMse) = FitValues(rows, folds, padId, reference);
        // A as the loss computes it: float32 R − float32 V.
        double Advantage(int i) => (float)rows[i].Reward - values[i];
        var items = Enumerable.Range(0, rows.Count).Where(i => Advantage(i) > 0).Select(i => new[] { i }).ToList();
        Log?.Invoke($"alol: {(foldsUsed == 1 ? "in-sample" : $"{foldsUsed}-fold cross-fitted")} value MSE {valueMse:F4}; " +
            $"{items.Count} of {rows.Count} rows have a positive advantage; variant {Snake(_o.AlolVariant)}, {Snake(_o.AlolSampling)} sampling");
        if (items.Count == 0) throw new ArgumentException("A-LoL: no row has a positive advantage R − V_ref(x); there is nothing to learn from");
        return new Alol(items, _o, values, refTokens, valueMse, foldsUsed)
        {
            SampleWeights = _o.AlolSampling == AlolSampling.Advantage ? items.Select(it => Advantage(it[0])).ToArray() : null,   // priority sampling ∝ A
        };
    }

    /// <summary>Accumulates into .grad the gradient of one step's loss on <paramref name="batch"/> (pairs or kept rows).</summary>
    StepOutcome Backward(Objective objective, List<Row> rows, List<int[]> batch, float[] refLogp, int padId)
    {
        // One stacked pass over every completion of the step (CoPG: rows 0..b-1 are the pairs' y1, b..2b-1 their y2).
        var ids = objective.Rows(batch);
        var sb = SequenceBatch.Build(ids.Select(i => (IReadOnlyList<int>)rows[i].Prompt).ToList(),
            ids.Select(i => (IReadOnlyList<int>)rows[i].Completion).ToList(), padId);
        var tokenLogp = Scoring.CompletionLogProbs(policy, sb);                                           // (n, A)  log π(y_t|·), 0 on padding
        var summed = tokenLogp.sum(1);                                                                     // (n)  log π(y|x)
        var reference = tensor(ids.Select(i => refLogp[i]).ToArray());                                   // (n)  log π_ref(y|x)
        var reward = tensor(ids.Select(i => (float)rows[i].Reward).ToArray());                            // (n)
        var (loss, metrics) = objective.Loss(new Pass(ids, sb, tokenLogp, summed, reference, reward));
        double lossValue = loss.item<float>();
        loss.backward();
        return new StepOutcome(lossValue, metrics);
    }

    /// <summary>One stacked policy pass over a step's completions, with their reference log-probs and rewards.</summary>
    sealed record Pass(List<int> Ids, SequenceBatch Batch, Tensor TokenLogp, Tensor Summed, Tensor Reference, Tensor Reward);

    /// <summary>What CoPG and A-LoL do differently: the items a step draws, the completions it stacks, the loss, the summary fields.</summary>
    abstract class Objective(List<int[]> items)
    {
        /// <summary>CoPG: [i, j] pairs of rows; A-LoL: [i] kept rows.</summary>
        public List<int[]> Items { get; } = items;
        /// <summary>Per-item sampling weights (A-LoL's priority sampling), or null for shuffled epochs.</summary>
        public double[]? SampleWeights { get; init; }
        /// <summary>The summary key of the item count.</summary>
        public abstract string ItemsName { get; }
        /// <summary>A-LoL's value MSE (NaN for CoPG).</summary>
        public virtual double ValueMse => double.NaN;
        /// <summary>The rows a batch of items stacks into one pass.</summary>
        public abstract List<int> Rows(List<int[]> batch);
        /// <summary>The loss of a pass and its metrics, in row order.</summary>
        public abstract (Tensor Loss, List<KeyValuePair<string, double>> Metrics) Loss(Pass p);
        /// <summary>Adds the objective's fields at the end of summary.json.</summary>
        public virtual void Summarize(JsonObject summary, int rows) { }
    }

    sealed class Copg(List<int[]> items, double beta, bool paperScale) : Objective(items)
    {
        public override string ItemsName => "pairs";
        public override List<int> Rows(List<int[]> batch) => batch.Select(p => p[0]).Concat(batch.Select(p => p[1])).ToList();
        public override (Tensor Loss, List<KeyValuePair<string, double>> Metrics) Loss(Pass p)
        {
            int b = p.Ids.Count / 2;
            var (l, m) = OfflinePolicyLosses.Copg(p.Summed.narrow(0, 0, b), p.Summed.narrow(0, b, b), p.Reference.narrow(0, 0, b),
                p.Reference.narrow(0, b, b), p.Reward.narrow(0, 0, b), p.Reward.narrow(0, b, b), beta, paperScale);
            return (l, [new("reward_margin", m.RewardMargin), new("implicit_margin", m.ImplicitMargin), new("abs_residual", m.AbsResidual)]);
        }
    }

    sealed class Alol(List<int[]> items, OfflinePolicyOptions o, float[] values, float[][] refTokens, double valueMse, int folds) : Objective(items)
    {
        public override string ItemsName => "kept_rows";
        public override double ValueMse => valueMse;
        public override List<int> Rows(List<int[]> batch) => batch.Select(r => r[0]).ToList();
        public override (Tensor Loss, List<KeyValuePair<string, double>> Metrics) Loss(Pass p)
        {
            var value = tensor(p.Ids.Select(i => values[i]).ToArray());                                   // (n)  V_ref(x)
            var (l, m) = o.AlolVariant switch
            {
                AlolVariant.Main => OfflinePolicyLosses.Alol(p.Summed, p.Reference, p.Reward, value, o.Clip),
                AlolVariant.RefFree => OfflinePolicyLosses.AlolRefFree(p.Summed, p.Reward, value),
                AlolVariant.Seq => OfflinePolicyLosses.AlolSeq(p.TokenLogp, RefTokenTensor(refTokens, p.Ids, p.TokenLogp.shape[1]),
                    p.Batch.CompletionMask, p.Reward, value, o.Clip),
                AlolVariant.Kl => OfflinePolicyLosses.AlolKl(p.Summed, p.Reference, p.Reward, value, o.Beta),
                _ => throw new UnreachableException(),
            };
            return (l, [new("advantage", m.AdvantageMean), new("weight", m.WeightMean), new("clip_fraction", m.ClipFraction), new("log_ratio", m.LogRatioMean)]);
        }

        public override void Summarize(JsonObject summary, int rows)
        {
            summary["kept_fraction"] = StepLoop.Round((double)Items.Count / rows); summary["value_mse"] = StepLoop.Round(valueMse);
            summary["value_folds"] = folds;
            summary["alol_variant"] = Snake(o.AlolVariant);
            summary["alol_sampling"] = Snake(o.AlolSampling);
        }
    }

    /// <summary>
    /// Reference log-probs of every row, summed (n) and per completion token (for A-LoL seq), from the cache when its key
    /// matches, else computed with <paramref name="reference"/>. The cache holds <c>completion</c> (n sums) and
    /// <c>completion_tokens</c> (all rows' token log-probs, concatenated in row order).
    /// </summary>
    (float[] Summed, float[][] Tokens) ReferenceLogProbs(List<Row> rows, string outDir, int padId, ReferenceLease reference)
    {
        var path = Path.Combine(outDir, PreferenceTrainer.ReferenceFile);
        var key = ReferenceCache.Key(policy, rows.Count, rows.SelectMany(r => new[] { r.Prompt, r.Completion }));
        int totalTokens = rows.Sum(r => r.Completion.Length);
        if (ReferenceCache.TryLoad(path, key, [("completion", rows.Count), ("completion_tokens", totalTokens)], Log) is { } cached)
        {
            var split = new float[rows.Count][];
            for (int i = 0, offset = 0; i < rows.Count; offset += rows[i].Completion.Length, i++)
                split[i] = cached[1].AsSpan(offset, rows[i].Completion.Length).ToArray();
            return (cached[0], split);
        }
        var tokens = Scoring.Score(reference.Model, rows.Select(r => (IReadOnlyList<int>)r.Prompt).ToList(),
            rows.Select(r => (IReadOnlyList<int>)r.Completion).ToList(), padId);
        var summed = tokens.Select(xs => (float)xs.Sum(x => (double)x)).ToArray();
        ReferenceCache.Save(path, key, "rows", [("completion", summed), ("completion_tokens", tokens.SelectMany(xs => xs).ToArray())]);
        Log?.Invoke($"reference log-probs: computed for {rows.Count} rows ({path})");
        return (summed, tokens);
    }

    /// <summary>The reference's per-token log-probs of rows <paramref name="ids"/>, right-padded with 0 to width <paramref name="width"/>: (n, A).</summary>
    static Tensor RefTokenTensor(float[][] refTokens, List<int> ids, long width)
    {
        var flat = new float[ids.Count * width];
        for (int r = 0; r < ids.Count; r++) refTokens[ids[r]].CopyTo(flat, r * width);
        return tensor(flat).view(ids.Count, width);                                                        // (n, A)
    }

    /// <summary>
    /// A-LoL's V_ref(x): the frozen reference's final hidden state at each row's last prompt token (a constant feature, since
    /// attention is causal), then per fold a zero-initialised <see cref="ScalarHead"/> fitted to the other folds' rewards by
    /// full-batch MSE with Adam (<see cref="ValueCrossFit.Fit"/>). Returns V per row and its MSE against the rewards
    /// (out of fold, unless there is one fold). Deterministic: no sampling, fixed order.
    /// </summary>
    (float[] Values, double Mse) FitValues(List<Row> rows, int[] folds, int padId, ReferenceLease reference)
    {
        using var scope = NewDisposeScope();
        Tensor features;
        using (no_grad())
        {
            var chunks = new List<Tensor>();
            for (int start = 0; start < rows.Count; start += 32)
            {
                var chunk = rows.Skip(start).Take(32).ToList();
                var sb = SequenceBatch.Build(chunk.Select(r => (IReadOnlyList<int>)r.Prompt).ToList(),
                    chunk.Select(r => (IReadOnlyList<int>)r.Completion).ToList(), padId);
                var hidden = reference.Model.Forward(sb.InputIds, sb.AttentionMask, returnHidden: true).Hidden!;   // (b, T, C)
                chunks.Add(hidden.select(1, sb.PromptLength - 1).detach().clone());                           // last prompt token (prompts are left-padded)
            }
            features = cat(chunks, 0);                                                                         // (N, C)
        }
        var targets = rows.Select(r => (float)r.Reward).ToArray();
        var values = ValueCrossFit.Fit(features, targets, folds, _o.ValueFitSteps, _o.ValueLearningRate);
        double mse = values.Zip(targets, (v, r) => ((double)v - r) * ((double)v - r)).Average();
        return (values, mse);
    }

    /// <summary>The frozen reference, taken on first use (<see cref="CausalLM.FrozenReference"/>: a copy, or the LoRA policy
    /// with its adapters off) so that the reference log-probs and A-LoL's value features share it; released on dispose.</summary>
    sealed class ReferenceLease(CausalLM policy) : IDisposable
    {
        (CausalLM Model, IDisposable Release)? _taken;
        public CausalLM Model => (_taken ??= policy.FrozenReference()).Model;
        public void Dispose() => _taken?.Release.Dispose();
    }

    /// <summary>An option's recipe spelling (<c>RefFree</c> → <c>ref_free</c>).</summary>
    static string Snake(Enum value) => JsonNamingPolicy.SnakeCaseLower.ConvertName(value.ToString());
}
