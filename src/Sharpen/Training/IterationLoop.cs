using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;
using Sharpen.Data;

namespace Sharpen.Training;

/// <summary>One iteration's outcome as a trainer reports it: its metrics row (with <c>step</c> = iteration, 1-based) and
/// whether the run should stop after it (a time budget ran out).</summary>
public sealed record IterationReport(JsonObject Row, bool Stop = false);

/// <summary>
/// What an iteration-counted trainer (online RL, online DPO / DNO / SPIN) gives <see cref="IterationLoop"/>: its policy and
/// optimizer (saved and restored by the loop), its own state beyond them, and the body of one iteration.
/// </summary>
public interface IIterationTrainer
{
    /// <summary>The policy being trained; the loop checkpoints it and writes it to <c>final/</c>.</summary>
    CausalLM Policy { get; }
    /// <summary>Saved beside the policy.</summary>
    ITokenizer Tokenizer { get; }
    /// <summary>The policy's optimizer; its moments are checkpointed.</summary>
    optim.Optimizer Optimizer { get; }
    /// <summary>Restores what the trainer keeps beyond the policy and optimizer (data position, reference, critic, ...) from a checkpoint.</summary>
    void Restore(string checkpoint, JsonObject state);
    /// <summary>Runs iteration <paramref name="iteration"/> (0-based) and returns its metrics row.</summary>
    IterationReport Iterate(int iteration);
    /// <summary>The trainer state a checkpoint stores in <c>trainer_state.json</c>.</summary>
    JsonObject CheckpointState();
    /// <summary>Writes further files of a checkpoint (reference, critic) into its temporary folder.</summary>
    void SaveExtra(string folder);
    /// <summary>Called once after the last iteration, before <c>final/</c> is written (e.g. to go back to the best iterate).</summary>
    void Finish(int completed);
    /// <summary>The summary.json of the run, given the iterations completed, the seconds taken and the final folder.</summary>
    JsonObject Summary(int completed, double seconds, string finalDir);
}

/// <summary>
/// The driver of every iteration-counted trainer, top to bottom: open the run log (a resumed run keeps it, drops a torn
/// last line and every row after the checkpoint it resumes from, or every row when there is no checkpoint yet, so no
/// iteration is logged twice); restore the newest checkpoint; then per iteration: the trainer's body → its metrics row →
/// a checkpoint every <see cref="CheckpointEvery"/> iterations (not after the last); then the trainer's finish, the final
/// model in <c>final/</c> and <c>summary.json</c>.
/// </summary>
public sealed class IterationLoop(string outDir, int iterations, int checkpointEvery, int keepCheckpoints)
{
    /// <summary>Human-readable progress lines.</summary>
    public Action<string>? Log { get; init; }
    /// <summary>Checkpoint every N iterations (0 = only the final model).</summary>
    public int CheckpointEvery => checkpointEvery;

    /// <summary>Runs <paramref name="trainer"/>'s iterations; returns the iterations completed and the final folder.</summary>
    public (int Completed, string FinalDir, double Seconds) Run(IIterationTrainer trainer, bool resume, CancellationToken cancel = default)
    {
        var total = Stopwatch.StartNew();
        Directory.CreateDirectory(outDir);
        var runLog = new RunLog(outDir, append: resume);
        var ckptRoot = Path.Combine(outDir, "checkpoints");
        int start = 0;
        if (resume)
        {
            runLog.RepairTornLine(Log);
            if (TrainingCheckpoint.Latest(ckptRoot) is { } latest)
            {
                var state = TrainingCheckpoint.Restore(latest, trainer.Policy, trainer.Optimizer);
                start = state["step"]!.GetValue<int>();
                trainer.Restore(latest, state);
                Log?.Invoke($"resumed from {latest} at iteration {start}");
            }
            else Log?.Invoke($"no checkpoint under {ckptRoot}; starting from scratch");
            runLog.TruncateAfter(start, Log);   // rows an interrupted attempt logged after its last checkpoint are redone
        }

        int completed = start;
        for (int it = start; it < iterations; it++)
        {
            cancel.ThrowIfCancellationRequested();
            var report = trainer.Iterate(it);
            Torch.ProcessMemory.Trim();                        // the iteration's freed heap goes back to the system
            runLog.Metrics(report.Row);
            completed = it + 1;
            if (checkpointEvery > 0 && (it + 1) % checkpointEvery == 0 && it + 1 < iterations)
            {
                var dir = TrainingCheckpoint.Save(ckptRoot, it + 1, trainer.Policy, trainer.Tokenizer, trainer.Optimizer,
                    trainer.CheckpointState(), keepCheckpoints, extra: trainer.SaveExtra);
                Log?.Invoke($"checkpoint {dir}");
            }
            if (report.Stop) break;
        }

        trainer.Finish(completed);
        var finalDir = Path.Combine(outDir, "final");
        HfCheckpoint.SaveAtomically(finalDir, trainer.Policy, trainer.Tokenizer);
        total.Stop();
        runLog.Summary(trainer.Summary(completed, total.Elapsed.TotalSeconds, finalDir));
        return (completed, finalDir, total.Elapsed.TotalSeconds);
    }
}
