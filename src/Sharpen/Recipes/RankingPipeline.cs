using Sharpen.Environments;
using Sharpen.Tasks;
using Sharpen.Training.Ranking;

namespace Sharpen.Recipes;

/// <summary>
/// Runs a <c>ranking</c> recipe: a Plackett–Luce ranking policy trained by REINFORCE (<see cref="RankingTrainer"/>). With
/// <c>ranking.task: retrieval</c> it ranks the built-in <see cref="RetrievalTask"/>'s candidates by nDCG@K (Neural PG-RANK);
/// with <c>prompt_selection</c> it picks in-context examples of the recipe's <c>task</c> for the frozen model of
/// <c>ranking.frozen</c> (PromptPG): the example pool is <c>pool_size</c> problems of seed <c>ranking.seed</c>, the
/// training and held-out questions come from the next two seeds. Writes metrics.jsonl and summary.json in the output folder.
/// </summary>
public static class RankingPipeline
{
    /// <summary>Runs <paramref name="recipe"/>.</summary>
    public static RankingResult Run(Recipe recipe, Action<string>? log = null, CancellationToken cancel = default)
    {
        var options = recipe.RankingOptions();
        Directory.CreateDirectory(recipe.Output);
        if (options.Task == "retrieval")
            return RankingTrainer.TrainRetrieval(new RetrievalTask(options.Retrieval), options, recipe.Output, log);
        var task = (recipe.Task ?? throw new RecipeException("recipe: 'ranking.task: prompt_selection' needs a 'task'")).Build("recipe");
        var spec = options.Frozen ?? throw new RecipeException("recipe: 'ranking.task: prompt_selection' needs 'ranking.frozen'");
        FrozenModel frozen;
        try { frozen = spec.Open(); }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidOperationException or InvalidDataException)
        {
            throw new RecipeException($"recipe: 'ranking.frozen': {e.Message}");
        }
        using var _ = frozen;
        var pool = task.Generate(options.PoolSize, options.Seed);
        var train = task.Generate(options.TrainQueries, options.Seed + 1);
        var eval = task.Generate(options.EvalQueries, options.Seed + 2);
        log?.Invoke($"prompt selection: {task.Name}, pool {pool.Count}, {options.Candidates} candidates per question, {options.TopK} shots, frozen model {frozen.Describe()}");
        return RankingTrainer.TrainPromptSelectionAsync(task, frozen, pool, train, eval, options, recipe.Output, log, cancel).GetAwaiter().GetResult();
    }
}
