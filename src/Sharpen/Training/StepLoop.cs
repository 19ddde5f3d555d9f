using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;
using Sharpen.Data;

namespace Sharpen.Training;

/// <summary>What one optimizer step's backward reported.</summary>
/// <param name="Loss">The step's loss (before the update).</param>
/// <param name="Metrics">Plain numbers for the metrics row, in row order (rounded to 6 places when written).</param>
/// <param name="Tokens">Tokens the step trained on; when given, rows get <c>tokens_per_s</c>.</param>
public sealed record StepOutcome(double Loss, IReadOnlyList<KeyValuePair<string, double>> Metrics, double? Tokens = null);

/// <summary>What a <see cref="StepLoop"/> run did.</summary>
public sealed record StepLoopResult(int Steps, double FinalLoss, int SkippedNonFiniteSteps, string FinalCheckpoint, double Seconds);

/// <summary>
/// The trainer's part of a step-counted run: its items, the backward of one step, and optional evaluation, final files and
/// summary. Everything else (schedule, data order, optimizer step, logging, checkpoints, resume) is the <see cref="StepLoop"/>'s.
/// </summary>
public sealed record StepWork
{
    /// <summary>How many items the data cursor walks (examples, pairs, units).</summary>
    public required int Items { get; init; }
    /// <summary>Per-item sampling weights (priority sampling with replacement, <see cref="DataOrder.WeightedDraws"/>); null = shuffled epochs.</summary>
    public IReadOnlyList<double>? SampleWeights { get; init; }
    /// <summary>Accumulates into <c>.grad</c> the gradient of one step's loss on the batch (item indices; gradients are already zero).</summary>
    public required Func<IReadOnlyList<int>, StepOutcome> Backward { get; init; }
    /// <summary>Held-out evaluation, if the run has one: adds its keys to the row (at <see cref="StepLoopSettings.EvalEvery"/> and the last step).</summary>
    public Action<JsonObject>? Evaluate { get; init; }
    /// <summary>Writes more files into the final folder after the model (markers, a reference copy).</summary>
    public Action<string>? WriteFinal { get; init; }
    /// <summary>The run's summary.json (the loop adds <c>skipped_nonfinite_steps</c>).</summary>
    public required Func<StepLoopResult, JsonObject> Summary { get; init; }
}

/// <summary>The schedule of a <see cref="StepLoop"/> run.</summary>
public sealed record StepLoopSettings
{
    /// <summary>Names the run in errors (<c>sft</c>, <c>preference</c>, ...).</summary>
    public required string Name { get; init; }
    /// <summary>Optimizer steps to run.</summary>
    public required int MaxSteps { get; init; }
    /// <summary>Items the cursor hands out per step.</summary>
    public required int ItemsPerStep { get; init; }
    /// <summary>The learning rate of each step.</summary>
    public required LrSchedule Lr { get; init; }
    /// <summary>Clip the global gradient norm to this (0 = off; the norm is still measured).</summary>
    public double MaxGradNorm { get; init; }
    /// <summary>Write a metrics row every N steps (and at the last step and every evaluation).</summary>
    public int LogEvery { get; init; } = 10;
    /// <summary>Evaluate every N steps (0 = only at the end); read only when the work has <see cref="StepWork.Evaluate"/>.</summary>
    public int EvalEvery { get; init; }
    /// <summary>Save a resumable checkpoint every N steps (0 = only the final model).</summary>
    public int CheckpointEvery { get; init; }
    /// <summary>Checkpoints kept.</summary>
    public int KeepCheckpoints { get; init; } = 2;
    /// <summary>Seed of the data order.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>Non-finite steps tolerated before the run stops (<see cref="NonFiniteGuard"/>).</summary>
    public int MaxNonFiniteSteps { get; init; } = 10;
    /// <summary>Label of the loss in log lines.</summary>
    public string LossLabel { get; init; } = "loss";
    /// <summary>Row layout: the step's metrics after <c>grad_norm</c> instead of before <c>lr</c>.</summary>
    public bool MetricsAfterGradNorm { get; init; }

    /// <summary>The settings of a trainer whose options are a <see cref="StepSchedule"/>.</summary>
    public static StepLoopSettings From(string name, StepSchedule s) => new()
    {
        Name = name, MaxSteps = s.MaxSteps, ItemsPerStep = s.BatchSize, Lr = new LrSchedule(s.LearningRate, s.WarmupSteps, s.MaxSteps, s.MinLrRatio),
        MaxGradNorm = s.MaxGradNorm, LogEvery = s.LogEvery, CheckpointEvery = s.CheckpointEvery, KeepCheckpoints = s.KeepCheckpoints, Seed = s.Seed,
    };
}

/// <summary>
/// The one driver of the step-counted trainers (SFT, preference, reward model, PRM, implicit PRM, offline policy gradient).
/// Per step: take the next batch of items in the seeded order (<see cref="DataCursor"/>), set the learning rate, zero the
/// gradients, run the trainer's backward, then the optimizer step through <see cref="NonFiniteGuard"/> (clip; skip a
/// non-finite step; stop past a limit). Then log a row every <see cref="StepLoopSettings.LogEvery"/> steps
/// (<c>step, epoch, loss, metrics…, lr, grad_norm, tokens_per_s?, elapsed_s, skipped_nonfinite_steps, evaluation…</c>),
/// evaluate on schedule, and checkpoint every <see cref="StepLoopSettings.CheckpointEvery"/> steps (weights, head,
/// optimizer, data position, skip count). At the end: <c>final/</c>, then summary.json. With resume, the newest checkpoint
/// is loaded and metrics rows after it are dropped (all of them if there is none), so each step is logged once and the run
/// ends with the weights of an uninterrupted one.
/// </summary>
public sealed class StepLoop(CausalLM model, ITokenizer tokenizer, optim.Optimizer optimizer,
    IEnumerable<TorchSharp.Modules.Parameter> parameters, StepLoopSettings settings)
{
    const string SkippedKey = "skipped_nonfinite_steps";
    readonly List<TorchSharp.Modules.Parameter> _parameters = parameters.ToList();

    /// <summary>A value head trained with the model, saved and restored with it (reward model, PRM).</summary>
    public ScalarHead? Head { get; init; }
    /// <summary>Receives one human-readable line per logged step and about checkpoints.</summary>
    public Action<string>? Log { get; init; }
    /// <summary>When the run started (<see cref="Stopwatch.GetTimestamp"/>), for <c>elapsed_s</c> and <c>seconds</c>; default: construction.</summary>
    public long Started { get; init; } = Stopwatch.GetTimestamp();

    /// <summary>Trains; writes metrics.jsonl, checkpoints/, final/ and summary.json into <paramref name="outDir"/>.</summary>
    public StepLoopResult Run(StepWork work, string outDir, bool resume, CancellationToken cancel = default)
    {
        var s = settings;
        var runLog = new RunLog(outDir, append: resume);
        var ckptRoot = Path.Combine(outDir, "checkpoints");
        var guard = new NonFiniteGuard(s.Name, s.MaxNonFiniteSteps);
        int step = 0, epoch = 0, position = 0;
        if (resume)
        {
            (step, epoch, position) = TrainingCheckpoint.Resume(ckptRoot, model, optimizer, runLog, Log, Head);
            guard.Skipped = step == 0 ? 0 : SkippedIn(TrainingCheckpoint.Latest(ckptRoot)!);
        }
        var cursor = new DataCursor(work.Items, s.Seed, epoch, position, work.SampleWeights);
        int firstStep = step;
        double lastLoss = double.NaN, tokensSinceLog = 0;
        var logTimer = Stopwatch.StartNew();
        while (step < s.MaxSteps)
        {
            cancel.ThrowIfCancellationRequested();
            var batch = cursor.Next(s.ItemsPerStep);                     // the step's items, wrapping into the next epoch
            double lr = s.Lr.At(step);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            StepOutcome outcome;
            double gradNorm;
            using (NewDisposeScope())
            {
                optimizer.zero_grad();
                outcome = work.Backward(batch);
                (_, gradNorm) = guard.Step(optimizer, _parameters, s.MaxGradNorm, outcome.Loss, step + 1);
            }
            step++;
            lastLoss = outcome.Loss;
            tokensSinceLog += outcome.Tokens ?? 0;

            bool evalNow = work.Evaluate is not null && ((s.EvalEvery > 0 && step % s.EvalEvery == 0) || step == s.MaxSteps);
            if (step % s.LogEvery == 0 || step == s.MaxSteps || evalNow)
            {
                var row = new JsonObject { ["step"] = step, ["epoch"] = cursor.Fraction, ["loss"] = Round(outcome.Loss) };
                if (!s.MetricsAfterGradNorm) AddMetrics(row, outcome);
                row["lr"] = lr;
                row["grad_norm"] = Round(gradNorm);
                double tps = tokensSinceLog / Math.Max(logTimer.Elapsed.TotalSeconds, 1e-9);
                if (outcome.Tokens is not null) row["tokens_per_s"] = Math.Round(tps, 1);
                if (s.MetricsAfterGradNorm) AddMetrics(row, outcome);
                row["elapsed_s"] = Math.Round(Elapsed(), 2);
                row[SkippedKey] = guard.Skipped;
                if (evalNow) work.Evaluate!(row);
                runLog.Metrics(row);
                var eta = TimeSpan.FromSeconds(Elapsed() / Math.Max(1, step - firstStep) * (s.MaxSteps - step));
                Log?.Invoke(LogLine(step, outcome, lr, outcome.Tokens is null ? null : tps, eta, row, guard.Skipped));
                tokensSinceLog = 0;
                logTimer.Restart();
            }
            if (s.CheckpointEvery > 0 && step % s.CheckpointEvery == 0 && step < s.MaxSteps)
            {
                var state = cursor.CheckpointState();
                state[SkippedKey] = guard.Skipped;
                Log?.Invoke($"checkpoint {TrainingCheckpoint.Save(ckptRoot, step, model, tokenizer, optimizer, state, s.KeepCheckpoints, Head)}");
            }
        }

        var finalDir = Path.Combine(outDir, "final");
        HfCheckpoint.SaveAtomically(finalDir, model, tokenizer, Head);
        work.WriteFinal?.Invoke(finalDir);
        var result = new StepLoopResult(step, lastLoss, guard.Skipped, finalDir, Elapsed());
        var summary = work.Summary(result);
        summary[SkippedKey] = guard.Skipped;
        runLog.Summary(summary);
        return result;
    }

    double Elapsed() => Stopwatch.GetElapsedTime(Started).TotalSeconds;

    static void AddMetrics(JsonObject row, StepOutcome outcome)
    {
        foreach (var (key, value) in outcome.Metrics) row[key] = Round(value);
    }

    string LogLine(int step, StepOutcome o, double lr, double? tps, TimeSpan eta, JsonObject row, int skipped)
    {
        var line = new System.Text.StringBuilder($"step {step}/{settings.MaxSteps}  {settings.LossLabel} {o.Loss:F4}");
        foreach (var (key, value) in o.Metrics) line.Append($"  {key} {value:F4}");
        line.Append($"  lr {lr:E2}");
        if (tps is not null) line.Append($"  tok/s {tps:F0}");
        line.Append($"  eta {eta:mm\\:ss}");
        bool pastSkipped = false;
        foreach (var (key, value) in row)   // the evaluation's keys come after the skip count
        {
            if (pastSkipped && value is JsonValue v && v.TryGetValue(out double d)) line.Append($"  {key} {d:F4}");
            pastSkipped |= key == SkippedKey;
        }
        if (skipped > 0) line.Append($"  skipped non-finite steps {skipped}");
        return line.ToString();
    }

    /// <summary>The skip count a checkpoint recorded (0 in checkpoints written before it was recorded).</summary>
    static int SkippedIn(string checkpoint)
    {
        var state = JsonNode.Parse(File.ReadAllText(Path.Combine(checkpoint, "trainer_state.json")));
        return state?[SkippedKey]?.GetValue<int>() ?? 0;
    }

    /// <summary>Six decimals for the metrics file; non-finite values pass through (written as null).</summary>
    public static double Round(double x) => double.IsFinite(x) ? Math.Round(x, 6) : x;
}
