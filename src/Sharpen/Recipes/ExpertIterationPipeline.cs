using System.Diagnostics;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Tasks;
using Sharpen.Evaluation;
using Sharpen.Training.ExpertIteration;

namespace Sharpen.Recipes;

/// <summary>What an <c>expert_iteration</c> recipe run produced.</summary>
/// <param name="Result">The loop's result (one entry per iteration).</param>
/// <param name="Eval">The final held-out evaluation with the recipe's <c>eval</c> settings (null without held-out problems).</param>
/// <param name="TrainProblems">Training problems sampled on each iteration.</param>
/// <param name="Parameters">Policy parameters.</param>
/// <param name="Seconds">Wall-clock time of the whole run.</param>
public sealed record ExpertIterationPipelineResult(ExpertIterationResult Result, EvalResult? Eval, int TrainProblems, long Parameters, double Seconds);

/// <summary>
/// Runs an <c>expert_iteration</c> recipe: the policy (usually an SFT checkpoint), training problems from
/// <c>data.train</c> (their completions are ignored: only prompts and ground truth are used) or generated from the
/// task, held-out problems from <c>data.test</c> or a generated split; then <see cref="ExpertIterationTrainer"/> and a final
/// evaluation whose numbers are added to summary.json.
/// </summary>
public static class ExpertIterationPipeline
{
    /// <summary>Runs <paramref name="recipe"/>; <paramref name="sampler"/> replaces plain sampling (e.g. a tree search). Method
    /// <c>rest_mcts</c> uses <see cref="MctsExpertSampler"/> with <paramref name="valueTrainer"/> (default: the one
    /// <c>expert_iteration.mcts.value_model</c> names).</summary>
    public static ExpertIterationPipelineResult Run(Recipe recipe, Action<string>? log = null, bool resume = false,
        IExpertSampler? sampler = null, CancellationToken cancel = default, IValueModelTrainer? valueTrainer = null)
    {
        var sw = Stopwatch.StartNew();
        var options = recipe.ExpertIterationOptions();
        var task = recipe.Task?.Build("recipe") ?? throw new RecipeException("recipe: an expert_iteration recipe needs a 'task'");
        Directory.CreateDirectory(recipe.Output);

        IReadOnlyList<Problem> train, heldOut;
        if (recipe.Data.Train is { } trainPath)
        {
            train = JsonlDataset.LoadSft(trainPath, recipe.Data.SkipBadLines).Reported(trainPath, log).Items.Select(SftPipeline.ToProblem).ToList();
            heldOut = recipe.Data.Test is { } testPath
                ? JsonlDataset.LoadSft(testPath, recipe.Data.SkipBadLines).Reported(testPath, log).Items.Select(SftPipeline.ToProblem).ToList()
                : [];
        }
        else
        {
            var made = DatasetWriter.MakeDataset(task, recipe.Data.TrainProblems + recipe.Data.TestProblems, recipe.Seed,
                Path.Combine(recipe.Output, "data", $"{task.Name}.jsonl"), recipe.Data.TestProblems);
            train = JsonlDataset.LoadSft(made.Files[0]).Items.Select(SftPipeline.ToProblem).ToList();
            heldOut = JsonlDataset.LoadSft(made.Files[1]).Items.Select(SftPipeline.ToProblem).ToList();
        }
        log?.Invoke($"data: {train.Count} training problems, {heldOut.Count} held-out");

        var (policy, tokenizer) = SftPipeline.LoadPolicy(recipe, task);
        using var _ = policy;
        PrmValueModelTrainer? prmValue = null;
        log?.Invoke($"model: {policy.ParameterCount():N0} parameters; {options.Method}: {options.Iterations} iterations, " +
                    (options.Method == "rest_mcts" ? $"MCTS with {options.Mcts.BudgetTokens} tokens per problem" : $"{options.SamplesPerProblem} samples per problem") +
                    $", at most {options.MaxKeptPerProblem} kept, " +
                    (options.RestartFromBase ? "each SFT from the base" : "SFT continues from the previous iterate"));

        sampler ??= options.Method == "rest_mcts"
            ? new MctsExpertSampler(recipe.Output, valueTrainer ?? options.Mcts.ValueModel switch
            {
                "table" => (IValueModelTrainer)new TableValueModelTrainer(),
                "prm" => prmValue = new PrmValueModelTrainer(() => SftPipeline.LoadPolicy(recipe, task), options.Mcts.ValuePrmOptions(options.Seed)) { Log = log },
                _ => null,
            }) { Log = log }
            : options.Method == "sharpening" ? (IExpertSampler)new SharpeningExpertSampler(options.SelfLikelihoodNormalize)
            : new PlainExpertSampler();
        if (options.Rationalize) sampler = new RationalizingExpertSampler(sampler, options.RationalizationHint);
        var result = new ExpertIterationTrainer(policy, tokenizer, task, options) { Log = log, Sampler = sampler }
            .Run(train, heldOut, recipe.Output, resume, cancel);

        EvalResult? eval = null;
        var evalProblems = heldOut.Take(recipe.Eval.Problems).ToList();
        if (evalProblems.Count > 0)
        {
            eval = Evaluator.Run(new RolloutEngine(policy, tokenizer), task, evalProblems, recipe.Eval.Samples, recipe.Eval.Temperature,
                recipe.Eval.MaxNewTokens, recipe.Seed);
            log?.Invoke($"held-out: accuracy {eval.Accuracy:P1} (base {result.BaseAccuracy:P1}), pass@{eval.Samples} {eval.PassAtK:P1}, maj@{eval.Samples} {eval.MajAtK:P1} (n={eval.N})");
        }
        Evaluator.RecordBeforeAfter(recipe.Output, before: null, after: eval, policy.ParameterCount(),
            new Dictionary<string, System.Text.Json.Nodes.JsonNode?> { ["train_problems"] = train.Count });
        prmValue?.Dispose();
        return new ExpertIterationPipelineResult(result, eval, train.Count, policy.ParameterCount(), sw.Elapsed.TotalSeconds);
    }
}
