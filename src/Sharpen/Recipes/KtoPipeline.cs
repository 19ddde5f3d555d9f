using System.Diagnostics;
using Sharpen.Data;
using Sharpen.Training.Preference;

namespace Sharpen.Recipes;

/// <summary>What a <c>kto</c> recipe run produced.</summary>
/// <param name="Result">The trainer's result.</param>
/// <param name="Examples">Unpaired examples trained on.</param>
/// <param name="SkippedLines">Malformed lines skipped (only with <c>data.skip_bad_lines</c>).</param>
/// <param name="Parameters">Policy parameters.</param>
/// <param name="Seconds">Wall-clock time of the whole run.</param>
public sealed record KtoPipelineResult(KtoResult Result, int Examples, int SkippedLines, long Parameters, double Seconds);

/// <summary>
/// Runs a <c>kto</c> recipe: load the policy, read unpaired rows from <c>data.train</c>
/// (<see cref="JsonlDataset.LoadUnpaired"/>), run <see cref="KtoTrainer"/> into the output folder, and add <c>examples</c>,
/// <c>skipped_lines</c> and <c>parameters</c> to summary.json.
/// </summary>
public static class KtoPipeline
{
    /// <summary>Runs <paramref name="recipe"/>; with <paramref name="resume"/>, continues from the newest checkpoint in its output folder.</summary>
    public static KtoPipelineResult Run(Recipe recipe, Action<string>? log = null, bool resume = false, CancellationToken cancel = default)
    {
        var sw = Stopwatch.StartNew();
        var options = recipe.KtoOptions();
        var trainPath = recipe.Data.Train ?? throw new RecipeException("recipe: a kto recipe needs 'data.train'");
        Directory.CreateDirectory(recipe.Output);
        var loaded = JsonlDataset.LoadUnpaired(trainPath, recipe.Data.SkipBadLines, SftPipeline.ChatFormatOf(recipe)).Reported(trainPath, log);
        log?.Invoke($"data: {loaded.Items.Count} unpaired examples ({loaded.Items.Count(e => e.Desirable)} desirable)");

        var (policy, tokenizer) = SftPipeline.LoadPolicy(recipe, null);
        using var _ = policy;
        var result = new KtoTrainer(policy, tokenizer, options) { Log = log }.Run(loaded.Items, recipe.Output, resume, cancel);

        new RunLog(recipe.Output, append: true).AddToSummary(("skipped_lines", loaded.SkippedLines), ("parameters", policy.ParameterCount()));
        return new KtoPipelineResult(result, loaded.Items.Count, loaded.SkippedLines, policy.ParameterCount(), sw.Elapsed.TotalSeconds);
    }
}
