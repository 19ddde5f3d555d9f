using System.Diagnostics;
using Sharpen.Data;
using Sharpen.Training;
using Sharpen.Training.Rl;

namespace Sharpen.Recipes;

/// <summary>What a <c>offline_pg</c> recipe run produced.</summary>
/// <param name="Result">The trainer's result.</param>
/// <param name="Rows">Scored completions read.</param>
/// <param name="SkippedLines">Malformed lines skipped (only with <c>data.skip_bad_lines</c>).</param>
/// <param name="Parameters">Policy parameters.</param>
/// <param name="Seconds">Wall-clock time of the whole run.</param>
public sealed record OfflinePolicyPipelineResult(OfflinePolicyResult Result, int Rows, int SkippedLines, long Parameters, double Seconds);

/// <summary>
/// Runs an <c>offline_pg</c> recipe: load the policy (<c>model.path</c>, or <c>model.init</c> over <c>model.tokenizer</c>),
/// read the scored completions from <c>data.train</c> (see <see cref="ScoredCompletion.Load"/>), run
/// <see cref="OfflinePolicyTrainer"/> into the recipe's output folder, and add <c>skipped_lines</c> and <c>parameters</c>
/// to summary.json.
/// </summary>
public static class OfflinePolicyPipeline
{
    /// <summary>Runs <paramref name="recipe"/>; with <paramref name="resume"/>, continues from the newest checkpoint in its output folder.</summary>
    public static OfflinePolicyPipelineResult Run(Recipe recipe, Action<string>? log = null, bool resume = false, CancellationToken cancel = default)
    {
        var sw = Stopwatch.StartNew();
        var options = recipe.OfflinePolicyOptions();
        var trainPath = recipe.Data.Train ?? throw new RecipeException("recipe: an offline_pg recipe needs 'data.train'");
        Directory.CreateDirectory(recipe.Output);
        if (options.Loss == "direct_advantage_po") return RunDirectAdvantagePo(recipe, options, trainPath, log, resume, cancel, sw);

        var loaded = ScoredCompletion.Load(trainPath, recipe.Data.SkipBadLines).Reported(trainPath, log);
        log?.Invoke($"data: {loaded.Items.Count} scored completions");

        var (policy, tokenizer) = SftPipeline.LoadPolicy(recipe, null);
        using var _ = policy;
        log?.Invoke($"model: {policy.ParameterCount():N0} parameters ({policy.Config.ModelType}, d={policy.Config.HiddenSize}, {policy.Config.NumHiddenLayers} layers)");

        var result = new OfflinePolicyTrainer(policy, tokenizer, options) { Log = log }.Run(loaded.Items, recipe.Output, resume, cancel);

        new RunLog(recipe.Output, append: true).AddToSummary(("skipped_lines", loaded.SkippedLines), ("parameters", policy.ParameterCount()));
        return new OfflinePolicyPipelineResult(result, loaded.Items.Count, loaded.SkippedLines, policy.ParameterCount(), sw.Elapsed.TotalSeconds);
    }

    /// <summary><c>loss: direct_advantage_po</c>: step-labelled solutions (<see cref="StepLabelledExample.Load"/>, Monte-Carlo
    /// step labels) into <see cref="DirectAdvantagePoTrainer"/>; the result maps its solutions to <c>Items</c> and its critic
    /// MSE to <c>ValueMse</c>.</summary>
    static OfflinePolicyPipelineResult RunDirectAdvantagePo(Recipe recipe, OfflinePolicyOptions options, string trainPath, Action<string>? log,
        bool resume, CancellationToken cancel, Stopwatch sw)
    {
        var loaded = StepLabelledExample.Load(trainPath, recipe.Data.SkipBadLines).Reported(trainPath, log);
        log?.Invoke($"data: {loaded.Items.Count} step-labelled solutions");
        var (policy, tokenizer) = SftPipeline.LoadPolicy(recipe, null);
        using var _ = policy;
        log?.Invoke($"model: {policy.ParameterCount():N0} parameters ({policy.Config.ModelType}, d={policy.Config.HiddenSize}, {policy.Config.NumHiddenLayers} layers)");
        var r = new DirectAdvantagePoTrainer(policy, tokenizer, options) { Log = log }.Run(loaded.Items, recipe.Output, resume, cancel);
        new RunLog(recipe.Output, append: true).AddToSummary(("skipped_lines", loaded.SkippedLines), ("parameters", policy.ParameterCount()));
        return new OfflinePolicyPipelineResult(new OfflinePolicyResult(r.Steps, r.FinalLoss, r.Solutions, r.CriticMse, r.FinalCheckpoint),
            loaded.Items.Count, loaded.SkippedLines, policy.ParameterCount(), sw.Elapsed.TotalSeconds);
    }
}
