using System.Diagnostics;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Training;
using Sharpen.Training.RewardModels;

namespace Sharpen.Recipes;

/// <summary>What a <c>prm</c> recipe run produced.</summary>
/// <param name="Result">The trainer's result.</param>
/// <param name="Solutions">Step-labelled training rows.</param>
/// <param name="HeldOut">Held-out rows (<c>data.test</c>).</param>
/// <param name="SkippedLines">Malformed lines skipped in both files (only with <c>data.skip_bad_lines</c>).</param>
/// <param name="Parameters">Backbone plus head parameters.</param>
/// <param name="Seconds">Wall-clock time of the whole run.</param>
public sealed record PrmPipelineResult(PrmResult Result, int Solutions, int HeldOut, int SkippedLines, long Parameters, double Seconds);

/// <summary>What an <c>implicit_prm</c> recipe run produced.</summary>
/// <param name="Result">The trainer's result.</param>
/// <param name="Completions">Outcome-labelled rows read.</param>
/// <param name="SkippedLines">Malformed lines skipped (only with <c>data.skip_bad_lines</c>).</param>
/// <param name="Parameters">Policy parameters (the reference has as many).</param>
/// <param name="Seconds">Wall-clock time of the whole run.</param>
public sealed record ImplicitPrmPipelineResult(ImplicitPrmResult Result, int Completions, int SkippedLines, long Parameters, double Seconds);

/// <summary>
/// What <c>sharpen train</c> runs for <c>kind: prm</c> and <c>kind: implicit_prm</c>: load the model (<c>model.path</c> or
/// <c>model.init</c>), read <c>data.train</c> (and for <c>prm</c> the optional held-out <c>data.test</c>), train into the
/// recipe's output folder and add the data counts and parameters to summary.json.
/// </summary>
public static class ProcessRewardPipelines
{
    /// <summary>Runs a <c>prm</c> recipe: backbone + a zero-initialised <see cref="ScalarHead"/>, <see cref="PrmTrainer"/>.</summary>
    public static PrmPipelineResult RunPrm(Recipe recipe, Action<string>? log = null, CancellationToken cancel = default) =>
        RunPrm(recipe, log, resume: false, cancel);

    /// <summary>Runs a <c>prm</c> recipe; with <paramref name="resume"/>, continues from the newest checkpoint in the output folder.</summary>
    public static PrmPipelineResult RunPrm(Recipe recipe, Action<string>? log, bool resume, CancellationToken cancel = default)
    {
        var sw = Stopwatch.StartNew();
        var options = recipe.PrmOptions();
        var trainPath = recipe.Data.Train ?? throw new RecipeException("recipe: a prm recipe needs 'data.train'");
        Directory.CreateDirectory(recipe.Output);
        var train = StepLabelledExample.Load(trainPath, recipe.Data.SkipBadLines).Reported(trainPath, log);
        var test = recipe.Data.Test is { } testPath
            ? StepLabelledExample.Load(testPath, recipe.Data.SkipBadLines).Reported(testPath, log)
            : new LoadResult<StepLabelledExample>([], 0, []);
        log?.Invoke($"data: {train.Items.Count} step-labelled solutions ({train.Items.Sum(r => r.Steps.Count)} steps), {test.Items.Count} held out");

        var (backbone, tokenizer) = SftPipeline.LoadPolicy(recipe, recipe.Task?.Build("recipe"));
        using var _ = backbone;
        using var head = new ScalarHead(backbone.Config.HiddenSize);
        long parameters = backbone.ParameterCount() + head.parameters().Sum(p => p.numel());
        log?.Invoke($"model: {parameters:N0} parameters (d={backbone.Config.HiddenSize}, {backbone.Config.NumHiddenLayers} layers, scalar head per step)");

        var result = new PrmTrainer(backbone, head, tokenizer, options) { Log = log }.Run(train.Items, test.Items, recipe.Output, resume, cancel);
        new RunLog(recipe.Output, append: true).AddToSummary(("skipped_lines", train.SkippedLines + test.SkippedLines), ("parameters", parameters));
        return new PrmPipelineResult(result, train.Items.Count, test.Items.Count, train.SkippedLines + test.SkippedLines, parameters, sw.Elapsed.TotalSeconds);
    }

    /// <summary>Runs an <c>implicit_prm</c> recipe: the model is the policy to train and, frozen, the reference; <see cref="ImplicitPrmTrainer"/>.</summary>
    public static ImplicitPrmPipelineResult RunImplicit(Recipe recipe, Action<string>? log = null, CancellationToken cancel = default) =>
        RunImplicit(recipe, log, resume: false, cancel);

    /// <summary>Runs an <c>implicit_prm</c> recipe; with <paramref name="resume"/>, continues from the newest checkpoint in the output folder.</summary>
    public static ImplicitPrmPipelineResult RunImplicit(Recipe recipe, Action<string>? log, bool resume, CancellationToken cancel = default)
    {
        var sw = Stopwatch.StartNew();
        var options = recipe.ImplicitPrmOptions();
        var trainPath = recipe.Data.Train ?? throw new RecipeException("recipe: an implicit-prm recipe needs 'data.train'");
        Directory.CreateDirectory(recipe.Output);
        var train = OutcomeExample.Load(trainPath, recipe.Data.SkipBadLines).Reported(trainPath, log);
        int correct = train.Items.Count(e => e.Label >= 0.5);
        log?.Invoke($"data: {train.Items.Count} outcome-labelled completions ({correct} correct)");

        var (policy, tokenizer) = SftPipeline.LoadPolicy(recipe, recipe.Task?.Build("recipe"));
        using var _ = policy;
        long parameters = policy.ParameterCount();
        log?.Invoke($"model: {parameters:N0} parameters (policy and frozen reference), loss {options.Loss}, beta {options.Beta}");

        var result = new ImplicitPrmTrainer(policy, tokenizer, options) { Log = log }.Run(train.Items, recipe.Output, resume, cancel);
        new RunLog(recipe.Output, append: true).AddToSummary(("skipped_lines", train.SkippedLines), ("parameters", parameters), ("correct_completions", correct));
        return new ImplicitPrmPipelineResult(result, train.Items.Count, train.SkippedLines, parameters, sw.Elapsed.TotalSeconds);
    }
}
