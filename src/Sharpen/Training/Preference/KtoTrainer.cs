using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Sharpen.Training.Preference;

/// <summary>
/// KTO settings (the <c>kto</c> section of a recipe): β, the weights of desirable and undesirable examples, and how the
/// reference point z₀ is estimated (<see cref="UnpairedLosses.ReferencePoints"/>).
/// </summary>
public sealed record KtoOptions : StepSchedule
{
    /// <summary>β, the scale of the implicit reward inside the sigmoid.</summary>
    public double Beta { get; init; } = 0.1;
    /// <summary>λ_D, the weight of desirable examples.</summary>
    public double DesirableWeight { get; init; } = 1.0;
    /// <summary>λ_U, the weight of undesirable examples.</summary>
    public double UndesirableWeight { get; init; } = 1.0;
    /// <summary>
    /// How z₀ is estimated: <c>mismatched</c> (default; the paper's practical estimate and TRL's: each prompt of the batch with
    /// the completion of the example before it, cyclically), <c>policy_samples</c> (the paper's definition, KL(π_θ ‖ π_ref)
    /// estimated with one completion sampled from the current policy per prompt of the batch), or <c>zero</c> (z₀ = 0, an ablation).
    /// </summary>
    public string ReferencePoint { get; init; } = "mismatched";
    /// <summary>Most tokens of a <c>policy_samples</c> completion.</summary>
    public int MaxNewTokens { get; init; } = 64;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field (recipe key in snake_case).</summary>
    public KtoOptions Validate()
    {
        OptionChecks.Positive("kto", Beta, "beta");
        OptionChecks.NonNegative("kto", DesirableWeight, "desirable_weight");
        OptionChecks.NonNegative("kto", UndesirableWeight, "undesirable_weight");
        if (DesirableWeight + UndesirableWeight == 0) throw new ArgumentException("kto.desirable_weight and kto.undesirable_weight are both 0; nothing would be learned");
        if (!UnpairedLosses.ReferencePoints.Contains(ReferencePoint))
            throw new ArgumentException($"kto.reference_point: unknown '{ReferencePoint}'. Known: {string.Join(", ", UnpairedLosses.ReferencePoints)}.");
        OptionChecks.Positive("kto", MaxNewTokens, "max_new_tokens");
        ValidateSchedule("kto");
        if (ReferencePoint == "mismatched" && BatchSize < 2)
            throw new ArgumentException("kto.batch_size must be at least 2 with reference_point: mismatched (the KL estimate pairs each prompt with another example's completion)");
        return this;
    }
}

/// <summary>What a KTO run produced.</summary>
public sealed record KtoResult(int Steps, double FinalLoss, string FinalCheckpoint);

/// <summary>
/// KTO (Ethayarajh et al. 2024, arXiv:2402.01306) over unpaired examples, on the <see cref="StepLoop"/>: per step take
/// BatchSize examples in a seeded order; score each completion with the policy (with gradients) and with a frozen copy of
/// the starting policy (the reference); estimate the reference point z₀ from completions that are not the examples' own
/// (<see cref="KtoOptions.ReferencePoint"/>; no gradient); apply <see cref="UnpairedLosses.Kto"/>. The reference is
/// copied before a resumed run loads its checkpoint, so it stays the starting model.
/// </summary>
public sealed class KtoTrainer(CausalLM policy, ITokenizer tokenizer, KtoOptions options)
{
    /// <summary>Receives one human-readable line per log step.</summary>
    public Action<string>? Log { get; init; }

    KtoOptions _o = options.Validate();

    sealed record Example(int[] Prompt, int[] Completion, bool Desirable);

    /// <summary>Trains; writes metrics.jsonl, summary.json, checkpoints/ and final/ into <paramref name="outDir"/>.</summary>
    public KtoResult Run(IReadOnlyList<UnpairedExample> examples, string outDir, bool resume = false, CancellationToken cancel = default)
    {
        if (examples.Count == 0) throw new ArgumentException("the KTO set is empty");
        long started = Stopwatch.GetTimestamp();
        Directory.CreateDirectory(outDir);
        var eos = CompletionTokens.EosId(tokenizer, policy.Config);
        var data = examples.Select(e =>
        {
            var (p, c) = CompletionTokens.Row(tokenizer, eos, e.Prompt, e.Completion, "an example's prompt");
            return new Example(p, c, e.Desirable);
        }).ToList();
        _o = StepSchedule.Sized(_o, data.Count);   // epochs / warmup_ratio → steps, now that the item count is known
        int nd = data.Count(d => d.Desirable), nu = data.Count - nd;
        if (nd > 0 && nu > 0)
        {
            double ratio = _o.DesirableWeight * nd / (_o.UndesirableWeight * nu);
            if (ratio < 1 || ratio > 4.0 / 3) Log?.Invoke($"kto: λ_D·n_D / (λ_U·n_U) = {ratio:0.###} ({nd} desirable, {nu} undesirable); the paper recommends [1, 4/3]");
        }
        int padId = tokenizer.PadTokenId ?? 0;

        using var reference = policy.Copy(trainable: false);   // the starting policy; copied before a resume loads its checkpoint
        policy.train();
        using var opt = optim.AdamW(policy.TrainableParameters(), lr: _o.LearningRate, weight_decay: 0.0);
        var work = new StepWork
        {
            Items = data.Count,
            Backward = batch =>
            {
                var rows = batch.Select(i => data[i]).ToList();
                var prompts = rows.Select(r => (IReadOnlyList<int>)r.Prompt).ToList();
                var completions = rows.Select(r => (IReadOnlyList<int>)r.Completion).ToList();
                var z0 = ReferencePoint(rows, prompts, batch, reference, padId);
                var refLp = Scoring.SummedScores(reference, prompts, completions, padId);
                var sb = SequenceBatch.Build(prompts, completions, padId);
                var summed = Scoring.CompletionLogProbs(policy, sb).sum(1);                         // (b)
                var input = new KtoInput(summed, tensor(refLp), tensor(rows.Select(r => r.Desirable).ToArray()), tensor(z0));
                var (loss, m) = UnpairedLosses.Kto(input, _o.Beta, _o.DesirableWeight, _o.UndesirableWeight);
                double lossValue = loss.item<float>();
                loss.backward();
                var metrics = new List<KeyValuePair<string, double>> { new("kl", m.ReferencePoint) };
                if (m.Desirable > 0) metrics.Add(new("desirable_reward", m.DesirableReward));
                if (m.Undesirable > 0) metrics.Add(new("undesirable_reward", m.UndesirableReward));
                return new StepOutcome(lossValue, metrics);
            },
            Summary = r => new JsonObject
            {
                ["steps"] = r.Steps, ["loss_name"] = "kto", ["final_loss"] = StepLoop.Round(r.FinalLoss), ["examples"] = data.Count,
                ["desirable"] = nd, ["undesirable"] = nu, ["reference_point"] = _o.ReferencePoint,
                ["seconds"] = Math.Round(r.Seconds, 2), ["final_checkpoint"] = r.FinalCheckpoint,
            },
        };
        var loop = new StepLoop(policy, tokenizer, opt, policy.TrainableParameters(), StepLoopSettings.From("kto", _o) with { LossLabel = "kto" })
            { Log = Log, Started = started };
        var result = loop.Run(work, outDir, resume, cancel);
        return new KtoResult(result.Steps, result.FinalLoss, result.FinalCheckpoint);
    }

    /// <summary>z₀ for one batch (a plain number; no gradient), as <see cref="KtoOptions.ReferencePoint"/> says.</summary>
    float ReferencePoint(List<Example> rows, List<IReadOnlyList<int>> prompts, IReadOnlyList<int> batch, CausalLM reference, int padId)
    {
        if (_o.ReferencePoint == "zero") return 0f;
        List<IReadOnlyList<int>> others;
        if (_o.ReferencePoint == "mismatched")
            others = rows.Select((_, i) => (IReadOnlyList<int>)rows[(i + rows.Count - 1) % rows.Count].Completion).ToList();   // prompt i with completion i − 1
        else
        {
            // One sample per prompt from the current policy; the seed depends on the batch only, so a resumed run draws the same.
            long seed = _o.Seed;
            foreach (var i in batch) seed = unchecked(seed * 1_000_003 + i);
            var engine = new RolloutEngine(policy, tokenizer);
            var rollouts = engine.Generate(prompts, new SamplingOptions { MaxNewTokens = _o.MaxNewTokens, Seed = seed });
            others = rollouts.OrderBy(r => r.PromptIndex).Select(r => (IReadOnlyList<int>)r.CompletionIds).ToList();   // the engine restores train mode
        }
        var p = Scoring.SummedScores(policy, prompts, others, padId);
        var r = Scoring.SummedScores(reference, prompts, others, padId);
        using var scope = NewDisposeScope();
        return UnpairedLosses.KtoReferencePoint(tensor(p), tensor(r)).item<float>();
    }
}
