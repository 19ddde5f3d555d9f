using System.Text;
using System.Text.Json.Nodes;
using ScottPlot;

namespace Sharpen.Cli.Commands;

/// <summary>Writes report.md with PNG plots (loss; evaluation accuracy) from a run's metrics.jsonl.</summary>
static class RunReport
{
    /// <summary>Writes report.md; <paramref name="lossTitle"/> titles the loss plot drawn from <paramref name="metrics"/> (e.g. "Training loss (SFT)", "Preference loss").</summary>
    public static string Write(string outDir, string title, IReadOnlyList<JsonObject> metrics, IReadOnlyList<string> tableLines,
        IReadOnlyList<JsonObject>? rlMetrics = null, string lossTitle = "Training loss")
    {
        var md = new StringBuilder($"# {title}\n\n");
        foreach (var line in tableLines) md.AppendLine(line);
        md.AppendLine();
        if (Plot(outDir, "loss.png", lossTitle, "loss", metrics, ("loss", "train"), ("eval_loss", "held-out")))
            md.AppendLine("![loss](loss.png)\n");
        if (Plot(outDir, "eval_accuracy.png", "Held-out greedy accuracy (SFT)", "accuracy", metrics, ("eval_accuracy", "accuracy")))
            md.AppendLine("![accuracy](eval_accuracy.png)\n");
        if (rlMetrics is { Count: > 0 })
        {
            if (Plot(outDir, "rl_reward.png", "RL: reward and accuracy per iteration", "value", rlMetrics,
                    ("reward_mean", "mean reward of rollouts"), ("accuracy", "rollout accuracy"), ("eval_accuracy", "held-out greedy accuracy")))
                md.AppendLine("![reward](rl_reward.png)\n");
            if (Plot(outDir, "rl_kl.png", "RL: KL to the reference policy", "KL per sequence", rlMetrics, ("kl", "KL(π‖π_ref)")))
                md.AppendLine("![kl](rl_kl.png)\n");
        }
        md.AppendLine("Raw numbers: `metrics.jsonl` (one row per logged step) and `summary.json`.");
        var path = Path.Combine(outDir, "report.md");
        File.WriteAllText(path, md.ToString());
        return path;
    }

    // Rows read from disk hold JSON numbers; rows built in memory may hold int or double values.
    static double Number(JsonNode n) => n is JsonValue v && v.TryGetValue(out int i) ? i : n.GetValue<double>();

    internal static bool Plot(string outDir, string file, string title, string yLabel, IReadOnlyList<JsonObject> metrics, params (string Key, string Label)[] series)
    {
        var plot = new Plot();
        bool any = false;
        foreach (var (key, label) in series)
        {
            var pts = metrics.Where(r => r[key] is not null && r["step"] is not null)
                .Select(r => (x: Number(r["step"]!), y: Number(r[key]!))).ToList();
            if (pts.Count == 0) continue;
            var s = plot.Add.Scatter(pts.Select(p => p.x).ToArray(), pts.Select(p => p.y).ToArray());
            s.LegendText = label;
            s.MarkerSize = pts.Count > 30 ? 0 : 5;
            any = true;
        }
        if (!any) return false;
        plot.Title(title);
        plot.XLabel("step");
        plot.YLabel(yLabel);
        plot.ShowLegend();
        plot.SavePng(Path.Combine(outDir, file), 800, 450);
        return true;
    }
}
