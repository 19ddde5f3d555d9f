using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Sharpen.Bench;

/// <summary>The tables and plot of <c>bench search</c> (<see cref="SearchBench"/>).</summary>
public static class SearchReport
{
    /// <summary>Markdown tables from search.json (empty when there is none).</summary>
    public static string Tables(JsonNode? r)
    {
        if (r is null) return "";
        var sb = new StringBuilder();
        var rows = r["rows"]!.AsArray();
        var budgets = r["settings"]!["budgets"]!.AsArray().Select(b => b!.GetValue<int>()).ToList();
        int n = r["held_out"]!["problems_searched"]!.GetValue<int>();
        sb.AppendLine($"Test-time search ({r["date"]}, {r["machine"]}; policy: {r["policy"]!["source"]}, {r["policy"]!["parameters"]} parameters; " +
                      $"{n} held-out Countdown problems; {r["seconds"]} s in all{(r["quick"]!.GetValue<bool>() ? "; QUICK SMOKE RUN, not a result" : "")}). " +
                      "Accuracy (%) at each budget of generated tokens per problem; greedy spends one completion whatever the budget:\n");
        sb.AppendLine("| strategy | " + string.Join(" | ", budgets) + " |");
        sb.AppendLine("| --- |" + string.Concat(budgets.Select(_ => " ---: |")));
        foreach (var label in rows.Select(x => x!["label"]!.GetValue<string>()).Distinct())
        {
            var mine = rows.Where(x => x!["label"]!.GetValue<string>() == label).ToList();
            sb.Append($"| {label} |");
            foreach (var b in budgets)
            {
                var row = label == "greedy" ? mine[0] : mine.FirstOrDefault(x => x!["budget_tokens"]!.GetValue<int>() == b);
                sb.Append(row is null ? " |" : $" {100 * row["accuracy"]!.GetValue<double>():F1} |");
            }
            sb.AppendLine();
        }
        double se = rows.Max(x => x!["stderr"]!.GetValue<double>());
        sb.AppendLine($"\nStandard error √(p(1−p)/n) is at most ±{100 * se:F1} points (n = {n}). Spending per problem (mean generated tokens / forward passes / seconds):\n");
        sb.AppendLine("| strategy | " + string.Join(" | ", budgets) + " |");
        sb.AppendLine("| --- |" + string.Concat(budgets.Select(_ => " ---: |")));
        foreach (var label in rows.Select(x => x!["label"]!.GetValue<string>()).Distinct())
        {
            var mine = rows.Where(x => x!["label"]!.GetValue<string>() == label).ToList();
            sb.Append($"| {label} |");
            foreach (var b in budgets)
            {
                var row = label == "greedy" ? (b == budgets[0] ? mine[0] : null) : mine.FirstOrDefault(x => x!["budget_tokens"]!.GetValue<int>() == b);
                sb.Append(row is null ? " |" : FormattableString.Invariant($" {row["mean_generated_tokens"]!.GetValue<double>():F0} / {row["mean_forward_passes"]!.GetValue<double>():F0} / {row["mean_seconds"]!.GetValue<double>():F2} |"));
            }
            sb.AppendLine();
        }

        var prms = r["prms"]!.AsArray();
        sb.AppendLine($"\nPRMs trained from the same policy for {r["settings"]!["prm_steps"]} optimizer steps each; labelling compute = generated tokens " +
                      "(Monte-Carlo: solutions plus rollouts from every step prefix; implicit: outcome-labelled solutions only). " +
                      $"F1 = first-wrong-step F1 on {prms[0]!["held_out_labelled_solutions"]} held-out solutions with 8-rollout MC labels; best-of-8 on the difficulty samples " +
                      $"(first sample {Pct(prms[0]!["first_sample_accuracy"])}, pass@8 {Pct(prms[0]!["pass_at_8"])}):\n");
        sb.AppendLine("| PRM | share of compute | generated tokens | solutions | F1 | erroneous acc | correct acc | best-of-8 |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var p in prms)
            sb.AppendLine($"| {p!["kind"]} | {p["fraction"]!.GetValue<double>().ToString("0.###", CultureInfo.InvariantCulture)} | {p["generated_tokens"]} | {p["solutions"]} | " +
                          $"{F3(p["first_error_f1"])} | {F3(p["erroneous_accuracy"])} | {F3(p["correct_accuracy"])} | {Pct(p["best_of_8_accuracy"])} |");

        var d = r["difficulty"]!;
        sb.AppendLine($"\nBest non-oracle strategy per budget and difficulty ({d["definition"]}; easy {d["easy"]}, medium {d["medium"]}, hard {d["hard"]} problems):\n");
        sb.AppendLine("| budget | all | easy | medium | hard |");
        sb.AppendLine("| ---: | --- | --- | --- | --- |");
        var best = r["best"]!.AsArray();
        foreach (var b in budgets)
        {
            sb.Append($"| {b} |");
            foreach (var name in new[] { "all", "easy", "medium", "hard" })
            {
                var x = best.FirstOrDefault(y => y!["budget_tokens"]!.GetValue<int>() == b && y["difficulty"]!.GetValue<string>() == name);
                sb.Append(x is null ? " |" : $" {x["strategy"]} ({100 * x["accuracy"]!.GetValue<double>():F0}) |");
            }
            sb.AppendLine();
        }
        sb.AppendLine("\n![accuracy against budget](results/search.png)\n");
        return sb.ToString();
    }

    /// <summary>Accuracy against budget (log x), one line per strategy, into results/search.png.</summary>
    public static void Plot(string benchDir, JsonObject r)
    {
        var plot = new ScottPlot.Plot();
        var rows = r["rows"]!.AsArray();
        var budgets = r["settings"]!["budgets"]!.AsArray().Select(b => b!.GetValue<int>()).ToList();
        foreach (var label in rows.Select(x => x!["label"]!.GetValue<string>()).Distinct())
        {
            var mine = rows.Where(x => x!["label"]!.GetValue<string>() == label).ToList();
            var xs = label == "greedy" ? budgets.Select(b => Math.Log2(b)).ToArray() : mine.Select(x => Math.Log2(x!["budget_tokens"]!.GetValue<int>())).ToArray();
            var ys = label == "greedy" ? budgets.Select(_ => mine[0]!["accuracy"]!.GetValue<double>()).ToArray() : mine.Select(x => x!["accuracy"]!.GetValue<double>()).ToArray();
            var s = plot.Add.Scatter(xs, ys);
            s.LegendText = label;
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            budgets.Select(b => Math.Log2(b)).ToArray(), budgets.Select(b => b.ToString(CultureInfo.InvariantCulture)).ToArray());
        plot.Title("Held-out Countdown accuracy against test-time compute");
        plot.XLabel("generated-token budget per problem (log scale)");
        plot.YLabel("accuracy");
        plot.ShowLegend();
        Directory.CreateDirectory(Path.Combine(benchDir, "results"));
        plot.SavePng(Path.Combine(benchDir, "results", "search.png"), 900, 500);
    }

    static string Pct(JsonNode? x) => x is null ? "n/a" : $"{100 * x.GetValue<double>():F1}%";
    static string F3(JsonNode? x) => x is null ? "n/a" : x.GetValue<double>().ToString("F3", CultureInfo.InvariantCulture);
}
