namespace Sharpen.Search;

/// <summary>
/// <c>compute-optimal</c>: a per-problem choice of test-time strategy by estimated difficulty (Snell et al. 2024,
/// arXiv:2408.03314 §3–5: beam search against a PRM pays on harder problems, plain parallel sampling with a verifier on easier
/// ones, where beam search over-fits the PRM). A probe of <see cref="SearchOptions.ProbeSamples"/> independent samples is scored
/// by the outcome scorer; the estimated difficulty is 1 − their mean score (the paper bins by the model's own predicted
/// difficulty, here the verifier's view of a few samples). Difficulty below <see cref="SearchOptions.DifficultyThreshold"/>
/// runs <see cref="SearchOptions.EasyStrategy"/>, else <see cref="SearchOptions.HardStrategy"/>, on the budget the probe left.
/// The probe's tokens count against the budget and its samples are kept in the trace; when the chosen strategy finds no
/// answer, the probe's best-scored sample is the answer.
/// </summary>
public sealed class ComputeOptimalSearch : ISearchStrategy
{
    /// <inheritdoc />
    public string Name => "compute-optimal";

    /// <summary>The difficulty bin a probe's scores put a problem in: "easy" when 1 − mean(scores) &lt; threshold (NaN scores count 0).</summary>
    public static string Bin(IReadOnlyList<double> probeScores, double threshold)
    {
        ArgumentNullException.ThrowIfNull(probeScores);
        if (probeScores.Count == 0) return "hard";
        double mean = probeScores.Select(s => double.IsNaN(s) ? 0 : s).Average();
        return 1 - mean < threshold ? "easy" : "hard";
    }

    /// <inheritdoc />
    public SearchResult Search(SearchProblem problem, SearchContext context, long seed)
    {
        var o = context.Options;
        SearchStrategies.NeedOutcome(context, Name);
        var probeBudget = Math.Min(o.BudgetTokens, o.ProbeSamples * context.Policy.MaxTotalTokens);
        var probe = new SampleSearch("bon").Search(problem, context with { Options = o with { BudgetTokens = Math.Max(1, probeBudget), MaxSamples = o.ProbeSamples } },
            SearchStrategies.Derive(seed, 0));
        string bin = Bin(probe.Trace.Select(n => n.Score).ToList(), o.DifficultyThreshold);
        int left = o.BudgetTokens - (int)probe.Cost.GeneratedTokens;
        var trace = new List<SearchNode>(probe.Trace);
        var cost = probe.Cost;
        string completion = probe.Completion;
        string? answer = probe.Answer;
        string strategy = bin == "easy" ? o.EasyStrategy : o.HardStrategy;
        if (left > 0)
        {
            var r = SearchStrategies.Create(strategy).Search(problem, context with { Options = o with { BudgetTokens = left } }, SearchStrategies.Derive(seed, 1));
            int offset = trace.Count;
            trace.AddRange(r.Trace.Select(n => n with { Id = n.Id + offset, Parent = n.Parent < 0 ? -1 : n.Parent + offset }));
            cost = new SearchCost(cost.GeneratedTokens + r.Cost.GeneratedTokens, cost.ForwardPasses + r.Cost.ForwardPasses,
                cost.ScorerCalls + r.Cost.ScorerCalls, cost.ScoredSequences + r.Cost.ScoredSequences, cost.Seconds + r.Cost.Seconds);
            if (r.Answer is not null) (completion, answer) = (r.Completion, r.Answer);
        }
        return new SearchResult($"{Name}:{bin}:{strategy}", completion, answer, cost, trace);
    }
}
