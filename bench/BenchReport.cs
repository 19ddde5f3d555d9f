using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sharpen.Bench;

/// <summary>Writes results to bench/results/*.json and regenerates the table in bench/README.md.</summary>
public static class BenchReport
{
    const string Begin = "<!-- results:begin -->", End = "<!-- results:end -->";

    public static void Write(string benchDir, JsonObject result)
    {
        var resultsDir = Path.Combine(benchDir, "results");
        Directory.CreateDirectory(resultsDir);
        result["machine"] = $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}";
        result["date"] = DateTime.UtcNow.ToString("yyyy-MM-dd");
        File.WriteAllText(Path.Combine(resultsDir, $"{result["benchmark"]}.json"), result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var readme = Path.Combine(benchDir, "README.md");
        if (!File.Exists(readme)) return;
        var text = File.ReadAllText(readme);
        int b = text.IndexOf(Begin, StringComparison.Ordinal), e = text.IndexOf(End, StringComparison.Ordinal);
        if (b < 0 || e < b) return;
        text = text[..(b + Begin.Length)] + "\n" + Tables(resultsDir) + text[e..];
        File.WriteAllText(readme, text);
    }

    static string Tables(string resultsDir)
    {
        var sb = new StringBuilder();
        var gen = Read(Path.Combine(resultsDir, "generate.json"));
        if (gen is not null)
        {
            sb.AppendLine($"Decode ({gen["date"]}, {gen["machine"]}, {gen["threads"]} torch threads; 32-token prompt, 64 new tokens):\n");
            sb.AppendLine("| model | params | batch | tokens/s, KV cache | tokens/s, recompute | KV-cache speed-up |");
            sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: |");
            foreach (var r in gen["rows"]!.AsArray())
                sb.AppendLine($"| {r!["model"]} | {r["params"]} | {r["batch"]} | {r["tokens_per_s_kv_cache"]} | {r["tokens_per_s_recompute"]} | {r["kv_cache_speedup"]}x |");
            sb.AppendLine();
        }
        var train = Read(Path.Combine(resultsDir, "train.json"));
        if (train is not null)
        {
            sb.AppendLine($"Training step ({train["date"]}, {train["machine"]}, {train["threads"]} torch threads; fp32 2048² matmul: {train["matmul_gflops"]} GFLOPS):\n");
            sb.AppendLine("| model | params | batch × seq | tokens/s | GFLOPS | share of matmul GFLOPS |");
            sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: |");
            foreach (var r in train["rows"]!.AsArray())
                sb.AppendLine($"| {r!["model"]} | {r["params"]} | {r["batch"]} × {r["seq"]} | {r["tokens_per_s"]} | {r["gflops"]} | {(double)r["fraction_of_matmul"]! * 100:F0}% |");
            sb.AppendLine();
        }
        return sb.ToString();
    }

    static JsonNode? Read(string path) => File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) : null;
}
