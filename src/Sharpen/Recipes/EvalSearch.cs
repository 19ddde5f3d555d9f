using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Rewards;
using Sharpen.Search;
using Sharpen.Tasks;
using Sharpen.Training;
using Sharpen.Evaluation;

namespace Sharpen.Recipes;

/// <summary>The search half of <see cref="EvalRun"/> (<c>sharpen eval --strategy</c> other than greedy) and its reward-model report.</summary>
public static class EvalSearch
{
    /// <summary>Search settings (<c>sharpen eval --strategy, --scorer, --steps, ...</c>).</summary>
    public sealed record Settings
    {
        /// <summary>Strategy name (<see cref="SearchStrategies.Names"/>).</summary>
        public string Strategy { get; init; } = "greedy";
        /// <summary>Scorer spec (<see cref="SearchScorerRegistry"/>).</summary>
        public string Scorer { get; init; } = "verifier";
        /// <summary>Step splitter spec; null = <c>countdown</c> for countdown/game24, else <c>newline</c>.</summary>
        public string? Steps { get; init; }
        /// <summary>Most tokens per step.</summary>
        public int MaxStepTokens { get; init; } = 16;
        /// <summary>Strategy options (budget, widths, seed).</summary>
        public SearchOptions Options { get; init; } = new();
    }

    /// <summary>Whether the settings ask for a search (anything but the plain greedy evaluation).</summary>
    public static bool IsSearch(Settings? s) => s is not null && s.Strategy != "greedy";

    /// <summary>The step splitter a task uses by default.</summary>
    public static StepSplitter StepsFor(string? spec, string taskName) =>
        StepSplitter.Parse(spec ?? (taskName is "countdown" or "game24" ? "countdown" : "newline"));

    /// <summary>Runs the strategy on every problem; writes one row per problem and returns the summary (not yet written).</summary>
    public static JsonObject Run(Settings s, RolloutEngine engine, IVerifiableTask task, IReadOnlyList<Problem> problems,
        double temperature, int maxNew, RunLog log, ModelReward? rewardModel = null)
    {
        var strategy = SearchStrategies.Create(s.Strategy);
        var options = s.Options.Validate();
        var steps = StepsFor(s.Steps, task.Name);
        using var scorers = SearchScorerRegistry.Create(s.Scorer, task, steps, options.StepAggregation);
        var policy = new LmSearchPolicy(engine, steps, temperature, Math.Min(s.MaxStepTokens, maxNew), maxNew);
        var context = new SearchContext(policy, options, scorers.Outcome, scorers.StepsFor);
        var result = SearchEvaluation.Run(strategy, context, task, problems);
        var rm = rewardModel?.Score(result.Rows.Select(r => (r.Problem.Prompt, r.Result.Completion)).ToList());
        for (int i = 0; i < result.Rows.Count; i++)
        {
            var (p, sr, v) = result.Rows[i];
            var row = new JsonObject
            {
                ["step"] = i, ["id"] = p.Id, ["prompt"] = p.Prompt, ["completion"] = sr.Completion, ["answer"] = sr.Answer,
                ["correct"] = v.Correct, ["reason"] = v.Reason, ["tokens"] = sr.Cost.GeneratedTokens, ["forward_passes"] = sr.Cost.ForwardPasses,
                ["scorer_calls"] = sr.Cost.ScorerCalls, ["seconds"] = sr.Cost.Seconds, ["nodes"] = sr.Trace.Count,
            };
            if (s.Strategy == "compute-optimal") row["chosen"] = sr.Strategy;   // compute-optimal:BIN:STRATEGY
            if (rm is not null) row["reward_model"] = rm[i];
            log.Metrics(row);
        }
        var summary = result.ToJson();
        summary["scorer"] = s.Scorer;
        summary["steps"] = s.Steps ?? (task.Name is "countdown" or "game24" ? "countdown" : "newline");
        summary["seed"] = options.Seed;
        if (s.Strategy is "bon" or "vote" or "weighted-vote") summary["max_samples"] = options.MaxSamples;
        if (s.Strategy == "compute-optimal")
        {
            (summary["probe_samples"], summary["difficulty_threshold"], summary["easy_strategy"], summary["hard_strategy"]) =
                (options.ProbeSamples, options.DifficultyThreshold, options.EasyStrategy, options.HardStrategy);
            summary["easy_problems"] = result.Rows.Count(r => r.Result.Strategy.StartsWith("compute-optimal:easy", StringComparison.Ordinal));
        }
        if (s.Strategy is "beam" or "mcts" or "dvts") { summary["beam_width"] = options.BeamWidth; summary["expansions"] = options.Expansions; }
        if (s.Strategy == "mcts") summary["mcts_c"] = options.MctsC;
        if (rm is not null) summary["reward_model_mean"] = rm.Average();
        return summary;
    }
}
