using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;
using Sharpen.Generation;

namespace Sharpen.Training.RewardModels;

/// <summary>Process-reward-model settings (recipe keys under <c>prm</c>).</summary>
public sealed record PrmOptions : StepSchedule
{
    /// <summary>Solutions per forward pass (0 = the whole batch); the loss is divided by the steps of the whole batch, so this does not change the gradient.</summary>
    public int MicroBatchSize { get; init; }
    /// <summary>A step is predicted wrong when its score is below this (step accuracy, first-wrong-step F1).</summary>
    public double Threshold { get; init; } = 0.5;
    /// <summary>The step rule saved with the model (<see cref="StepSplitter.Parse"/>: newline, countdown, delimiter:TEXT, regex:PATTERN); the outcome adapter splits completions with it.</summary>
    public string StepSplitter { get; init; } = "newline";
    /// <summary>Evaluate on the held-out rows every N steps (0 = only at the end).</summary>
    public int EvalEvery { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field (recipe key in snake_case).</summary>
    public PrmOptions Validate()
    {
        ValidateSchedule("prm");
        OptionChecks.NonNegative("prm", MicroBatchSize, "micro_batch_size"); OptionChecks.NonNegative("prm", EvalEvery, "eval_every");
        if (!(Threshold > 0 && Threshold < 1)) throw new ArgumentException($"prm.threshold must be in (0, 1), got {Threshold}");
        try { Data.StepSplitter.Parse(StepSplitter); }
        catch (ArgumentException e) { throw new ArgumentException($"prm.step_splitter: {e.Message}"); }
        return this;
    }
}

/// <summary>What a PRM run produced. Held-out numbers are NaN without held-out rows.</summary>
public sealed record PrmResult(int Steps, double FinalLoss, double FinalStepAccuracy, double HeldOutStepAccuracy, FirstErrorResult? HeldOutFirstError, string FinalCheckpoint);

/// <summary>
/// A process reward model (Lightman et al. 2023; Wang et al. 2024, Math-Shepherd): a <see cref="CausalLM"/> backbone
/// plus a <see cref="ScalarHead"/> read at the last token of every step (<see cref="StepEncoding"/>), trained with
/// per-step binary cross-entropy against soft or hard labels (<see cref="ProcessLosses.StepBce"/>), the loss divided by
/// the real steps of the whole batch. AdamW, warm-up + cosine. Writes metrics.jsonl (loss, step accuracy, held-out step
/// accuracy and first-wrong-step F1), summary.json and <c>final/</c> (model, head, tokenizer and <c>prm.json</c>, which
/// marks the folder a PRM and records its step splitter); <see cref="ProcessRewardModel"/> loads it. Checkpoints every
/// <see cref="StepSchedule.CheckpointEvery"/> steps (backbone, head, optimizer, data position) make a stopped run resumable
/// with the weights of an uninterrupted one.
/// </summary>
public sealed class PrmTrainer(CausalLM backbone, ScalarHead head, ITokenizer tokenizer, PrmOptions options)
{
    /// <summary>Receives one human-readable line per log step.</summary>
    public Action<string>? Log { get; init; }

    readonly PrmOptions _o = options.Validate();


    /// <summary>Trains on <paramref name="train"/>, evaluates on <paramref name="heldOut"/> (may be empty); writes into <paramref name="outDir"/>.</summary>
    public PrmResult Run(IReadOnlyList<StepLabelledExample> train, IReadOnlyList<StepLabelledExample> heldOut, string outDir, CancellationToken cancel = default) =>
        Run(train, heldOut, outDir, resume: false, cancel);

    /// <summary>As <see cref="Run(IReadOnlyList{StepLabelledExample}, IReadOnlyList{StepLabelledExample}, string, CancellationToken)"/>; with
    /// <paramref name="resume"/>, continues from the newest checkpoint under <c>outDir/checkpoints</c>.</summary>
    public PrmResult Run(IReadOnlyList<StepLabelledExample> train, IReadOnlyList<StepLabelledExample> heldOut, string outDir, bool resume,
        CancellationToken cancel = default)
    {
        if (train.Count == 0) throw new ArgumentException("the step-labelled training set is empty");
        long started = Stopwatch.GetTimestamp();
        Directory.CreateDirectory(outDir);
        var data = train.Select(e => StepEncoding.Encode(tokenizer, e.Prompt, e.Steps)).ToList();
        int padId = tokenizer.PadTokenId ?? 0;
        int micro = _o.MicroBatchSize == 0 ? _o.BatchSize : _o.MicroBatchSize;

        backbone.train();
        head.train();
        var parameters = backbone.parameters().Concat(head.parameters()).ToList();
        using var opt = optim.AdamW(parameters, lr: _o.LearningRate, weight_decay: 0.0);
        double lastAcc = double.NaN, heldAcc = double.NaN;
        FirstErrorResult? heldFirst = null;
        var work = new StepWork
        {
            Items = data.Count,
            Backward = batch =>
            {
                double totalSteps = batch.Sum(i => data[i].StepEnds.Length), loss = 0;
                int hits = 0;
                for (int start = 0; start < batch.Count; start += micro)
                {
                    using var scope = NewDisposeScope();
                    var idx = batch.Skip(start).Take(micro).ToList();
                    var items = idx.Select(i => data[i]).ToList();
                    var (sb, cols, _, mask) = StepEncoding.Build(items, padId);
                    var labels = StepEncoding.Values(idx.Select(i => train[i].Labels).ToList());
                    var logits = PrmScoring.StepLogits(backbone, head, sb, cols);
                    var l = ProcessLosses.StepBce(logits, labels, mask, totalSteps);
                    loss += l.item<float>();
                    var agree = ((logits.detach() >= Logit(_o.Threshold)) == (labels >= 0.5)).to(ScalarType.Float32) * mask;
                    hits += (int)agree.sum().item<float>();
                    l.backward();
                }
                lastAcc = hits / totalSteps;
                return new StepOutcome(loss, [new("step_accuracy", lastAcc)]);
            },
            Evaluate = heldOut.Count > 0 ? row =>
            {
                (heldAcc, heldFirst) = Evaluate(heldOut, padId, micro);
                AddHeldOut(row, heldAcc, heldFirst);
            } : null,
            WriteFinal = finalDir => ProcessRewardModel.WriteMarker(finalDir, _o.StepSplitter, _o.Threshold),
            Summary = r =>
            {
                var summary = new JsonObject
                {
                    ["steps"] = r.Steps, ["final_loss"] = StepLoop.Round(r.FinalLoss), ["final_step_accuracy"] = StepLoop.Round(lastAcc),
                    ["solutions"] = data.Count, ["labelled_steps"] = data.Sum(d => d.StepEnds.Length), ["held_out_solutions"] = heldOut.Count,
                    ["step_splitter"] = _o.StepSplitter, ["seconds"] = Math.Round(r.Seconds, 2), ["final_checkpoint"] = r.FinalCheckpoint,
                };
                if (heldFirst is not null) AddHeldOut(summary, heldAcc, heldFirst);
                return summary;
            },
        };
        var settings = StepLoopSettings.From("prm", StepSchedule.Sized(_o, data.Count)) with { EvalEvery = _o.EvalEvery };
        var result = new StepLoop(backbone, tokenizer, opt, parameters, settings) { Head = head, Log = Log, Started = started }.Run(work, outDir, resume, cancel);
        return new PrmResult(result.Steps, result.FinalLoss, lastAcc, heldAcc, heldFirst, result.FinalCheckpoint);
    }

    (double StepAccuracy, FirstErrorResult FirstError) Evaluate(IReadOnlyList<StepLabelledExample> rows, int padId, int micro)
    {
        var scores = PrmScoring.ScoreSteps(backbone, head, tokenizer, rows.Select(r => (r.Prompt, r.Steps)).ToList(), micro, padId);
        backbone.train();
        head.train();
        var labels = rows.Select(r => r.Labels).ToList();
        var s = scores.Select(x => (IReadOnlyList<double>)x).ToList();
        return (PrmMetrics.StepAccuracy(labels, s, _o.Threshold), PrmMetrics.FirstError(labels, s, _o.Threshold));
    }

    static void AddHeldOut(JsonObject o, double acc, FirstErrorResult f)
    {
        o["held_out_step_accuracy"] = StepLoop.Round(acc);
        o["held_out_first_error_f1"] = StepLoop.Round(f.F1);
        o["held_out_erroneous_accuracy"] = StepLoop.Round(f.ErroneousAccuracy);
        o["held_out_correct_accuracy"] = StepLoop.Round(f.CorrectAccuracy);
    }

    static double Logit(double p) => Math.Log(p / (1 - p));
}
