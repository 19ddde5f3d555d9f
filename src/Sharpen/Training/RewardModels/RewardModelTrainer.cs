using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;
using Sharpen.Rewards;
using Sharpen.Algorithms;

namespace Sharpen.Training.RewardModels;

/// <summary>Bradley–Terry reward-model settings (recipe keys under <c>reward_model</c>).</summary>
public sealed record RewardModelOptions : StepSchedule
{
    /// <summary>Margin m in −log σ(r_c − r_r − m) (Llama 2's margin variant; 0 = plain Bradley–Terry).</summary>
    public double Margin { get; init; } = 0.0;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field (recipe key in snake_case).</summary>
    public RewardModelOptions Validate()
    {
        ValidateSchedule("reward_model");
        OptionChecks.NonNegative("reward_model", Margin, "margin");
        return this;
    }
}

/// <summary>What a reward-model run produced.</summary>
public sealed record RewardModelResult(int Steps, double FinalLoss, double FinalAccuracy, double FinalMargin, string FinalCheckpoint);

/// <summary>
/// Bradley–Terry reward model (Ouyang et al. 2022): a <see cref="CausalLM"/> backbone plus a <see cref="ScalarHead"/>;
/// r(x, y) is the head's value at the last real token of prompt + completion + EOS. Per step, BatchSize pairs in a
/// seeded order are scored in one stacked pass and trained with −log σ(r_c − r_r − m) = softplus(−(r_c − r_r − m)),
/// AdamW on backbone and head, warm-up + cosine learning rate. The final checkpoint (with
/// <c>scalar_head.safetensors</c> and the tokenizer) goes to <c>outDir/final</c>; <see cref="Rewards.ModelReward"/> reads it.
/// </summary>
public sealed class RewardModelTrainer(CausalLM backbone, ScalarHead head, ITokenizer tokenizer, RewardModelOptions options)
{
    /// <summary>Receives one human-readable line per log step.</summary>
    public Action<string>? Log { get; init; }

    RewardModelOptions _o = options.Validate();

    sealed record Pair(int[] Prompt, int[] Chosen, int[] Rejected);

    /// <summary>Trains; writes metrics.jsonl, summary.json and final/ (model, head, tokenizer) into <paramref name="outDir"/>.</summary>
    public RewardModelResult Run(IReadOnlyList<PreferenceExample> pairs, string outDir, CancellationToken cancel = default) =>
        Run(pairs, outDir, resume: false, cancel);

    /// <summary>
    /// Trains as <see cref="Run(IReadOnlyList{PreferenceExample}, string, CancellationToken)"/>; with <paramref name="resume"/>,
    /// continues from the newest checkpoint under <c>outDir/checkpoints</c> (backbone, head, optimizer, step, data position),
    /// ending with the weights an uninterrupted run would have.
    /// </summary>
    public RewardModelResult Run(IReadOnlyList<PreferenceExample> pairs, string outDir, bool resume, CancellationToken cancel = default)
    {
        if (pairs.Count == 0) throw new ArgumentException("the preference set is empty");
        long started = Stopwatch.GetTimestamp();
        Directory.CreateDirectory(outDir);
        var data = pairs.Select(e =>
        {
            var (p, c) = RewardModelScoring.Encode(tokenizer, backbone.Config, e.Prompt, e.Chosen);
            var (_, r) = RewardModelScoring.Encode(tokenizer, backbone.Config, e.Prompt, e.Rejected);
            return new Pair(p, c, r);
        }).ToList();
        _o = StepSchedule.Sized(_o, data.Count);
        int padId = tokenizer.PadTokenId ?? 0;

        backbone.train();
        head.train();
        var parameters = backbone.parameters().Concat(head.parameters()).ToList();
        using var opt = optim.AdamW(parameters, lr: _o.LearningRate, weight_decay: 0.0);
        double lastAccuracy = double.NaN, lastMargin = double.NaN;
        var work = new StepWork
        {
            Items = data.Count,
            Backward = batch =>
            {
                int b = batch.Count;
                var pairs = batch.Select(i => data[i]).ToList();
                // One stacked pass: rows 0..b-1 are the chosen completions, rows b..2b-1 the rejected ones.
                var sb = SequenceBatch.Build(pairs.Select(p => (IReadOnlyList<int>)p.Prompt).Concat(pairs.Select(p => p.Prompt)).ToList(),
                    pairs.Select(p => (IReadOnlyList<int>)p.Chosen).Concat(pairs.Select(p => p.Rejected)).ToList(), padId);
                var r = RewardModelScoring.Rewards(backbone, head, sb);                           // (2b)
                var rc = r.narrow(0, 0, b);
                var rr = r.narrow(0, b, b);
                var loss = PreferenceLosses.BradleyTerry(rc, rr, _o.Margin);
                double lossValue = loss.item<float>();
                var diff = (rc - rr).detach();
                lastAccuracy = (diff > 0).to(ScalarType.Float32).mean().item<float>();
                lastMargin = diff.mean().item<float>();
                loss.backward();
                return new StepOutcome(lossValue, [new("accuracy", lastAccuracy), new("margin", lastMargin)]);
            },
            Summary = r => new JsonObject
            {
                ["steps"] = r.Steps, ["final_loss"] = StepLoop.Round(r.FinalLoss), ["final_accuracy"] = StepLoop.Round(lastAccuracy),
                ["final_margin"] = StepLoop.Round(lastMargin), ["reward_margin"] = _o.Margin, ["pairs"] = data.Count,
                ["seconds"] = Math.Round(r.Seconds, 2), ["final_checkpoint"] = r.FinalCheckpoint,
            },
        };
        var loop = new StepLoop(backbone, tokenizer, opt, parameters, StepLoopSettings.From("reward_model", _o)) { Head = head, Log = Log, Started = started };
        var result = loop.Run(work, outDir, resume, cancel);
        return new RewardModelResult(result.Steps, result.FinalLoss, lastAccuracy, lastMargin, result.FinalCheckpoint);
    }
}
