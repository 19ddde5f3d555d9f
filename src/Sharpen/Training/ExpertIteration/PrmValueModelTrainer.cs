using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tokenizers;
using Sharpen.Training.RewardModels;

namespace Sharpen.Training.ExpertIteration;

/// <summary>
/// ReST-MCTS*'s value model as a process reward model (<c>expert_iteration.mcts.value_model: prm</c>): after iteration k,
/// a <see cref="PrmTrainer"/> fits backbone + scalar head to that iteration's <c>value_targets.jsonl</c> (soft per-step
/// labels), starting from the previous iteration's value model (iteration 1: from the base policy, head at zero), and
/// writes it to <c>iter-k/value_model/</c>. The next search scores steps with <see cref="ProcessRewardModel"/> loaded
/// from <c>iter-k/value_model/final</c>. Deterministic (seeded data order), and a finished folder is loaded, not retrained,
/// so a resumed run gets the model the uninterrupted run had.
/// </summary>
/// <param name="loadBase">Loads the base policy (a fresh copy each call): the first value model's backbone.</param>
/// <param name="options">PRM settings (steps, learning rate, step splitter: the search's).</param>
public sealed class PrmValueModelTrainer(Func<(CausalLM Model, ITokenizer Tokenizer)> loadBase, PrmOptions options) : IValueModelTrainer, IDisposable
{
    /// <summary>Folder of an iteration's value model, inside the iteration folder.</summary>
    public const string Folder = "value_model";

    readonly PrmOptions _o = options.Validate();
    ProcessRewardModel? _current;
    string? _currentDir;

    /// <summary>Receives the PRM trainer's progress lines.</summary>
    public Action<string>? Log { get; init; }

    /// <inheritdoc />
    public IStepScorer? Train(int iteration, string valueTargetsPath, string iterationDir)
    {
        var outDir = Path.Combine(iterationDir, Folder);
        var final = Path.Combine(outDir, "final");
        if (!File.Exists(Path.Combine(final, ProcessRewardModel.MarkerFile)))
        {
            var rows = StepLabelledExample.Load(valueTargetsPath).Items.Where(r => r.Steps.Count > 0).ToList();
            if (rows.Count == 0)
            {
                Log?.Invoke($"value model: iteration {iteration} wrote no value targets; keeping the previous value model");
                return _current;
            }
            var previous = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(iterationDir))!, $"iter-{iteration - 1}", Folder, "final");
            bool fromPrevious = iteration > 1 && File.Exists(Path.Combine(previous, ProcessRewardModel.MarkerFile));
            CausalLM backbone;
            ITokenizer tokenizer;
            ScalarHead? head = null;
            if (fromPrevious)
            {
                var loaded = HfCheckpoint.Load(previous, requireTokenizer: true);
                (backbone, tokenizer, head) = (loaded.Model, loaded.Tokenizer!, loaded.Head);
            }
            else (backbone, tokenizer) = loadBase();
            using var _ = backbone;
            head ??= new ScalarHead(backbone.Config.HiddenSize);
            using var __ = head;
            Log?.Invoke($"value model: PRM on {rows.Count} value-target paths from {(fromPrevious ? "the previous value model" : "the base policy")}");
            new PrmTrainer(backbone, head, tokenizer, _o with { CheckpointEvery = 0 }) { Log = Log }.Run(rows, [], outDir);
        }
        if (_currentDir == final && _current is not null) return _current;
        _current?.Dispose();
        (_current, _currentDir) = (new ProcessRewardModel(final, name: "value_model"), final);
        return _current;
    }

    /// <summary>Disposes the loaded value model.</summary>
    public void Dispose() => _current?.Dispose();
}
