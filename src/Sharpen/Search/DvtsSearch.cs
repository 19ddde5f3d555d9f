namespace Sharpen.Search;

/// <summary>
/// <c>dvts</c>: diverse verifier tree search (Beeching, Tunstall &amp; Rush 2024, "Scaling test-time compute with open models",
/// after Snell et al. 2024, arXiv:2408.03314). The N = <see cref="SearchOptions.BeamWidth"/> beams are split into N/M independent
/// subtrees, M = <see cref="SearchOptions.Expansions"/>; each subtree is a step-level beam search that keeps its one best prefix
/// and expands it M ways per step (greedy with respect to the step scorer), on an equal share of the token budget and its own seed.
/// Independent subtrees keep the candidates diverse where one wide beam collapses onto the prefixes the verifier likes first.
/// Answer: the subtree whose best finished solution scores highest (ties: the first subtree); with no finished solution
/// anywhere, the first subtree's. N &lt; M gives one subtree (plain greedy-in-PRM beam search on the whole budget).
/// </summary>
public sealed class DvtsSearch : ISearchStrategy
{
    /// <inheritdoc />
    public string Name => "dvts";

    /// <inheritdoc />
    public SearchResult Search(SearchProblem problem, SearchContext context, long seed)
    {
        var o = context.Options;
        int subtrees = Math.Max(1, Math.Min(o.BeamWidth / o.Expansions, o.BudgetTokens));
        int share = o.BudgetTokens / subtrees;
        var beam = new BeamSearch();
        var trace = new List<SearchNode>();
        long tokens = 0, passes = 0, calls = 0, scored = 0;
        double seconds = 0;
        (string Completion, string? Answer, double Value)? best = null;
        for (int k = 0; k < subtrees; k++)
        {
            var sub = context with { Options = o with { BeamWidth = 1, BudgetTokens = share, BudgetSeconds = o.BudgetSeconds / subtrees } };
            var r = beam.Search(problem, sub, SearchStrategies.Derive(seed, 10_000 + k));
            int offset = trace.Count;
            trace.AddRange(r.Trace.Select(n => n with { Id = n.Id + offset, Parent = n.Parent < 0 ? -1 : n.Parent + offset }));
            (tokens, passes, calls, scored, seconds) = (tokens + r.Cost.GeneratedTokens, passes + r.Cost.ForwardPasses,
                calls + r.Cost.ScorerCalls, scored + r.Cost.ScoredSequences, seconds + r.Cost.Seconds);
            double value = r.Trace.Where(n => n.Terminal).Select(n => n.Score).DefaultIfEmpty(double.NaN).Max();
            if (best is null || SearchStrategies.Better(value, best.Value.Value)) best = (r.Completion, r.Answer, value);
        }
        return new SearchResult(Name, best?.Completion ?? "", best?.Answer, new SearchCost(tokens, passes, calls, scored, seconds), trace);
    }
}
