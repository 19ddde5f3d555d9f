using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Training;
using Sharpen.Training.RewardModels;

namespace Sharpen.Recipes;

/// <summary>What a <c>reward_model</c> recipe run produced.</summary>
/// <param name="Result">The trainer's result (steps, final loss, accuracy and margin, final checkpoint).</param>
/// <param name="Pairs">Preference pairs trained on (ranked lists count each expanded pair).</param>
/// <param name="SkippedLines">Malformed lines skipped (only with <c>data.skip_bad_lines</c>).</param>
/// <param name="Parameters">Backbone plus head parameters.</param>
/// <param name="Seconds">Wall-clock time of the whole run.</param>
public sealed record RewardModelPipelineResult(RewardModelResult Result, int Pairs, int SkippedLines, long Parameters, double Seconds);

/// <summary>
/// Runs a <c>reward_model</c> recipe: load the backbone (<c>model.path</c>, or <c>model.init</c> over <c>model.tokenizer</c>),
/// read the pairs from <c>data.train</c> (see <see cref="JsonlDataset.LoadPreferences"/>), add a zero-initialised
/// <see cref="ScalarHead"/>, run <see cref="RewardModelTrainer"/> into the recipe's output folder, and add <c>pairs</c>,
/// <c>skipped_lines</c> and <c>parameters</c> to summary.json. The final checkpoint is what <c>rewards: [{ model: … }]</c> reads.
/// </summary>
public static class RewardModelPipeline
{
    /// <summary>Runs <paramref name="recipe"/>; <paramref name="log"/> receives progress lines.</summary>
    public static RewardModelPipelineResult Run(Recipe recipe, Action<string>? log = null, CancellationToken cancel = default) =>
        Run(recipe, log, resume: false, cancel);

    /// <summary>Runs <paramref name="recipe"/>; with <paramref name="resume"/>, continues from the newest checkpoint in its output folder.</summary>
    public static RewardModelPipelineResult Run(Recipe recipe, Action<string>? log, bool resume, CancellationToken cancel = default)
    {
        var sw = Stopwatch.StartNew();
        var options = recipe.RewardModelOptions();
        var trainPath = recipe.Data.Train ?? throw new RecipeException("recipe: a reward-model recipe needs 'data.train'");
        Directory.CreateDirectory(recipe.Output);

        var loaded = JsonlDataset.LoadPreferences(trainPath, recipe.Data.SkipBadLines).Reported(trainPath, log);
        log?.Invoke($"data: {loaded.Items.Count} preference pairs");

        var (backbone, tokenizer) = SftPipeline.LoadPolicy(recipe, null);
        using var _ = backbone;
        using var head = new ScalarHead(backbone.Config.HiddenSize);
        long parameters = backbone.ParameterCount() + head.parameters().Sum(p => p.numel());
        log?.Invoke($"model: {parameters:N0} parameters ({backbone.Config.ModelType}, d={backbone.Config.HiddenSize}, {backbone.Config.NumHiddenLayers} layers, scalar head)");

        var result = new RewardModelTrainer(backbone, head, tokenizer, options) { Log = log }.Run(loaded.Items, recipe.Output, resume, cancel);

        new RunLog(recipe.Output, append: true).AddToSummary(("pairs", loaded.Items.Count), ("skipped_lines", loaded.SkippedLines), ("parameters", parameters));
        return new RewardModelPipelineResult(result, loaded.Items.Count, loaded.SkippedLines, parameters, sw.Elapsed.TotalSeconds);
    }
}
