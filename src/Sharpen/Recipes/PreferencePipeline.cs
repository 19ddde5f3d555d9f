using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Training;
using Sharpen.Training.Preference;

namespace Sharpen.Recipes;

/// <summary>What a <c>preference</c> recipe run produced.</summary>
/// <param name="Result">The trainer's result (steps, final loss and accuracy, final checkpoint).</param>
/// <param name="Pairs">Preference pairs trained on (ranked lists count each expanded pair).</param>
/// <param name="SkippedLines">Malformed lines skipped (only with <c>data.skip_bad_lines</c>).</param>
/// <param name="Parameters">Policy parameters.</param>
/// <param name="Seconds">Wall-clock time of the whole run.</param>
public sealed record PreferencePipelineResult(PreferenceResult Result, int Pairs, int SkippedLines, long Parameters, double Seconds);

/// <summary>
/// Runs a <c>preference</c> recipe: load the policy (<c>model.path</c>, or <c>model.init</c> over <c>model.tokenizer</c>),
/// read the pairs from <c>data.train</c> (see <see cref="JsonlDataset.LoadPreferences"/>), run
/// <see cref="PreferenceTrainer"/> into the recipe's output folder, and add <c>pairs</c>, <c>skipped_lines</c> and
/// <c>parameters</c> to summary.json.
/// </summary>
public static class PreferencePipeline
{
    /// <summary>Runs <paramref name="recipe"/>; <paramref name="log"/> receives progress lines.</summary>
    public static PreferencePipelineResult Run(Recipe recipe, Action<string>? log = null, CancellationToken cancel = default) =>
        Run(recipe, log, resume: false, cancel);

    /// <summary>Runs <paramref name="recipe"/>; with <paramref name="resume"/>, continues from the newest checkpoint in its output folder.</summary>
    public static PreferencePipelineResult Run(Recipe recipe, Action<string>? log, bool resume, CancellationToken cancel = default)
    {
        var sw = Stopwatch.StartNew();
        var options = recipe.PreferenceOptions();
        var trainPath = recipe.Data.Train ?? throw new RecipeException("recipe: a preference recipe needs 'data.train'");
        Directory.CreateDirectory(recipe.Output);

        var loaded = JsonlDataset.LoadPreferences(trainPath, recipe.Data.SkipBadLines, SftPipeline.ChatFormatOf(recipe)).Reported(trainPath, log);
        log?.Invoke($"data: {loaded.Items.Count} preference pairs");

        var (policy, tokenizer) = SftPipeline.LoadPolicy(recipe, null);
        using var _ = policy;
        log?.Invoke($"model: {policy.ParameterCount():N0} parameters ({policy.Config.ModelType}, d={policy.Config.HiddenSize}, {policy.Config.NumHiddenLayers} layers)");

        var result = new PreferenceTrainer(policy, tokenizer, options) { Log = log }.Run(loaded.Items, recipe.Output, resume, cancel);

        new RunLog(recipe.Output, append: true).AddToSummary(("pairs", loaded.Items.Count), ("skipped_lines", loaded.SkippedLines), ("parameters", policy.ParameterCount()));
        return new PreferencePipelineResult(result, loaded.Items.Count, loaded.SkippedLines, policy.ParameterCount(), sw.Elapsed.TotalSeconds);
    }
}
