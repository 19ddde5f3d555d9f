using Sharpen.Data;
using Sharpen.Rewards;
using Sharpen.Tasks;
using Sharpen.Algorithms;

namespace Sharpen.Search;

/// <summary>Scores whole completions of a problem (a verifier, an outcome reward model, an aggregated PRM).</summary>
public interface IOutcomeScorer
{
    /// <summary>Name used in metrics.</summary>
    string Name { get; }

    /// <summary>One score per completion; NaN where the scorer does not apply.</summary>
    double[] Score(SearchProblem problem, IReadOnlyList<(string Completion, int Tokens)> completions);
}

/// <summary>An <see cref="IRewardFunction"/> (the task's verifier, a <see cref="ModelReward"/>, ...) as an outcome scorer;
/// a null reward becomes NaN.</summary>
public sealed class RewardOutcomeScorer(IRewardFunction reward) : IOutcomeScorer
{
    /// <inheritdoc />
    public string Name => reward.Name;

    /// <inheritdoc />
    public double[] Score(SearchProblem problem, IReadOnlyList<(string Completion, int Tokens)> completions)
    {
        var batch = completions.Select(c => new RewardContext(problem.Prompt, c.Completion, problem.Fields, c.Tokens)).ToList();
        var r = reward.ScoreAsync(batch).AsTask().GetAwaiter().GetResult();
        if (r.Length != batch.Count) throw new InvalidOperationException($"reward '{reward.Name}' returned {r.Length} scores for {batch.Count} completions");
        return r.Select(x => x ?? double.NaN).ToArray();
    }
}

/// <summary>A step scorer (PRM) as an outcome scorer: the completion is split into steps, and the step scores aggregated.</summary>
public sealed class StepOutcomeScorer(IStepScorer scorer, StepSplitter steps, StepAggregation aggregation) : IOutcomeScorer
{
    /// <inheritdoc />
    public string Name => $"{scorer.Name}:{aggregation.ToString().ToLowerInvariant()}";

    /// <inheritdoc />
    public double[] Score(SearchProblem problem, IReadOnlyList<(string Completion, int Tokens)> completions)
    {
        var items = completions.Select(c => (problem.Prompt, steps.Split(c.Completion))).ToList();
        var s = scorer.ScoreSteps(items);
        return s.Select(x => StepAggregator.Aggregate(x, aggregation)).ToArray();
    }
}

/// <summary>An outcome scorer as a step scorer: step i's score is the outcome score of the prefix up to step i (an ORM
/// applied to partial solutions), so beam search and MCTS can run without a PRM. Problem fields are not available
/// through <see cref="IStepScorer"/>, so a verifier scorer built this way sees none; pass a problem to <see cref="For"/>.</summary>
public sealed class OutcomeStepScorer(IOutcomeScorer outcome, SearchProblem problem) : IStepScorer
{
    /// <summary>The same adapter for another problem.</summary>
    public OutcomeStepScorer For(SearchProblem other) => new(outcome, other);

    /// <inheritdoc />
    public string Name => outcome.Name;

    /// <inheritdoc />
    public double[][] ScoreSteps(IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)> items)
    {
        var flat = new List<(string, int)>();
        foreach (var (_, steps) in items)
        {
            var prefix = "";
            foreach (var s in steps) { prefix += s; flat.Add((prefix, 0)); }
        }
        var scores = flat.Count == 0 ? [] : outcome.Score(problem, flat);
        var result = new double[items.Count][];
        int k = 0;
        for (int i = 0; i < items.Count; i++)
        {
            result[i] = new double[items[i].Steps.Count];
            for (int j = 0; j < result[i].Length; j++) result[i][j] = scores[k++];
        }
        return result;
    }
}

/// <summary>The scorers a search gets: an outcome scorer and a step scorer for a given problem.</summary>
/// <param name="Outcome">Scores finished completions.</param>
/// <param name="StepsFor">The step scorer for a problem (PRMs ignore the problem; ORM adapters need its fields).</param>
/// <param name="Disposables">What to dispose when done (loaded models).</param>
public sealed record SearchScorers(IOutcomeScorer Outcome, Func<SearchProblem, IStepScorer> StepsFor, IReadOnlyList<IDisposable> Disposables) : IDisposable
{
    /// <summary>An outcome scorer used for both (its step scores are the outcome scores of prefixes).</summary>
    public static SearchScorers FromOutcome(IOutcomeScorer outcome, params IDisposable[] owned) =>
        new(outcome, p => new OutcomeStepScorer(outcome, p), owned);

    /// <summary>A step scorer used for both (outcome = aggregated step scores).</summary>
    public static SearchScorers FromSteps(IStepScorer steps, StepSplitter splitter, StepAggregation aggregation, params IDisposable[] owned) =>
        new(new StepOutcomeScorer(steps, splitter, aggregation), _ => steps, owned);

    /// <inheritdoc />
    public void Dispose() { foreach (var d in Disposables) d.Dispose(); }
}

/// <summary>
/// Scorer specs by kind: <c>verifier</c> (the task's verifier; an oracle, since it reads the ground truth) and
/// <c>reward-model:DIR</c> (a trained ORM), <c>prm:DIR</c> (a <see cref="ProcessRewardModel"/> folder) and <c>implicit-prm:DIR</c>
/// (an <see cref="ImplicitPrm"/> folder, its steps scored as <see cref="ImplicitPrmValues"/>). A PRM is both the step scorer and,
/// its step scores aggregated over the completion split with the PRM's own step rule, the outcome scorer of answered completions
/// (<see cref="AnsweredOnly"/>: one without a final answer scores NaN). A new kind is one entry in <see cref="Kinds"/>.
/// </summary>
public static class SearchScorerRegistry
{
    /// <summary>What a factory gets: the argument after <c>kind:</c> (or null), the task, the step splitter and aggregation.</summary>
    public sealed record Args(string? Argument, IVerifiableTask Task, StepSplitter Steps, StepAggregation Aggregation);

    /// <summary>A scorer kind: whether it takes a <c>:DIR</c> folder, and how it is built.</summary>
    public sealed record Kind(bool TakesFolder, Func<Args, SearchScorers> Make);

    /// <summary>Kind name → kind. Adding a scorer kind is adding one line here.</summary>
    public static readonly IReadOnlyDictionary<string, Kind> Kinds = new Dictionary<string, Kind>
    {
        ["verifier"] = new(false, a => SearchScorers.FromOutcome(new RewardOutcomeScorer(new TaskReward(a.Task)))),
        ["reward-model"] = new(true, a => { var rm = new ModelReward(a.Argument!); return SearchScorers.FromOutcome(new RewardOutcomeScorer(rm), rm); }),
        ["prm"] = new(true, a => { var prm = new ProcessRewardModel(a.Argument!); var sc = SearchScorers.FromSteps(prm, prm.Splitter, a.Aggregation, prm); return sc with { Outcome = new AnsweredOnly(sc.Outcome) }; }),
        ["implicit-prm"] = new(true, a => { var ip = ImplicitPrm.Load(a.Argument!); var sc = SearchScorers.FromSteps(new NonEmptySteps(new ImplicitPrmValues(ip)), ip.Splitter, a.Aggregation, ip); return sc with { Outcome = new AnsweredOnly(sc.Outcome) }; }),
    };

    /// <summary>Builds the scorers a spec names; throws listing the known kinds.</summary>
    public static SearchScorers Create(string spec, IVerifiableTask task, StepSplitter steps, StepAggregation aggregation = StepAggregation.Last)
    {
        int colon = spec.IndexOf(':');
        var name = colon < 0 ? spec : spec[..colon];
        var arg = colon < 0 ? null : spec[(colon + 1)..];
        if (!Kinds.TryGetValue(name, out var kind))
            throw new ArgumentException($"scorer '{spec}' is not known; expected one of: {string.Join(", ", Kinds.Select(k => k.Value.TakesFolder ? k.Key + ":DIR" : k.Key))}");
        if (kind.TakesFolder && string.IsNullOrEmpty(arg)) throw new ArgumentException($"scorer '{spec}' needs a folder: {name}:DIR");
        if (!kind.TakesFolder && arg is not null) throw new ArgumentException($"scorer '{spec}': '{name}' takes no argument");
        return kind.Make(new Args(arg, task, steps, aggregation));
    }
}
