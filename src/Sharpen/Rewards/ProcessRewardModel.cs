using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Tokenizers;
using Sharpen.Generation;

namespace Sharpen.Rewards;

/// <summary>
/// A trained process reward model (the PRM trainer, <c>kind: prm</c>): loads its folder (model, tokenizer,
/// <c>scalar_head.safetensors</c>, <c>prm.json</c>) and scores each step by σ(head) at the step's last token, batched
/// without gradients. <see cref="Splitter"/> is the step rule it was trained with; <see cref="AsReward"/> turns it into an
/// outcome reward.
/// </summary>
public sealed class ProcessRewardModel : IStepScorer, IDisposable
{
    /// <summary>The marker file of a PRM folder.</summary>
    public const string MarkerFile = "prm.json";

    readonly CausalLM _model;
    readonly ScalarHead _head;
    readonly ITokenizer _tokenizer;

    /// <inheritdoc />
    public string Name { get; }
    /// <summary>The step rule recorded in the folder.</summary>
    public StepSplitter Splitter { get; }
    /// <summary>Score below which a step counts as wrong (recorded at training).</summary>
    public double Threshold { get; }
    /// <summary>Solutions per forward pass.</summary>
    public int MicroBatch { get; }

    /// <summary>Loads <paramref name="directory"/>; throws <see cref="CheckpointException"/> naming it and the missing file when it is not a PRM folder.</summary>
    public ProcessRewardModel(string directory, string? name = null, int microBatch = 16)
    {
        if (microBatch <= 0) throw new ArgumentException($"microBatch must be positive, got {microBatch}");
        var marker = Path.Combine(directory, MarkerFile);
        if (!File.Exists(marker)) throw new CheckpointException($"{directory}: no {MarkerFile}; not a process-reward-model folder (train one with a kind: prm recipe)");
        (Splitter, Threshold) = ReadMarker(marker);
        var loaded = HfCheckpoint.Load(directory, requireTokenizer: true);
        if (loaded.Head is null)
        {
            loaded.Model.Dispose();
            throw new CheckpointException($"{directory}: no {ScalarHead.FileName}; a PRM folder needs its scalar head");
        }
        (_model, _head, _tokenizer) = (loaded.Model, loaded.Head, loaded.Tokenizer!);
        Name = string.IsNullOrEmpty(name) ? "prm" : name;
        MicroBatch = microBatch;
    }

    /// <inheritdoc />
    /// <remarks>Empty steps (a search step that ended at once) are not encoded: each takes the score of the step before it
    /// (<see cref="StepScores.SkippingEmpty"/>).</remarks>
    public double[][] ScoreSteps(IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)> items) => StepScores.SkippingEmpty(items, ScoreNonEmpty);

    double[][] ScoreNonEmpty(IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)> items)
    {
        var result = new double[items.Count][];
        var nonEmpty = Enumerable.Range(0, items.Count).Where(i => items[i].Steps.Count > 0).ToList();
        var scored = PrmScoring.ScoreSteps(_model, _head, _tokenizer, nonEmpty.Select(i => items[i]).ToList(), MicroBatch, _tokenizer.PadTokenId ?? 0);
        for (int i = 0; i < items.Count; i++) result[i] = [];
        for (int k = 0; k < nonEmpty.Count; k++) result[nonEmpty[k]] = scored[k];
        return result;
    }

    /// <summary>This PRM as an outcome reward: completions split with <see cref="Splitter"/>, step scores aggregated by <paramref name="how"/>.</summary>
    public StepScorerReward AsReward(StepAggregation how = StepAggregation.Min) => new(this, Splitter, how);

    /// <summary>Writes <c>prm.json</c> into a model folder.</summary>
    public static void WriteMarker(string directory, string stepSplitter, double threshold) =>
        AtomicFile.WriteAllText(Path.Combine(directory, MarkerFile), new JsonObject
        {
            ["kind"] = "prm", ["step_splitter"] = stepSplitter, ["threshold"] = threshold,
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    static (StepSplitter, double) ReadMarker(string path)
    {
        try
        {
            var o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new CheckpointException($"{path}: expected a JSON object");
            if (o["kind"]?.GetValue<string>() != "prm") throw new CheckpointException($"{path}: 'kind' must be \"prm\"");
            var spec = o["step_splitter"]?.GetValue<string>() ?? throw new CheckpointException($"{path}: 'step_splitter' is missing");
            return (StepSplitter.Parse(spec), o["threshold"]?.GetValue<double>() ?? 0.5);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new CheckpointException($"{path}: {e.Message} (expected {{\"kind\": \"prm\", \"step_splitter\": \"newline|countdown|delimiter:TEXT|regex:PATTERN\", \"threshold\": number}})");
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _model.Dispose();
        _head.Dispose();
    }
}

/// <summary>
/// Any <see cref="IStepScorer"/> as an outcome reward (an <see cref="IRewardFunction"/>): each completion is split into steps,
/// scored, and the step scores aggregated into one number (<see cref="StepAggregator"/>). A completion with no steps
/// (empty text) gets null, "not applicable".
/// </summary>
public sealed class StepScorerReward(IStepScorer scorer, StepSplitter splitter, StepAggregation aggregation, bool ownsScorer = false)
    : IRewardFunction, IDisposable
{
    /// <inheritdoc />
    public string Name => scorer.Name;
    /// <summary>How step scores become one.</summary>
    public StepAggregation Aggregation => aggregation;

    /// <inheritdoc />
    public ValueTask<double?[]> ScoreAsync(IReadOnlyList<RewardContext> batch, CancellationToken cancel = default)
    {
        cancel.ThrowIfCancellationRequested();
        var scores = scorer.ScoreSteps(batch.Select(c => (c.Prompt, splitter.Split(c.Completion))).ToList());
        return ValueTask.FromResult(scores.Select(s => s.Length == 0 ? null : (double?)StepAggregator.Aggregate(s, aggregation)).ToArray());
    }

    /// <summary>Disposes the scorer when this reward was given it to own (a PRM loaded from a recipe's <c>rewards</c>).</summary>
    public void Dispose()
    {
        if (ownsScorer) (scorer as IDisposable)?.Dispose();
    }
}
