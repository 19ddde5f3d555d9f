using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tasks;
using Sharpen.Tokenizers;

namespace Sharpen.Training;

/// <summary>What an RL recipe run produced.</summary>
public sealed record RlPipelineResult(RlResult Rl, EvalResult? Before, EvalResult? After, long Parameters, double Seconds);

/// <summary>
/// Runs an <c>rl</c> recipe: load the policy (usually an SFT checkpoint), take prompts from the data
/// file or the task, reward with the task's verifier (plus any extra reward functions passed in),
/// run <see cref="RlTrainer"/>, and evaluate before and after on held-out problems.
/// </summary>
public static class RlPipeline
{
    /// <summary>Runs <paramref name="recipe"/>; <paramref name="extraRewards"/> lets library users add their own reward functions.</summary>
    public static RlPipelineResult Run(Recipe recipe, Action<string>? log = null, bool resume = false,
        IReadOnlyList<WeightedReward>? extraRewards = null, CancellationToken cancel = default)
    {
        var sw = Stopwatch.StartNew();
        var options = recipe.RlOptions();
        var task = recipe.Task!.Build("recipe");
        Directory.CreateDirectory(recipe.Output);

        // Prompts (training) and problems (held-out).
        IReadOnlyList<RlPrompt> prompts;
        IReadOnlyList<Problem> heldOut;
        if (recipe.Data.Train is { } trainPath)
        {
            prompts = JsonlDataset.LoadSft(trainPath, recipe.Data.SkipBadLines).Items
                .Select(e => RlPrompt.From(SftPipeline.ToProblem(e))).ToList();
            heldOut = recipe.Data.Test is { } testPath
                ? JsonlDataset.LoadSft(testPath, recipe.Data.SkipBadLines).Items.Select(SftPipeline.ToProblem).ToList()
                : [];
        }
        else
        {
            var made = DatasetWriter.MakeDataset(task, recipe.Data.TrainProblems + recipe.Data.TestProblems, recipe.Seed,
                Path.Combine(recipe.Output, "data", $"{task.Name}.jsonl"), recipe.Data.TestProblems);
            prompts = JsonlDataset.LoadSft(made.Files[0]).Items.Select(e => RlPrompt.From(SftPipeline.ToProblem(e))).ToList();
            heldOut = JsonlDataset.LoadSft(made.Files[1]).Items.Select(SftPipeline.ToProblem).ToList();
        }

        // Policy.
        var (policy, tokenizer) = SftPipeline.LoadPolicy(recipe, task);
        using var _ = policy;

        // Rewards.
        var rewards = BuildRewards(recipe.Rewards, task);
        using var disposeRewards = new DisposeAll(rewards.Select(w => w.Function).OfType<IDisposable>().ToList());
        if (extraRewards is not null) rewards.AddRange(extraRewards);

        var evalProblems = heldOut.Take(recipe.Eval.Problems).ToList();
        EvalResult? before = evalProblems.Count > 0
            ? Evaluation.Run(new RolloutEngine(policy, tokenizer), task, evalProblems, maxNewTokens: recipe.Eval.MaxNewTokens)
            : null;
        if (before is not null) log?.Invoke($"before RL: held-out greedy accuracy {before.Accuracy:P1} (n={before.N})");

        var trainer = new RlTrainer(policy, tokenizer, options, rewards) { Log = log, Task = task, EvalProblems = evalProblems };
        RlResult rl;
        if (recipe.Data.Offline is { } offlinePath)
        {
            var scored = ScoredCompletion.Load(offlinePath, recipe.Data.SkipBadLines).Reported(offlinePath, log);
            rl = trainer.RunOffline(scored.Items, recipe.Output, cancel);
        }
        else rl = trainer.Run(prompts, recipe.Output, resume, cancel);

        EvalResult? after = evalProblems.Count > 0
            ? Evaluation.Run(new RolloutEngine(policy, tokenizer), task, evalProblems, recipe.Eval.Samples, recipe.Eval.Temperature,
                recipe.Eval.MaxNewTokens, recipe.Seed)
            : null;
        if (Evaluation.RecordBeforeAfter(recipe.Output, before, after, policy.ParameterCount()) is { } line) log?.Invoke($"after RL: {line}");
        return new RlPipelineResult(rl, before, after, policy.ParameterCount(), sw.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// The recipe's <c>rewards</c> entries as reward functions (default: the task's verifier). Each entry gives exactly one
    /// of <c>name</c> (the task's verifier) or <c>model</c> (a reward-model folder, loaded as a <see cref="ModelReward"/>,
    /// which the caller disposes).
    /// </summary>
    public static List<WeightedReward> BuildRewards(IReadOnlyList<RewardSection>? sections, IVerifiableTask task)
    {
        var rewards = new List<WeightedReward>();
        try
        {
            for (int i = 0; i < (sections?.Count ?? 1); i++)
            {
                var r = sections?[i] ?? new RewardSection { Name = task.Name };
                bool hasName = !string.IsNullOrEmpty(r.Name), hasModel = !string.IsNullOrEmpty(r.Model);
                if (hasName == hasModel)
                    throw new RecipeException($"recipe: 'rewards[{i}]' needs exactly one of 'name' (the task's verifier) or 'model' (a reward-model folder)");
                if (hasModel)
                {
                    try { rewards.Add(new WeightedReward(new ModelReward(r.Model!, normalize: r.Normalize), r.Weight)); }
                    catch (CheckpointException e) { throw new RecipeException($"recipe: 'rewards[{i}].model': {e.Message}"); }
                    continue;
                }
                if (r.Name != task.Name) throw new RecipeException($"recipe: 'rewards' names '{r.Name}'; recipes can use the task's verifier ('{task.Name}') or a reward model ('model: folder'); add other reward functions from code");
                rewards.Add(new WeightedReward(new TaskReward(task), r.Weight));
            }
        }
        catch
        {
            foreach (var d in rewards.Select(w => w.Function).OfType<IDisposable>()) d.Dispose();
            throw;
        }
        return rewards;
    }

    sealed class DisposeAll(List<IDisposable> items) : IDisposable
    {
        public void Dispose() { foreach (var d in items) d.Dispose(); }
    }
}
