using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Rewards;
using Sharpen.Training.Preference;

namespace Sharpen.Cli.Commands;

/// <summary>
/// <c>sharpen data upo-certainty --reward-model DIR --reward-model DIR [...] --data pairs.jsonl --out FILE [--keep N --seed S]</c>:
/// UPO's label uncertainty from an ensemble of reward models (<see cref="UpoCertainty"/>): each pair gets
/// <c>certainty</c>, <c>label_probability</c> and <c>label_mutual_information</c>, the column <c>preference.loss: upo</c>
/// reads; with <c>--keep</c>, only N pairs drawn by reliable-pair sampling are written. Also writes <c>FILE-stem.summary.json</c>.
/// </summary>
public static class UpoCertaintyCommand
{
    /// <summary>The <c>upo-certainty</c> subcommand of <c>data</c>.</summary>
    public static Command Create()
    {
        var models = new Option<string[]>("--reward-model") { Description = "Reward-model checkpoint folder; repeat it for each ensemble member (at least two)", Required = true };
        var data = new Option<string>("--data") { Description = "Preference pairs JSONL ({prompt, chosen, rejected})", Required = true };
        var output = new Option<string>("--out") { Description = "Output pairs JSONL with the certainty column", Required = true };
        var keep = new Option<int?>("--keep") { Description = "Write only this many pairs, drawn with probability ∝ certainty (UPO's reliable-pair sampling)" };
        var seed = new Option<int>("--seed") { Description = "Seed of the reliable-pair sampling", DefaultValueFactory = _ => 1 };
        var cmd = new Command("upo-certainty", "UPO: label uncertainty of preference pairs from an ensemble of reward models (BALD mutual information), as a certainty column; optional reliable-pair sampling")
            { models, data, output, keep, seed };
        cmd.SetAction(pr => CliErrors.Run(() =>
        {
            var folders = pr.GetValue(models) ?? [];
            if (folders.Length < 2) throw new ArgumentException($"--reward-model: UPO's uncertainty needs at least two reward models, got {folders.Length}");
            var dataPath = pr.GetValue(data)!;
            var pairs = JsonlDataset.LoadPreferences(dataPath).Items;
            if (pairs.Count == 0) throw new ArgumentException($"{dataPath}: no pairs");
            if (pr.GetValue(keep) is { } k && (k < 1 || k > pairs.Count)) throw new ArgumentException($"--keep must be in 1..{pairs.Count} (the pairs in {dataPath}), got {k}");
            var members = new List<ModelReward>();
            try
            {
                foreach (var f in folders) members.Add(new ModelReward(f, name: Path.GetFileName(Path.TrimEndingDirectorySeparator(f))));
                var annotated = UpoCertainty.AnnotateAsync(pairs, members).GetAwaiter().GetResult();
                var written = pr.GetValue(keep) is { } n ? UpoCertainty.SampleReliable(annotated, n, pr.GetValue(seed)) : annotated;
                var outPath = pr.GetValue(output)!;
                UpoCertainty.Write(outPath, written);
                var certainty = annotated.Select(p => double.Parse(p.Fields["certainty"], CultureInfo.InvariantCulture)).ToList();
                var summaryPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(outPath))!, Path.GetFileNameWithoutExtension(outPath) + ".summary.json");
                AtomicFile.WriteAllText(summaryPath, new JsonObject
                {
                    ["pairs"] = pairs.Count, ["written"] = written.Count, ["reward_models"] = new JsonArray([.. folders.Select(f => (JsonNode?)f)]),
                    ["mean_certainty"] = Math.Round(certainty.Average(), 6), ["min_certainty"] = Math.Round(certainty.Min(), 6),
                }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
                Console.WriteLine($"upo-certainty: {pairs.Count} pairs scored by {folders.Length} reward models, mean certainty {certainty.Average():F3}; wrote {written.Count} to {outPath}");
            }
            finally { foreach (var m in members) m.Dispose(); }
            return 0;
        }));
        return cmd;
    }
}
