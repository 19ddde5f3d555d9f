using System.Text.Json.Nodes;

namespace Sharpen.Training.Ranking;

/// <summary>What a ranking run measured.</summary>
/// <param name="Metric">The held-out metric's name (<c>eval_ndcg</c> or <c>eval_accuracy</c>).</param>
/// <param name="Before">The metric of the greedy policy before the first step.</param>
/// <param name="After">The metric after the last step.</param>
/// <param name="Rows">The rows written to metrics.jsonl.</param>
public sealed record RankingResult(string Metric, double Before, double After, IReadOnlyList<JsonObject> Rows);
