using System.Text.Json.Nodes;
using Sharpen.Tasks;
using Sharpen.Search;

namespace Sharpen.Evaluation;

/// <summary>One problem's search outcome and its verdict.</summary>
public sealed record SearchEvalRow(Problem Problem, SearchResult Result, Verdict Verdict);

/// <summary>Accuracy and spending of a search strategy over problems. Field names match summary.json.</summary>
public sealed record SearchEvalResult(string Strategy, int BudgetTokens, IReadOnlyList<SearchEvalRow> Rows)
{
    /// <summary>Fraction of problems whose chosen completion the verifier accepts.</summary>
    public double Accuracy => Rows.Count(r => r.Verdict.Correct) / (double)Rows.Count;

    /// <summary>The summary.json fields: accuracy, strategy, budget, and per problem the mean generated tokens,
    /// forward passes, scorer calls and seconds (plus the total generated tokens).</summary>
    public JsonObject ToJson()
    {
        var verdicts = new JsonObject();
        foreach (var g in Rows.GroupBy(r => r.Verdict.Reason).OrderBy(g => g.Key, StringComparer.Ordinal)) verdicts[g.Key] = g.Count();
        return new JsonObject
        {
            ["accuracy"] = Accuracy, ["n"] = Rows.Count, ["strategy"] = Strategy, ["budget_tokens"] = BudgetTokens,
            ["total_generated_tokens"] = Rows.Sum(r => r.Result.Cost.GeneratedTokens),
            ["mean_generated_tokens"] = Rows.Average(r => (double)r.Result.Cost.GeneratedTokens),
            ["mean_forward_passes"] = Rows.Average(r => (double)r.Result.Cost.ForwardPasses),
            ["mean_scorer_calls"] = Rows.Average(r => (double)r.Result.Cost.ScorerCalls),
            ["mean_seconds"] = Rows.Average(r => r.Result.Cost.Seconds),
            ["mean_completion_chars"] = Rows.Average(r => (double)r.Result.Completion.Length),
            ["verdicts"] = verdicts,
        };
    }
}

/// <summary>Runs a search strategy on each problem of a task and verifies the chosen completions.</summary>
public static class SearchEvaluation
{
    /// <summary>Searches every problem (problem i seeded with <see cref="SearchStrategies.Derive"/>(seed, i)) and verifies the answers.</summary>
    public static SearchEvalResult Run(ISearchStrategy strategy, SearchContext context, IVerifiableTask task, IReadOnlyList<Problem> problems)
    {
        if (problems.Count == 0) throw new ArgumentException("no problems to evaluate");
        context.Options.Validate();
        var rows = new List<SearchEvalRow>(problems.Count);
        for (int i = 0; i < problems.Count; i++)
        {
            var result = strategy.Search(SearchProblem.From(problems[i], task), context, SearchStrategies.Derive(context.Options.Seed, i));
            rows.Add(new SearchEvalRow(problems[i], result, task.Verify(problems[i], result.Completion)));
        }
        return new SearchEvalResult(strategy.Name, context.Options.BudgetTokens, rows);
    }
}
