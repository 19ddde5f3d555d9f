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
        var sw = Stopwatch.StartNew();
        Directory.CreateDirectory(outDir);
        var data = train.Select(e => StepEncoding.Encode(tokenizer, e.Prompt, e.Steps)).ToList();
        int padId = tokenizer.PadTokenId ?? 0;
        int micro = _o.MicroBatchSize == 0 ? _o.BatchSize : _o.MicroBatchSize;

        backbone.train();
        head.train();
        var parameters = backbone.parameters().Concat(head.parameters()).ToList();
        using var opt = optim.AdamW(parameters, lr: _o.LearningRate, weight_decay: 0.0);
        var schedule = new LrSchedule(_o.LearningRate, _o.WarmupSteps, _o.MaxSteps, _o.MinLrRatio);
        var runLog = new RunLog(outDir, append: resume);
        var ckptRoot = Path.Combine(outDir, "checkpoints");

        int step = 0, epoch = 0, position = 0;
        if (resume) (step, epoch, position) = TrainingCheckpoint.Resume(ckptRoot, backbone, opt, runLog, Log, head);
        var cursor = new DataCursor(data.Count, _o.Seed, epoch, position);
        double lastLoss = double.NaN, lastAcc = double.NaN, heldAcc = double.NaN;
        FirstErrorResult? heldFirst = null;
        while (step < _o.MaxSteps)
        {
            cancel.ThrowIfCancellationRequested();
            var batch = cursor.Next(_o.BatchSize);
            double lr = schedule.At(step);
            foreach (var g in opt.ParamGroups) g.LearningRate = lr;

            opt.zero_grad();
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
            double norm = _o.MaxGradNorm > 0 ? nn.utils.clip_grad_norm_(parameters, _o.MaxGradNorm) : double.NaN;
            opt.step();
            step++;
            (lastLoss, lastAcc) = (loss, hits / totalSteps);

            bool evalNow = heldOut.Count > 0 && (step == _o.MaxSteps || (_o.EvalEvery > 0 && step % _o.EvalEvery == 0));
            if (evalNow) (heldAcc, heldFirst) = Evaluate(heldOut, padId, micro);
            if (step % _o.LogEvery == 0 || step == _o.MaxSteps || evalNow)
            {
                var row = new JsonObject
                {
                    ["step"] = step, ["epoch"] = cursor.Epoch, ["loss"] = Round(loss), ["step_accuracy"] = Round(lastAcc),
                    ["lr"] = lr, ["grad_norm"] = Round(norm), ["elapsed_s"] = Math.Round(sw.Elapsed.TotalSeconds, 2),
                };
                if (evalNow) AddHeldOut(row, heldAcc, heldFirst!);
                runLog.Metrics(row);
                Log?.Invoke($"step {step}/{_o.MaxSteps}  loss {loss:F4}  step acc {lastAcc:P0}" + (evalNow ? $"  held-out step acc {heldAcc:P0}, first-error F1 {heldFirst!.F1:F3}" : ""));
            }
            if (_o.CheckpointEvery > 0 && step % _o.CheckpointEvery == 0 && step < _o.MaxSteps)
                Log?.Invoke($"checkpoint {TrainingCheckpoint.Save(ckptRoot, step, backbone, tokenizer, opt, cursor.CheckpointState(), _o.KeepCheckpoints, head)}");
        }

        var finalDir = Path.Combine(outDir, "final");
        HfCheckpoint.SaveAtomically(finalDir, backbone, tokenizer, head);
        ProcessRewardModel.WriteMarker(finalDir, _o.StepSplitter, _o.Threshold);
        sw.Stop();
        var summary = new JsonObject
        {
            ["steps"] = step, ["final_loss"] = Round(lastLoss), ["final_step_accuracy"] = Round(lastAcc),
            ["solutions"] = data.Count, ["labelled_steps"] = data.Sum(d => d.StepEnds.Length), ["held_out_solutions"] = heldOut.Count,
            ["step_splitter"] = _o.StepSplitter, ["seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 2), ["final_checkpoint"] = finalDir,
        };
        if (heldFirst is not null) AddHeldOut(summary, heldAcc, heldFirst);
        runLog.Summary(summary);
        return new PrmResult(step, lastLoss, lastAcc, heldAcc, heldFirst, finalDir);
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
        o["held_out_step_accuracy"] = Round(acc);
        o["held_out_first_error_f1"] = Round(f.F1);
        o["held_out_erroneous_accuracy"] = Round(f.ErroneousAccuracy);
        o["held_out_correct_accuracy"] = Round(f.CorrectAccuracy);
    }

    static double Logit(double p) => Math.Log(p / (1 - p));
    static double Round(double x) => double.IsFinite(x) ? Math.Round(x, 6) : x;
}
