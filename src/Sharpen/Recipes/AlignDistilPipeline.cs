using System.Diagnostics;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Training.Preference;

namespace Sharpen.Recipes;

/// <summary>What an <c>align_distil</c> recipe run produced.</summary>
/// <param name="Result">The trainer's result.</param>
/// <param name="Examples">Prompt/response rows trained on.</param>
/// <param name="SkippedLines">Malformed lines skipped (only with <c>data.skip_bad_lines</c>).</param>
/// <param name="Parameters">Student parameters.</param>
/// <param name="Seconds">Wall-clock time of the whole run.</param>
public sealed record AlignDistilPipelineResult(AlignDistilResult Result, int Examples, int SkippedLines, long Parameters, double Seconds);

/// <summary>
/// Runs an <c>align_distil</c> recipe: load the student (<c>model</c>), the DPO model, the reference (or a frozen copy of the
/// starting student) and the optional reverse DPO model from their checkpoint folders, read prompt/response rows from
/// <c>data.train</c> (<see cref="JsonlDataset.LoadSft"/>), run <see cref="AlignDistilTrainer"/> into the output folder, and add
/// <c>skipped_lines</c> and <c>parameters</c> to summary.json.
/// </summary>
public static class AlignDistilPipeline
{
    /// <summary>Runs <paramref name="recipe"/>; with <paramref name="resume"/>, continues from the newest checkpoint in its output folder.</summary>
    public static AlignDistilPipelineResult Run(Recipe recipe, Action<string>? log = null, bool resume = false, CancellationToken cancel = default)
    {
        var sw = Stopwatch.StartNew();
        var options = recipe.AlignDistilOptions();
        var trainPath = recipe.Data.Train ?? throw new RecipeException("recipe: an align_distil recipe needs 'data.train'");
        Directory.CreateDirectory(recipe.Output);
        var loaded = JsonlDataset.LoadSft(trainPath, recipe.Data.SkipBadLines, SftPipeline.ChatFormatOf(recipe)).Reported(trainPath, log);
        log?.Invoke($"data: {loaded.Items.Count} prompt/response rows");

        var (student, tokenizer) = SftPipeline.LoadPolicy(recipe, null);
        using var _ = student;
        using var dpo = Teacher(options.DpoModel!, "dpo_model");
        using var reference = options.ReferenceModel is { } r ? Teacher(r, "reference_model") : student.Copy(trainable: false);
        using var reverse = options.ReverseModel is { } v ? Teacher(v, "reverse_model") : null;
        AlignDistilResult result;
        try
        {
            result = new AlignDistilTrainer(student, tokenizer, dpo, reference, reverse, options) { Log = log }
                .Run(loaded.Items.Select(e => (e.Prompt, e.Completion)).ToList(), recipe.Output, resume, cancel);
        }
        catch (ArgumentException e) when (e.Message.StartsWith("align_distil.", StringComparison.Ordinal)) { throw new RecipeException($"recipe: {e.Message}"); }

        new RunLog(recipe.Output, append: true).AddToSummary(("skipped_lines", loaded.SkippedLines), ("parameters", student.ParameterCount()));
        return new AlignDistilPipelineResult(result, loaded.Items.Count, loaded.SkippedLines, student.ParameterCount(), sw.Elapsed.TotalSeconds);
    }

    static Models.CausalLM Teacher(string path, string key)
    {
        try { return HfCheckpoint.Load(path).Model; }
        catch (CheckpointException e) { throw new RecipeException($"recipe: 'align_distil.{key}': {e.Message}"); }
    }
}
