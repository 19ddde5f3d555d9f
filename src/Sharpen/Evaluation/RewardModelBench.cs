using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Rewards;

namespace Sharpen.Evaluation;

/// <summary>One problem of a reward-model benchmark: a prompt, its one correct solution and several incorrect ones,
/// all written the same way (RewardMATH's fix of RewardBench-math, where chosen and rejected differ in style).</summary>
public sealed record RewardBenchItem(string Prompt, string Correct, IReadOnlyList<string> Incorrect);

/// <summary>A reward model's result on a benchmark.</summary>
/// <param name="Accuracy">Share of problems whose correct solution scores strictly above every incorrect one.</param>
/// <param name="Mrr">Mean reciprocal rank of the correct solution.</param>
/// <param name="Problems">Problems scored.</param>
public sealed record RewardBenchScore(double Accuracy, double Mrr, int Problems);

/// <summary>
/// RewardMATH's reward-model benchmark protocol (Kim et al. 2024, "Evaluating Robustness of Reward Models for
/// Mathematical Reasoning", arXiv:2410.01729): every problem has one correct and many incorrect solutions; a reward
/// model is right on a problem when it scores the correct one above <b>all</b> the incorrect ones (accuracy; chance
/// 1/(n+1)), and its mean reciprocal rank of the correct one is the MRR (chance (1/(n+1))·Σ_{k=1..n+1} 1/k). The claim it
/// tests is that this score correlates with the policy later optimised against the reward model
/// (<see cref="Pearson"/>, <see cref="Spearman"/>). Ties count against the reward model: the correct solution's rank is
/// 1 + the number of incorrect solutions scoring at least as much, so a constant reward model ranks it last.
/// File rows: <c>{"prompt": string, "correct": string, "incorrect": [string, ...]}</c>.
/// </summary>
public static class RewardModelBench
{
    const string Expected = "{\"prompt\": string, \"correct\": string, \"incorrect\": [string, ...]} with at least one incorrect solution";

    /// <summary>Reads a benchmark file; a malformed line stops with <c>file:line</c> and what was expected.</summary>
    public static IReadOnlyList<RewardBenchItem> Load(string path) => JsonlDataset.Read(path, Expected, row =>
    {
        var prompt = row.GetString("prompt", nonEmpty: true);
        var correct = row.GetString("correct", nonEmpty: true);
        var inc = row.Get("incorrect");
        if (inc.ValueKind != JsonValueKind.Array) throw row.Error("\"incorrect\" is not a list of strings");
        var incorrect = new List<string>();
        foreach (var e in inc.EnumerateArray()) incorrect.Add(row.AsString(e, $"\"incorrect\"[{incorrect.Count}]", nonEmpty: true));
        if (incorrect.Count == 0) throw row.Error("\"incorrect\" is empty; a problem needs at least one incorrect solution");
        return new RewardBenchItem(prompt, correct, incorrect);
    }).Items;

    /// <summary>Rank of the correct solution among all (1 = best): 1 + #incorrect scoring ≥ it.</summary>
    public static int Rank(double correct, IReadOnlyList<double> incorrect)
    {
        if (!double.IsFinite(correct) || incorrect.Any(s => !double.IsFinite(s))) throw new ArgumentException("reward-model scores must be finite numbers");
        return 1 + incorrect.Count(s => s >= correct);
    }

    /// <summary>Accuracy and MRR over problems, each given as (correct score, incorrect scores).</summary>
    public static RewardBenchScore Score(IReadOnlyList<(double Correct, IReadOnlyList<double> Incorrect)> problems)
    {
        if (problems.Count == 0) throw new ArgumentException("a benchmark needs at least one problem");
        var ranks = problems.Select(p => Rank(p.Correct, p.Incorrect)).ToList();
        return new RewardBenchScore(ranks.Count(r => r == 1) / (double)ranks.Count, ranks.Average(r => 1.0 / r), ranks.Count);
    }

    /// <summary>Pearson's correlation of two equally long series (NaN when either is constant).</summary>
    public static double Pearson(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count != y.Count || x.Count < 2) throw new ArgumentException($"a correlation needs two series of the same length ≥ 2, got {x.Count} and {y.Count}");
        double mx = x.Average(), my = y.Average(), sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < x.Count; i++) { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx); syy += (y[i] - my) * (y[i] - my); }
        return sxx == 0 || syy == 0 ? double.NaN : sxy / Math.Sqrt(sxx * syy);
    }

    /// <summary>Spearman's rank correlation: Pearson's of the ranks, tied values sharing their mean rank.</summary>
    public static double Spearman(IReadOnlyList<double> x, IReadOnlyList<double> y) => Pearson(Ranks(x), Ranks(y));

    /// <summary>1-based ranks in ascending order; ties get the mean of the ranks they span.</summary>
    public static double[] Ranks(IReadOnlyList<double> v)
    {
        var order = Enumerable.Range(0, v.Count).OrderBy(i => v[i]).ToArray();
        var ranks = new double[v.Count];
        for (int i = 0; i < order.Length;)
        {
            int j = i;
            while (j + 1 < order.Length && v[order[j + 1]] == v[order[i]]) j++;
            for (int k = i; k <= j; k++) ranks[order[k]] = (i + j) / 2.0 + 1;
            i = j + 1;
        }
        return ranks;
    }

    /// <summary>
    /// <c>sharpen eval --reward-model-bench</c>: scores every problem of <paramref name="benchPath"/> with each reward model
    /// folder (<see cref="ModelReward"/>), writes metrics.jsonl (one row per reward model and problem: the scores, the rank
    /// of the correct solution, whether it is on top) and summary.json (per reward model: accuracy, MRR; with policy
    /// scores, their Pearson and Spearman correlations with each). <paramref name="policyScores"/> pairs reward-model
    /// folders with the score of the policy optimised against each (≥ 2 for a correlation).
    /// </summary>
    public static JsonObject Run(string benchPath, IReadOnlyList<string> rewardModels, IReadOnlyList<double>? policyScores, string outDir, Action<string>? log = null)
    {
        if (rewardModels.Count == 0) throw new ArgumentException("--reward-model-bench needs a reward model: --reward-model DIR or --policy-scores FILE");
        if (policyScores is not null && policyScores.Count != rewardModels.Count) throw new ArgumentException($"{rewardModels.Count} reward models but {policyScores.Count} policy scores");
        var items = Load(benchPath);
        var runLog = new RunLog(outDir);
        var perModel = new JsonArray();
        var scores = new List<RewardBenchScore>();
        int step = 0;
        foreach (var dir in rewardModels)
        {
            using var rm = new ModelReward(dir);
            var flat = items.SelectMany(it => new[] { (it.Prompt, it.Correct) }.Concat(it.Incorrect.Select(s => (it.Prompt, s)))).ToList();
            var s = rm.Score(flat);
            var problems = new List<(double, IReadOnlyList<double>)>();
            int at = 0;
            foreach (var it in items)
            {
                double c = s[at];
                var inc = s.Skip(at + 1).Take(it.Incorrect.Count).ToArray();
                at += 1 + it.Incorrect.Count;
                problems.Add((c, inc));
                int rank = Rank(c, inc);
                runLog.Metrics(new JsonObject
                {
                    ["step"] = step++, ["reward_model"] = dir, ["prompt"] = it.Prompt, ["correct_score"] = c,
                    ["incorrect_scores"] = new JsonArray([.. inc.Select(v => (JsonNode?)v)]), ["rank"] = rank, ["top"] = rank == 1,
                });
            }
            var score = Score(problems);
            scores.Add(score);
            log?.Invoke($"{dir}: accuracy {score.Accuracy:P1}, MRR {score.Mrr:F4} on {score.Problems} problems");
            perModel.Add(new JsonObject { ["reward_model"] = dir, ["accuracy"] = score.Accuracy, ["mrr"] = score.Mrr, ["problems"] = score.Problems });
        }
        int n = items.Select(i => i.Incorrect.Count).Distinct().Count() == 1 ? items[0].Incorrect.Count + 1 : 0;
        var summary = new JsonObject
        {
            ["bench"] = benchPath, ["problems"] = items.Count, ["reward_models"] = perModel,
            ["chance_accuracy"] = n > 0 ? 1.0 / n : null,
            ["chance_mrr"] = n > 0 ? Enumerable.Range(1, n).Sum(k => 1.0 / k) / n : null,
        };
        if (policyScores is not null)
        {
            for (int i = 0; i < perModel.Count; i++) perModel[i]!["policy_score"] = policyScores[i];
            if (scores.Count >= 2)
            {
                double? Num(double v) => double.IsFinite(v) ? v : null;
                summary["pearson_accuracy_policy"] = Num(Pearson([.. scores.Select(x => x.Accuracy)], policyScores));
                summary["spearman_accuracy_policy"] = Num(Spearman([.. scores.Select(x => x.Accuracy)], policyScores));
                summary["pearson_mrr_policy"] = Num(Pearson([.. scores.Select(x => x.Mrr)], policyScores));
                summary["spearman_mrr_policy"] = Num(Spearman([.. scores.Select(x => x.Mrr)], policyScores));
            }
        }
        runLog.Summary(summary);
        return summary;
    }

    /// <summary>Reads <c>--policy-scores</c>: rows <c>{"reward_model": folder, "policy_score": number}</c>; a relative folder is
    /// taken from the file's own folder.</summary>
    public static (List<string> RewardModels, List<double> PolicyScores) LoadPolicyScores(string path)
    {
        var baseDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var rows = JsonlDataset.Read(path, "{\"reward_model\": folder, \"policy_score\": number}", row =>
        {
            var dir = row.GetString("reward_model", nonEmpty: true);
            var v = row.Get("policy_score");
            if (v.ValueKind != JsonValueKind.Number || !double.IsFinite(v.GetDouble())) throw row.Error("\"policy_score\" is not a finite number");
            return (Path.IsPathRooted(dir) ? dir : Path.Combine(baseDir, dir), v.GetDouble());
        }).Items;
        return ([.. rows.Select(r => r.Item1)], [.. rows.Select(r => r.Item2)]);
    }
}
