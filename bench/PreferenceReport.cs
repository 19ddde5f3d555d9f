using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Sharpen.Bench;

/// <summary>The README table and the PNG plots of <c>bench preferences</c> (results/preferences.json).</summary>
public static class PreferenceReport
{
    /// <summary>Markdown of the four-way run (results/preferences-four-way.json): offline vs on-policy × without vs with a
    /// negative gradient, true reward ± half-range over seeds (KL) per ε, then the per-seed differences.</summary>
    public static string FourWayTable(JsonNode r)
    {
        var sb = new StringBuilder();
        var cfg = r["config"]!;
        var eps = cfg["epsilons"]!.AsArray().Select(e => e!.GetValue<double>()).ToList();
        var agg = r["aggregates"]!.AsArray();
        string F(double x) => x.ToString("0.000", CultureInfo.InvariantCulture);
        string Cell(string m, double e)
        {
            var a = agg.First(x => x!["method"]!.GetValue<string>() == m && x["epsilon"]!.GetValue<double>() == e)!;
            return $"{m}: {F(a["true_reward_mean"]!.GetValue<double>())} ± {F(a["true_reward_half_range"]!.GetValue<double>())} ({a["kl_mean"]!.GetValue<double>().ToString("0.0", CultureInfo.InvariantCulture)})";
        }
        sb.AppendLine($"Four-way comparison ({r["date"]}, {r["machine"]}; lexicon task, {cfg["seeds"]} seeds, {cfg["pairs"]} labelled pairs and {cfg["steps"]} steps per method; {r["total_seconds"]} s in all). " +
                      "Cells: held-out true reward mean ± half-range over seeds (KL to the reference, nats).\n");
        sb.AppendLine("| ε | | without negative gradient | with negative gradient |");
        sb.AppendLine("| --- | --- | --- | --- |");
        foreach (var e in eps)
        {
            string es = e.ToString("0.0", CultureInfo.InvariantCulture);
            sb.AppendLine($"| {es} | offline | {Cell("sft", e)} | {Cell("dpo", e)} |");
            sb.AppendLine($"| {es} | on-policy | {Cell("online_filtered_bc", e)} | {Cell("online_dpo", e)} |");
        }
        sb.AppendLine();
        foreach (var (key, label) in new[] { ("negative_gradient_on_policy", "negative gradient on-policy (online_dpo − online_filtered_bc)"),
                     ("negative_gradient_offline", "negative gradient offline (dpo − sft)"),
                     ("on_policy_minus_offline_with_negative_gradient", "on-policy − offline with it (online_dpo − dpo)"),
                     ("on_policy_minus_offline_without_negative_gradient", "on-policy − offline without it (online_filtered_bc − sft)") })
            sb.AppendLine($"- {label}: " + string.Join("; ", r["claims"]![key]!["per_epsilon"]!.AsArray().Select(p =>
                $"ε {p!["epsilon"]}: {F(p["mean_difference"]!.GetValue<double>())} (per seed {string.Join(", ", p["per_seed"]!.AsArray().Select(x => F(x!.GetValue<double>())))})")));
        sb.AppendLine();
        return sb.ToString();
    }

    /// <summary>Markdown: true reward ± half-range over seeds (KL) per method × ε, then the two claims as numbers.</summary>
    public static string Table(JsonNode r)
    {
        var sb = new StringBuilder();
        var cfg = r["config"]!;
        var eps = cfg["epsilons"]!.AsArray().Select(e => e!.GetValue<double>()).ToList();
        var agg = r["aggregates"]!.AsArray();
        string F(double x) => x.ToString("0.000", CultureInfo.InvariantCulture);
        var refRewards = r["reference"]!.AsArray().Select(x => x!["true_reward"]!.GetValue<double>()).ToList();
        sb.AppendLine($"Preferences under label noise ({r["date"]}, {r["machine"]}; lexicon task, {cfg["seeds"]} seeds, {cfg["pairs"]} labelled pairs and {cfg["steps"]} steps of batch {cfg["batch_size"]} per method, " +
                      $"held-out true reward of {cfg["held_out_prompts"]}×{cfg["eval_samples_per_prompt"]} samples at T = 1; reference policy {F(refRewards.Average())}; {r["total_seconds"]} s in all):\n");
        sb.AppendLine("Cells: true reward mean ± half-range over seeds (KL to the reference, nats).\n");
        sb.AppendLine("| method | " + string.Join(" | ", eps.Select(e => $"ε = {e.ToString("0.0", CultureInfo.InvariantCulture)}")) + " |");
        sb.AppendLine("| --- |" + string.Concat(eps.Select(_ => " ---: |")));
        foreach (var m in PreferenceBench.Methods)
        {
            var cells = eps.Select(e => agg.First(a => a!["method"]!.GetValue<string>() == m && a["epsilon"]!.GetValue<double>() == e)!)
                .Select(a => $"{F(a["true_reward_mean"]!.GetValue<double>())} ± {F(a["true_reward_half_range"]!.GetValue<double>())} ({a["kl_mean"]!.GetValue<double>().ToString("0.0", CultureInfo.InvariantCulture)})");
            sb.AppendLine($"| {m} | {string.Join(" | ", cells)} |");
        }
        sb.AppendLine();
        var c = r["claims"]!;
        var d = c["rdpo_vs_dpo"]!;
        string Seeds(JsonNode n) => string.Join(", ", n.AsArray().Select(x => F(x!.GetValue<double>())));
        sb.AppendLine($"Drop in true reward from ε = {d["epsilon_from"]} to ε = {d["epsilon_to"]} (per seed): dpo {F(d["dpo"]!["drop_mean"]!.GetValue<double>())} ({Seeds(d["dpo"]!["drop_per_seed"]!)}), " +
                      $"rdpo {F(d["rdpo"]!["drop_mean"]!.GetValue<double>())} ({Seeds(d["rdpo"]!["drop_per_seed"]!)}), cdpo {F(d["cdpo"]!["drop_mean"]!.GetValue<double>())} ({Seeds(d["cdpo"]!["drop_per_seed"]!)}); " +
                      $"slope of reward against ε: dpo {F(d["dpo"]!["slope_mean"]!.GetValue<double>())}, rdpo {F(d["rdpo"]!["slope_mean"]!.GetValue<double>())}, cdpo {F(d["cdpo"]!["slope_mean"]!.GetValue<double>())}.\n");
        var on = c["online_vs_offline_dpo"]!;
        sb.AppendLine($"Online minus offline DPO at equal labelled pairs: {F(on["mean_difference"]!.GetValue<double>())} on average; by ε: " +
                      string.Join(", ", on["per_epsilon"]!.AsArray().Select(p => $"{p!["epsilon"]}: {F(p["mean_difference"]!.GetValue<double>())} ({Seeds(p["per_seed"]!)})")) +
                      $"; online ahead in {on["positive_fraction"]!.GetValue<double>():P0} of (ε, seed) cells.\n");
        sb.AppendLine("![true reward against ε](results/preferences.png)\n");
        sb.AppendLine("![KL to the reference against ε](results/preferences_kl.png)\n");
        return sb.ToString();
    }

    /// <summary>Writes results/preferences.png (true reward against ε, ± half-range) and results/preferences_kl.png.</summary>
    public static void Plot(string benchDir, JsonNode r)
    {
        var dir = Path.Combine(benchDir, "results");
        Directory.CreateDirectory(dir);
        var agg = r["aggregates"]!.AsArray();
        foreach (var (key, file, title, ylabel) in new[]
        {
            ("true_reward", "preferences.png", "Held-out true reward against label-flip rate ε", "true reward (mean ± half-range over seeds)"),
            ("kl", "preferences_kl.png", "KL(π‖π_ref) on held-out samples against ε", "KL, nats"),
        })
        {
            var plot = new ScottPlot.Plot();
            var palette = new ScottPlot.Palettes.Category10();
            foreach (var m in PreferenceBench.Methods)
            {
                var pts = agg.Where(a => a!["method"]!.GetValue<string>() == m).OrderBy(a => a!["epsilon"]!.GetValue<double>()).ToList();
                double[] xs = pts.Select(a => a!["epsilon"]!.GetValue<double>()).ToArray();
                double[] ys = pts.Select(a => a![$"{key}_mean"]!.GetValue<double>()).ToArray();
                double[] es = pts.Select(a => a![$"{key}_half_range"]!.GetValue<double>()).ToArray();
                var s = plot.Add.Scatter(xs, ys);
                s.Color = palette.GetColor(Array.IndexOf(PreferenceBench.Methods, m));
                s.LegendText = m;
                var e = plot.Add.ErrorBar(xs, ys, es);
                e.Color = s.Color;
            }
            if (key == "true_reward")
            {
                var refMean = r["reference"]!.AsArray().Average(x => x!["true_reward"]!.GetValue<double>());
                var line = plot.Add.HorizontalLine(refMean);
                line.LinePattern = ScottPlot.LinePattern.Dashed;
                line.Color = ScottPlot.Colors.Gray;
                line.LegendText = "reference";
            }
            plot.Title(title);
            plot.XLabel("label-flip rate ε");
            plot.YLabel(ylabel);
            plot.ShowLegend(ScottPlot.Alignment.UpperRight);
            plot.SavePng(Path.Combine(dir, file), 800, 500);
        }
    }
}
