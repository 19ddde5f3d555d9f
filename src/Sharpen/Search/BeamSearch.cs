using Sharpen.Rewards;
namespace Sharpen.Search;

/// <summary>
/// <c>beam</c>: step-level beam search. Keep up to W partial solutions; expand each with E sampled next steps (one
/// batched policy call per depth); score every new prefix with the step scorer (its step scores aggregated by
/// <see cref="SearchOptions.StepAggregation"/>); finished prefixes move to a pool, and the best W − |pool| unfinished
/// ones are kept. Stops when the pool holds W solutions, nothing is left to expand, <see cref="SearchOptions.MaxSteps"/>
/// is reached, or the budget cannot pay for one more step. Answer: the best pooled solution (or, with none, the best
/// partial one). Within one depth, each request is capped at the policy's step limit, and only as many expansions are
/// requested as the remaining budget can pay for at that cap.
/// </summary>
public sealed class BeamSearch : ISearchStrategy
{
    /// <inheritdoc />
    public string Name => "beam";

    sealed record Beam(int Node, string Text, IReadOnlyList<string> Steps, double Value);

    /// <inheritdoc />
    public SearchResult Search(SearchProblem problem, SearchContext context, long seed)
    {
        var o = context.Options;
        var scorer = SearchStrategies.NeedSteps(context, problem, Name);
        var meter = new SearchMeter(o.Budget);
        var trace = new List<SearchNode>();
        var beams = new List<Beam> { new(-1, "", [], double.NaN) };
        var pool = new List<Beam>();
        for (int depth = 0; depth < o.MaxSteps && beams.Count > 0 && pool.Count < o.BeamWidth; depth++)
        {
            int remaining = meter.RemainingTokens;
            int cap = Math.Min(context.Policy.MaxStepTokens, remaining);
            if (cap <= 0) break;
            int affordable = remaining / cap;
            var requests = new List<ContinuationRequest>();
            var parents = new List<Beam>();
            foreach (var b in beams)
            {
                int e = Math.Min(o.Expansions, affordable - requests.Sum(r => r.Count));
                if (e <= 0) break;
                requests.Add(new ContinuationRequest(problem.Prompt, b.Text, e, OneStep: true, cap));
                parents.Add(b);
            }
            if (requests.Count == 0) break;
            var outs = context.Policy.Sample(requests, SearchStrategies.Derive(seed, depth), meter);

            // New prefixes, identical texts merged (the first one kept; the duplicates' tokens are still spent).
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var fresh = new List<(Beam Parent, Continuation Step, string Text, bool Finished)>();
            for (int r = 0; r < outs.Count; r++)
                foreach (var c in outs[r])
                {
                    var text = parents[r].Text + c.Text;
                    if (c.Text.Length == 0 && !c.Finished) continue;
                    if (!seen.Add(text)) continue;
                    bool finished = SearchStrategies.IsFinished(problem, text, c) || depth + 1 >= o.MaxSteps;
                    fresh.Add((parents[r], c, text, finished));
                }
            var values = SearchStrategies.PrefixValues(scorer, problem,
                fresh.Select(f => (IReadOnlyList<string>)[.. f.Parent.Steps, f.Step.Text]).ToList(), o.StepAggregation, meter);
            var next = new List<Beam>();
            for (int i = 0; i < fresh.Count; i++)
            {
                var (parent, step, text, finished) = fresh[i];
                var answer = finished ? problem.ExtractAnswer(text) : null;
                int id = trace.Count;
                trace.Add(new SearchNode(id, parent.Node, step.Text, step.Tokens, step.LogProb, values[i], 1, values[i], finished, answer));
                var beam = new Beam(id, text, [.. parent.Steps, step.Text], values[i]);
                (finished ? pool : next).Add(beam);
            }
            // Stable sort: ties keep creation order.
            beams = next.Select((b, i) => (b, i)).OrderByDescending(x => double.IsNaN(x.b.Value) ? double.NegativeInfinity : x.b.Value)
                .ThenBy(x => x.i).Select(x => x.b).Take(Math.Max(0, o.BeamWidth - pool.Count)).ToList();
        }
        var candidates = pool.Count > 0 ? pool : beams;
        Beam? best = null;
        foreach (var b in candidates) if (best is null || SearchStrategies.Better(b.Value, best.Value)) best = b;
        var completion = best?.Text ?? "";
        return new SearchResult(Name, completion, problem.ExtractAnswer(completion), meter.Cost, trace);
    }
}
