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
        Refresh(benchDir);
    }

    /// <summary>Regenerates the tables in bench/README.md from the JSON already in bench/results (no benchmark runs).</summary>
    public static void Refresh(string benchDir)
    {
        var resultsDir = Path.Combine(benchDir, "results");
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
        if (gen is not null && gen["rows"]!.AsArray().All(r => r!["engine"] is not null))
        {
            sb.AppendLine($"Prompt + decode ({gen["date"]}, {gen["machine"]}, {gen["threads"]} torch threads; 32-token prompts, 64 greedy new tokens, random weights; best of {gen["repeats"] ?? 2} runs):\n");
            sb.AppendLine("| engine | model | params | batch | tokens/s |");
            sb.AppendLine("| --- | --- | ---: | ---: | ---: |");
            foreach (var r in gen["rows"]!.AsArray())
                sb.AppendLine($"| {r!["engine"]} | {r["model"]} | {r["params"]} | {r["batch"]} | {r["tokens_per_s"]} |");
            sb.AppendLine();
            if (gen["speedups"] is JsonArray speedups && speedups.Count > 0)
            {
                sb.AppendLine("Speed-up of the decode fast path over the reference path (the generic forward with a KV cache), same run:\n");
                sb.AppendLine("| model | batch | torch tokens/s | torch-reference tokens/s | speed-up |");
                sb.AppendLine("| --- | ---: | ---: | ---: | ---: |");
                foreach (var r in speedups)
                    sb.AppendLine($"| {r!["model"]} | {r["batch"]} | {r["fast"]} | {r["reference"]} | {r["speedup"]}x |");
                sb.AppendLine();
            }
            LlamaCppTables(sb, gen);
            if (gen["h2o"] is JsonArray h2o && h2o.Count > 0)
            {
                sb.AppendLine("H₂O KV eviction on long completions (heavy hitters + recent window; agreement = share of greedy tokens equal to the full cache's, position by position, before the first difference and overall):\n");
                sb.AppendLine("| model | batch | prompt + new tokens | KV budget | KV cache (MB) | tokens/s | tokens before first difference (mean) | agreement |");
                sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
                foreach (var r in h2o)
                    sb.AppendLine($"| {r!["model"]} | {r["batch"]} | {r["prompt_tokens"]} + {r["new_tokens"]} | {r["kv_budget"]?.ToString() ?? "full"} | {r["kv_cache_mb"]} | {r["tokens_per_s"]} | {r["prefix_agreement_tokens"]} | {(double)r["agreement"]!:P1} |");
                sb.AppendLine();
            }
        }
        if (Read(Path.Combine(resultsDir, "generate-quick.json")) is { } quick)
        {
            sb.AppendLine($"`bench generate --quick` ({quick["date"]}, {quick["machine"]}, {quick["threads"]} threads; best of {quick["repeats"]} alternating runs):\n");
            LlamaCppTables(sb, quick);
        }
        var train = Read(Path.Combine(resultsDir, "train.json"));
        if (train is not null)
        {
            sb.AppendLine($"Training step ({train["date"]}, {train["machine"]}, {train["threads"]} torch threads; fp32 2048² matmul: {train["matmul_gflops"]} GFLOPS):\n");
            sb.AppendLine("| model | trained | params | trained params | batch × seq | tokens/s | GFLOPS | share of matmul GFLOPS | tensor state (MB, computed) |");
            sb.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (var r in train["rows"]!.AsArray())
                sb.AppendLine($"| {r!["model"]} | {r["variant"] ?? "full"} | {r["params"]} | {r["trained_params"] ?? r["params"]} | {r["batch"]} × {r["seq"]} | {r["tokens_per_s"]} | " +
                              $"{r["gflops"]} | {(double)r["fraction_of_matmul"]! * 100:F0}% | {r["state_mb"]?.ToString() ?? "—"} |");
            sb.AppendLine();
        }
        var rl = Read(Path.Combine(resultsDir, "rl.json"));
        if (rl is not null)
        {
            sb.AppendLine($"RL algorithms ({rl["date"]}, {rl["machine"]}; same SFT model, prompts and verifier reward; 64 rollouts per iteration; {rl["budget_seconds"]} s training budget each, evaluation excluded):\n");
            sb.AppendLine("| algorithm | s / iteration | generation s / iteration | peak RSS (MB) | tensor state (MB) | held-out accuracy before → after | iterations |");
            sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (var r in rl["rows"]!.AsArray())
                sb.AppendLine($"| {r!["algorithm"]} | {r["seconds_per_iteration"]} | {r["generate_seconds_per_iteration"]} | {r["peak_rss_mb"]} | {r["tensor_state_mb"]} | {(double)r["accuracy_before"]!:P1} → {(r["accuracy_after"] is null ? "n/a" : ((double)r["accuracy_after"]!).ToString("P1"))} | {r["iterations"]} |");
            sb.AppendLine();
            var rows = rl["rows"]!.AsArray();
            double Get(string algo, string key) => rows.FirstOrDefault(x => x!["algorithm"]!.GetValue<string>() == algo)?[key]?.GetValue<double>() ?? double.NaN;
            sb.AppendLine($"Against the ReMax paper's claims: PPO/ReMax time per iteration = {Get("ppo", "seconds_per_iteration") / Get("remax", "seconds_per_iteration"):F2} (paper: about 2); " +
                          $"ReMax/PPO tensor state = {Get("remax", "tensor_state_mb") / Get("ppo", "tensor_state_mb"):F2} (paper: about 0.5 of GPU memory); " +
                          $"ReMax/PPO peak RSS = {Get("remax", "peak_rss_mb") / Get("ppo", "peak_rss_mb"):F2} (RSS counts the .NET runtime, libtorch and allocator caches as well as tensors).\n");
            if (!double.IsNaN(Get("grpo+dynamic", "seconds_per_iteration")))
                sb.AppendLine($"GRPO with DAPO's dynamic sampling drew {Get("grpo+dynamic", "sampling_rounds_per_iteration"):F2} rounds of prompts per iteration on average " +
                              $"(its generation column counts every round): {Get("grpo+dynamic", "seconds_per_iteration") / Get("grpo", "seconds_per_iteration"):F2}× GRPO's time per iteration.\n");
            sb.AppendLine("![accuracy against training time](results/rl_accuracy.png)\n");
        }
        var preferences = Read(Path.Combine(resultsDir, "preferences.json"));
        if (preferences is not null) sb.Append(PreferenceReport.Table(preferences));
        if (Read(Path.Combine(resultsDir, "preferences-four-way.json")) is { } fourWay) sb.Append(PreferenceReport.FourWayTable(fourWay));
        sb.Append(SearchReport.Tables(Read(Path.Combine(resultsDir, "search.json"))));
        sb.Append(ServeBench.Table(Read(Path.Combine(resultsDir, "serve.json"))));
        sb.Append(MemoryBench.Table(Read(Path.Combine(resultsDir, "memory.json"))));
        sb.Append(RealSizeBench.Table(Read(Path.Combine(resultsDir, "real-size.json"))));
        return sb.ToString();
    }

    /// <summary>The torch vs llama.cpp rows and the fast path's time profile of a generate result.</summary>
    static void LlamaCppTables(StringBuilder sb, JsonNode gen)
    {
        if (gen["llamacpp"] is JsonArray llama && llama.Count > 0)
        {
            sb.AppendLine("The built-in engine against llama.cpp (LLamaSharp 0.30.0, CPU backend, same threads) on the same weights, f32 GGUF + f32 KV cache and (where measured) f16 GGUF + f16 KV cache, measured back to back per row:\n");
            sb.AppendLine("| model | batch | torch tokens/s | llama.cpp f32 tokens/s | torch / llama.cpp f32 | llama.cpp f16 tokens/s | torch / llama.cpp f16 | target | greedy agreement (f32) |");
            sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (var r in llama)
                sb.AppendLine($"| {r!["model"]} | {r["batch"]} | {r["torch_tokens_per_s"]} | {r["llamacpp_tokens_per_s"]} | {r["torch_over_llamacpp"]} | {r["llamacpp_f16_tokens_per_s"]?.ToString() ?? "—"} | {r["torch_over_llamacpp_f16"]?.ToString() ?? "—"} | {((int)r["batch"]! >= 64 ? "≥ 1.0" : (int)r["batch"]! == 1 ? "≥ 0.7" : "—")} | {(r["greedy_prefix_agreement"] is { } a ? ((double)a).ToString("P0") : "—")} |");
            sb.AppendLine();
        }
        if (gen["profile"] is JsonArray profile && profile.Count > 0)
        {
            sb.AppendLine("Where the fast path's time goes (ms per generation of 64 tokens per row, best run):\n");
            sb.AppendLine("| model | batch | session start | prompt | decode steps | µs / step | tensors / step | general step µs / step (tensors) | µs / step without inference mode | pick + host sync | tokens/s |");
            sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (var r in profile)
                sb.AppendLine($"| {r!["model"]} | {r["batch"]} | {r["start_ms"]} | {r["prompt_ms"]} | {r["steps_ms"]} | {r["us_per_step"]} | {r["tensors_per_step"]?.ToString() ?? "—"} | " +
                              $"{(r["general_step_us_per_step"] is { } g ? $"{g} ({r["general_step_tensors_per_step"]})" : "—")} | {r["no_inference_mode_us_per_step"]?.ToString() ?? "—"} | {r["pick_and_sync_ms"]} | {r["tokens_per_s"]} |");
            sb.AppendLine();
        }
    }

    /// <summary>Held-out accuracy against training seconds, one line per algorithm.</summary>
    public static void PlotRl(string benchDir, JsonObject rl)
    {
        var plot = new ScottPlot.Plot();
        foreach (var r in rl["rows"]!.AsArray())
        {
            var pts = r!["curve"]!.AsArray().Select(p => (x: p!["seconds"]!.GetValue<double>(), y: p["accuracy"]!.GetValue<double>())).ToList();
            var s = plot.Add.Scatter(pts.Select(p => p.x).ToArray(), pts.Select(p => p.y).ToArray());
            s.LegendText = r["algorithm"]!.GetValue<string>();
        }
        plot.Title("Held-out greedy accuracy against training time");
        plot.XLabel("training seconds (evaluation excluded)");
        plot.YLabel("accuracy");
        plot.ShowLegend();
        Directory.CreateDirectory(Path.Combine(benchDir, "results"));
        plot.SavePng(Path.Combine(benchDir, "results", "rl_accuracy.png"), 800, 450);
    }

    static JsonNode? Read(string path) => File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) : null;
}
