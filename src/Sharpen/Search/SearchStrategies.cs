using Sharpen.Rewards;

namespace Sharpen.Search;

/// <summary>Options of every search strategy (each reads the ones it uses). Keys are the CLI/recipe names.</summary>
public sealed record SearchOptions
{
    /// <summary><c>budget_tokens</c>: most generated tokens per problem.</summary>
    public int BudgetTokens { get; init; } = 1024;
    /// <summary><c>budget_seconds</c>: optional wall-clock limit per problem (makes results machine-dependent).</summary>
    public double? BudgetSeconds { get; init; }
    /// <summary><c>seed</c>: the one source of randomness; same seed, same result.</summary>
    public long Seed { get; init; }
    /// <summary><c>max_samples</c>: bon/vote/weighted-vote: most sampled completions (0 = as many as the budget allows).</summary>
    public int MaxSamples { get; init; }
    /// <summary><c>beam_width</c>: beam: partial solutions kept (W).</summary>
    public int BeamWidth { get; init; } = 4;
    /// <summary><c>expansions</c>: beam: next steps sampled per kept solution (E); mcts: steps sampled per expansion (k).</summary>
    public int Expansions { get; init; } = 4;
    /// <summary><c>max_steps</c>: beam and mcts: deepest step count before a solution is cut off.</summary>
    public int MaxSteps { get; init; } = 32;
    /// <summary><c>step_aggregation</c>: beam and mcts: how a prefix's step scores become its value (default: the last step's, a PRM's value of the state).</summary>
    public StepAggregation StepAggregation { get; init; } = StepAggregation.Last;
    /// <summary><c>mcts_c</c>: exploration constant (c_puct for PUCT, c for UCT).</summary>
    public double MctsC { get; init; } = 1.25;
    /// <summary><c>mcts_selection</c>: <c>puct</c> (Q + c·P·√N_parent/(1+N)) or <c>uct</c> (Q + c·√(ln N_parent / N)).</summary>
    public string MctsSelection { get; init; } = "puct";
    /// <summary><c>mcts_lambda</c>: AlphaMath's mixing weight: leaf value = (1 − λ)·step value + λ·outcome score of a rollout to the end.</summary>
    public double MctsLambda { get; init; }
    /// <summary><c>mcts_simulations</c>: most simulations (0 = until the budget is spent or the tree is exhausted).</summary>
    public int MctsSimulations { get; init; }
    /// <summary><c>mcts_pick</c>: <c>best-terminal</c> (finished node of highest value) or <c>visits</c> (follow the most-visited children).</summary>
    public string MctsPick { get; init; } = "best-terminal";
    /// <summary><c>probe_samples</c>: compute-optimal: samples whose outcome scores estimate the problem's difficulty.</summary>
    public int ProbeSamples { get; init; } = 4;
    /// <summary><c>difficulty_threshold</c>: compute-optimal: estimated difficulty (1 − mean probe score) below which a problem is easy.</summary>
    public double DifficultyThreshold { get; init; } = 0.5;
    /// <summary><c>easy_strategy</c>: compute-optimal: the strategy for easy problems (Snell et al.: parallel sampling with a verifier).</summary>
    public string EasyStrategy { get; init; } = "weighted-vote";
    /// <summary><c>hard_strategy</c>: compute-optimal: the strategy for hard problems (Snell et al.: beam search against a PRM).</summary>
    public string HardStrategy { get; init; } = "beam";

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad key.</summary>
    public SearchOptions Validate()
    {
        _ = new SearchBudget(BudgetTokens, BudgetSeconds).Validate();
        if (MaxSamples < 0) throw new ArgumentException($"max_samples must be ≥ 0, got {MaxSamples}");
        if (BeamWidth < 1) throw new ArgumentException($"beam_width must be ≥ 1, got {BeamWidth}");
        if (Expansions < 1) throw new ArgumentException($"expansions must be ≥ 1, got {Expansions}");
        if (MaxSteps < 1) throw new ArgumentException($"max_steps must be ≥ 1, got {MaxSteps}");
        if (!(MctsC >= 0) || double.IsInfinity(MctsC)) throw new ArgumentException($"mcts_c must be ≥ 0, got {MctsC}");
        if (MctsSelection is not ("puct" or "uct")) throw new ArgumentException($"mcts_selection '{MctsSelection}' is not known; expected puct or uct");
        if (!(MctsLambda >= 0 && MctsLambda <= 1)) throw new ArgumentException($"mcts_lambda must be in [0, 1], got {MctsLambda}");
        if (MctsSimulations < 0) throw new ArgumentException($"mcts_simulations must be ≥ 0, got {MctsSimulations}");
        if (ProbeSamples < 1) throw new ArgumentException($"probe_samples must be ≥ 1, got {ProbeSamples}");
        if (!(DifficultyThreshold >= 0 && DifficultyThreshold <= 1)) throw new ArgumentException($"difficulty_threshold must be in [0, 1], got {DifficultyThreshold}");
        foreach (var (key, v) in new[] { ("easy_strategy", EasyStrategy), ("hard_strategy", HardStrategy) })
            if (v is "compute-optimal" || !SearchStrategies.Names.Contains(v))
                throw new ArgumentException($"{key} '{v}' is not a strategy it can run; expected one of: {string.Join(", ", SearchStrategies.Names.Where(n => n != "compute-optimal"))}");
        if (MctsPick is not ("best-terminal" or "visits")) throw new ArgumentException($"mcts_pick '{MctsPick}' is not known; expected best-terminal or visits");
        return this;
    }

    /// <summary>The budget these options give.</summary>
    public SearchBudget Budget => new(BudgetTokens, BudgetSeconds);
}

/// <summary>What a strategy searches with.</summary>
/// <param name="Policy">The policy.</param>
/// <param name="Options">Options (budget, seed, widths).</param>
/// <param name="Outcome">Scores finished completions (bon, weighted-vote, MCTS terminals and rollouts).</param>
/// <param name="Steps">The step scorer for a problem (beam, MCTS); a PRM, or an outcome scorer applied to prefixes.</param>
public sealed record SearchContext(ISearchPolicy Policy, SearchOptions Options, IOutcomeScorer? Outcome = null,
    Func<SearchProblem, IStepScorer>? Steps = null);

/// <summary>A test-time search strategy: spends at most its budget on one problem and returns the chosen completion.</summary>
public interface ISearchStrategy
{
    /// <summary>Registry name.</summary>
    string Name { get; }

    /// <summary>Searches one problem. <paramref name="seed"/> is the problem's seed (derive it from the options' seed).</summary>
    SearchResult Search(SearchProblem problem, SearchContext context, long seed);
}

/// <summary>Strategies by name.</summary>
public static class SearchStrategies
{
    static readonly Dictionary<string, Func<ISearchStrategy>> Registry = new(StringComparer.Ordinal)
    {
        ["greedy"] = () => new GreedySearch(),
        ["bon"] = () => new SampleSearch("bon"),
        ["vote"] = () => new SampleSearch("vote"),
        ["weighted-vote"] = () => new SampleSearch("weighted-vote"),
        ["beam"] = () => new BeamSearch(),
        ["mcts"] = () => new MctsSearch(),
        ["dvts"] = () => new DvtsSearch(),
        ["compute-optimal"] = () => new ComputeOptimalSearch(),
    };

    /// <summary>Known names.</summary>
    public static IReadOnlyList<string> Names => [.. Registry.Keys];

    /// <summary>The strategy called <paramref name="name"/>; throws listing the known names.</summary>
    public static ISearchStrategy Create(string name) =>
        Registry.TryGetValue(name, out var make) ? make()
            : throw new ArgumentException($"search strategy '{name}' is not known; expected one of: {string.Join(", ", Registry.Keys)}");

    /// <summary>A deterministic seed for call <paramref name="index"/> of a search seeded with <paramref name="seed"/> (SplitMix64 finaliser).</summary>
    public static long Derive(long seed, long index)
    {
        ulong z = unchecked((ulong)seed + 0x9E3779B97F4A7C15UL * (ulong)(index + 1));
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return (long)((z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFFUL);
    }

    internal static bool IsFinished(SearchProblem problem, string completion, Continuation last) =>
        last.Finished || problem.ExtractAnswer(completion) is not null;

    internal static IOutcomeScorer NeedOutcome(SearchContext c, string strategy) =>
        c.Outcome ?? throw new ArgumentException($"search strategy '{strategy}' needs an outcome scorer (e.g. --scorer verifier or reward-model:DIR)");

    internal static IStepScorer NeedSteps(SearchContext c, SearchProblem p, string strategy) =>
        c.Steps?.Invoke(p) ?? throw new ArgumentException($"search strategy '{strategy}' needs a step scorer (a PRM, or an outcome scorer applied to prefixes)");

    internal static double[] ScoreOutcomes(IOutcomeScorer scorer, SearchProblem p, IReadOnlyList<(string, int)> items, SearchMeter meter)
    {
        if (items.Count == 0) return [];
        meter.AddScoring(items.Count);
        return scorer.Score(p, items);
    }

    internal static double[] PrefixValues(IStepScorer scorer, SearchProblem p, IReadOnlyList<IReadOnlyList<string>> prefixes,
        StepAggregation how, SearchMeter meter)
    {
        if (prefixes.Count == 0) return [];
        meter.AddScoring(prefixes.Count);
        var s = scorer.ScoreSteps(prefixes.Select(x => (p.Prompt, x)).ToList());
        if (s.Length != prefixes.Count) throw new InvalidOperationException($"step scorer '{scorer.Name}' returned {s.Length} results for {prefixes.Count} items");
        return s.Select((x, i) => x.Length == prefixes[i].Count ? StepAggregator.Aggregate(x, how)
            : throw new InvalidOperationException($"step scorer '{scorer.Name}' returned {x.Length} scores for {prefixes[i].Count} steps")).ToArray();
    }

    /// <summary>Greater, with NaN below everything.</summary>
    internal static bool Better(double a, double b) => !double.IsNaN(a) && (double.IsNaN(b) || a > b);
}

/// <summary><c>greedy</c>: one temperature-0 completion.</summary>
public sealed class GreedySearch : ISearchStrategy
{
    /// <inheritdoc />
    public string Name => "greedy";

    /// <inheritdoc />
    public SearchResult Search(SearchProblem problem, SearchContext context, long seed)
    {
        var meter = new SearchMeter(context.Options.Budget);
        int cap = Math.Min(context.Policy.MaxTotalTokens, meter.RemainingTokens);
        var c = context.Policy.Sample([new ContinuationRequest(problem.Prompt, "", 1, OneStep: false, cap, Temperature: 0)], seed, meter)[0][0];
        var answer = problem.ExtractAnswer(c.Text);
        var node = new SearchNode(0, -1, c.Text, c.Tokens, c.LogProb, double.NaN, 1, double.NaN, SearchStrategies.IsFinished(problem, c.Text, c), answer);
        return new SearchResult(Name, c.Text, answer, meter.Cost, [node]);
    }
}

/// <summary>
/// Independent samples to the end, as many as the budget allows (each capped at the policy's completion limit, so
/// samples × limit never exceeds what is left), then: <c>bon</c> = argmax of the outcome score (ties: first);
/// <c>vote</c> = the most frequent final answer (ties: first seen; <see cref="Voting.MajorityVote"/>);
/// <c>weighted-vote</c> = the answer with the largest sum of outcome scores (NaN counts 0; ties: first seen), its
/// best-scored completion chosen.
/// </summary>
public sealed class SampleSearch(string name) : ISearchStrategy
{
    /// <inheritdoc />
    public string Name => name;

    /// <inheritdoc />
    public SearchResult Search(SearchProblem problem, SearchContext context, long seed)
    {
        var o = context.Options;
        var scorer = name == "vote" ? null : SearchStrategies.NeedOutcome(context, name);
        var meter = new SearchMeter(o.Budget);
        var samples = new List<Continuation>();
        for (int round = 0; ; round++)
        {
            int remaining = meter.RemainingTokens;
            int want = o.MaxSamples > 0 ? o.MaxSamples - samples.Count : int.MaxValue;
            if (remaining <= 0 || want <= 0) break;
            int cap = Math.Min(context.Policy.MaxTotalTokens, remaining);
            int k = Math.Min(want, Math.Max(1, remaining / cap));
            var got = context.Policy.Sample([new ContinuationRequest(problem.Prompt, "", k, OneStep: false, cap)], SearchStrategies.Derive(seed, round), meter)[0];
            samples.AddRange(got);
            if (got.Sum(c => c.Tokens) == 0) break;
        }
        var answers = samples.Select(c => problem.ExtractAnswer(c.Text)).ToList();
        var scores = scorer is null ? samples.Select(_ => double.NaN).ToArray()
            : SearchStrategies.ScoreOutcomes(scorer, problem, samples.Select(c => (c.Text, c.Tokens)).ToList(), meter);
        int chosen = samples.Count == 0 ? -1 : 0;
        switch (name)
        {
            case "bon":
                for (int i = 1; i < samples.Count; i++) if (SearchStrategies.Better(scores[i], scores[chosen])) chosen = i;
                break;
            case "vote":
                var voted = Voting.MajorityVote(answers);
                if (voted is not null) chosen = answers.IndexOf(voted);
                break;
            default:
                var weight = new Dictionary<string, double>(StringComparer.Ordinal);
                var order = new List<string>();
                for (int i = 0; i < samples.Count; i++)
                {
                    if (answers[i] is not { } a) continue;
                    double w = double.IsNaN(scores[i]) ? 0 : scores[i];
                    if (weight.TryAdd(a, w)) order.Add(a); else weight[a] += w;
                }
                string? best = null;
                foreach (var a in order) if (best is null || weight[a] > weight[best]) best = a;
                if (best is not null)
                {
                    chosen = -1;
                    for (int i = 0; i < samples.Count; i++)
                        if (answers[i] == best && (chosen < 0 || SearchStrategies.Better(scores[i], scores[chosen]))) chosen = i;
                }
                break;
        }
        var trace = samples.Select((c, i) => new SearchNode(i, -1, c.Text, c.Tokens, c.LogProb, scores[i], 1, scores[i],
            SearchStrategies.IsFinished(problem, c.Text, c), answers[i])).ToList();
        var text = chosen < 0 ? "" : samples[chosen].Text;
        return new SearchResult(name, text, chosen < 0 ? null : answers[chosen], meter.Cost, trace);
    }
}
