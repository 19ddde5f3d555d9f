using System.Text.Json.Nodes;
using Sharpen.Environments;
using Sharpen.Generation;

namespace Sharpen.Evaluation;

/// <summary>
/// What an environment evaluation measured over <see cref="N"/> episodes (one per seed).
/// </summary>
/// <param name="Environment">The environment's name.</param>
/// <param name="N">Episodes played.</param>
/// <param name="SuccessRate">Share of episodes won (<see cref="Trajectory.Succeeded"/>).</param>
/// <param name="MeanReturn">Mean undiscounted return.</param>
/// <param name="MeanTurns">Mean assistant turns per episode.</param>
/// <param name="TurnTokens">Per turn index k: the mean number of policy tokens of turn k over the episodes that reached it.</param>
/// <param name="Trajectories">The episodes, in seed order.</param>
public sealed record EnvironmentEvalResult(string Environment, int N, double SuccessRate, double MeanReturn, double MeanTurns,
    IReadOnlyList<double> TurnTokens, IReadOnlyList<Trajectory> Trajectories)
{
    /// <summary>The summary.json fields.</summary>
    public JsonObject ToJson()
    {
        var ends = new JsonObject();
        foreach (var g in Trajectories.GroupBy(t => t.End.ToString().ToLowerInvariant()).OrderBy(g => g.Key, StringComparer.Ordinal)) ends[g.Key] = g.Count();
        return new JsonObject
        {
            ["env"] = Environment, ["n"] = N, ["success_rate"] = SuccessRate, ["mean_return"] = MeanReturn, ["mean_turns"] = MeanTurns,
            ["turn_tokens"] = new JsonArray(TurnTokens.Select(x => (JsonNode?)Math.Round(x, 3)).ToArray()), ["ends"] = ends,
        };
    }
}

/// <summary>
/// Plays a policy in an environment on fixed seeds and measures success rate, mean return, mean turns and per-turn
/// lengths: greedy by default, batched through <see cref="MultiTurnRollout"/> (up to <c>batch</c> environments in
/// lock-step per call).
/// </summary>
public static class EnvironmentEvaluator
{
    /// <summary>One episode per seed of <paramref name="seeds"/>, each in a fresh environment from <paramref name="create"/>.
    /// <paramref name="options"/>' sampling applies as given (set temperature 0 for greedy).</summary>
    public static EnvironmentEvalResult Run(IRolloutEngine engine, Func<IEnvironment> create, IReadOnlyList<int> seeds,
        MultiTurnOptions options, ChatRenderer? renderer = null, int batch = 64, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(create);
        ArgumentNullException.ThrowIfNull(seeds);
        if (seeds.Count == 0) throw new ArgumentException("no seeds to evaluate on");
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        var all = new List<Trajectory>(seeds.Count);
        string name = "";
        for (int s = 0; s < seeds.Count; s += batch)
        {
            var chunk = seeds.Skip(s).Take(batch).ToArray();
            var envs = chunk.Select(_ => create()).ToArray();
            name = envs[0].Name;
            try
            {
                var rollout = new MultiTurnRollout(engine, options, renderer);
                all.AddRange(rollout.RunAsync(envs, chunk, cancel).GetAwaiter().GetResult());
            }
            finally
            {
                foreach (var e in envs) (e as IDisposable)?.Dispose();
            }
        }
        return Summarise(name, all);
    }

    /// <summary>The measures of already played <paramref name="trajectories"/>.</summary>
    public static EnvironmentEvalResult Summarise(string environment, IReadOnlyList<Trajectory> trajectories)
    {
        ArgumentNullException.ThrowIfNull(trajectories);
        if (trajectories.Count == 0) throw new ArgumentException("no trajectories");
        int maxTurns = trajectories.Max(t => t.Turns.Count);
        var turnTokens = new double[maxTurns];
        for (int k = 0; k < maxTurns; k++)
        {
            var reached = trajectories.Where(t => t.Turns.Count > k).ToArray();
            turnTokens[k] = reached.Average(t => (double)(t.Turns[k].TokenIds?.Length ?? 0));
        }
        return new EnvironmentEvalResult(environment, trajectories.Count,
            trajectories.Count(t => t.Succeeded) / (double)trajectories.Count,
            trajectories.Average(t => t.Return), trajectories.Average(t => (double)t.Turns.Count), turnTokens, trajectories.ToArray());
    }
}
