using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Sharpen.Recipes;
using Sharpen.Torch;

namespace Sharpen.Bench;

/// <summary>
/// Peak resident memory of RL runs, each case in its own child process (so the peak is the run's own): the quickstart's
/// GRPO stage (its model size and RL settings: 64 prompts × 8 samples, 48 new tokens, micro-batch 128, β 0.01, evaluation
/// on 500 held-out problems) and a GRPO step of a 25M-parameter Llama, each with Sharpen's allocator settings
/// (<see cref="ProcessMemory"/>) and with glibc's defaults (<c>SHARPEN_MALLOC=default</c>). The model is freshly
/// initialised rather than the SFT checkpoint, so completions run to the 48-token limit more often than after SFT (the
/// larger case for memory). Peak = VmHWM after the run (the peak RSS of the whole child: runtime, libtorch, data, model).
/// </summary>
public static class MemoryBench
{
    /// <summary>The cases: name → (hidden, intermediate, layers, heads, kv heads, micro-batch, iterations, eval problems).</summary>
    static readonly (string Name, int Hidden, int Ffn, int Layers, int Heads, int KvHeads, int Micro, int Iterations, int EvalProblems)[] Cases =
    [
        ("quickstart-grpo", 192, 512, 4, 6, 6, 128, 1, 500),
        ("grpo-25m", 512, 1536, 8, 8, 4, 32, 1, 100),
    ];

    /// <summary>Target peak RSS per case (issue 16, item 5), MB.</summary>
    static double Target(string name) => name == "grpo-25m" ? 1907.3 : 1430.5;   // 2 GB and 1.5 GB (10⁹ bytes) in MiB, the unit of the RSS columns

    public static JsonObject Run(Action<string> log, string workDir, string childCommand, bool quick = false)
    {
        // The children run at the same time (one torch thread each): peak RSS is per process, and on a shared machine this
        // keeps the wall time down; their seconds are therefore not a speed measurement.
        var runs = new List<(string Case, string Allocator, string OutDir, Process P, Task<string> Out, Task<string> Err)>();
        foreach (var c in Cases)
            foreach (var allocator in new[] { "sharpen", "default" })
            {
                var outDir = Path.Combine(workDir, $"{c.Name}-{allocator}");
                if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
                Directory.CreateDirectory(outDir);
                log($"memory {c.Name} ({allocator} allocator): child process");
                var psi = new ProcessStartInfo(childCommand.Split(' ')[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
                foreach (var a in childCommand.Split(' ').Skip(1)) psi.ArgumentList.Add(a);
                foreach (var a in new[] { "bench", "memory-one", "--case", c.Name, "--work", outDir }.Concat(quick ? ["--quick"] : Array.Empty<string>()))
                    psi.ArgumentList.Add(a);
                if (allocator == "default") psi.Environment["SHARPEN_MALLOC"] = "default";
                else psi.Environment.Remove("SHARPEN_MALLOC");
                psi.Environment["SHARPEN_NUM_THREADS"] = "1";
                var p = Process.Start(psi)!;
                runs.Add((c.Name, allocator, outDir, p, p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync()));
            }
        var rows = new JsonArray();
        foreach (var r in runs)
        {
            r.P.WaitForExit();
            if (r.P.ExitCode != 0) throw new InvalidOperationException($"memory {r.Case} ({r.Allocator}) failed ({r.P.ExitCode}): {r.Err.Result}{r.Out.Result}");
            r.P.Dispose();
            var row = JsonNode.Parse(File.ReadAllText(Path.Combine(r.OutDir, "memory.json")))!.AsObject();
            row["allocator"] = r.Allocator;
            row["target_mb"] = Target(r.Case);
            log($"memory {r.Case} ({r.Allocator}): peak RSS {row["peak_rss_mb"]} MB (target ≤ {Target(r.Case)} MB), end RSS {row["end_rss_mb"]} MB, {row["parameters"]} parameters");
            rows.Add(row);
        }
        return new JsonObject { ["benchmark"] = "memory", ["quick"] = quick, ["rows"] = rows };
    }

    /// <summary>One case in this process: a GRPO run of <c>iterations</c> iterations; writes memory.json into <paramref name="workDir"/>.</summary>
    public static void RunOne(string name, string workDir, bool quick)
    {
        var c = Cases.FirstOrDefault(x => x.Name == name);
        if (c.Name is null) throw new ArgumentException($"unknown memory case '{name}'; expected one of {string.Join(", ", Cases.Select(x => x.Name))}");
        int prompts = quick ? 4 : 64, samples = quick ? 2 : 8, iterations = quick ? 1 : c.Iterations, evalProblems = quick ? 8 : c.EvalProblems;
        var yaml = new StringBuilder()
            .AppendLine("kind: rl").AppendLine($"output: {Path.Combine(workDir, "run")}").AppendLine("seed: 1")
            .AppendLine("model:")
            .AppendLine($"  init: {{ hidden_size: {c.Hidden}, intermediate_size: {c.Ffn}, num_hidden_layers: {c.Layers}, num_attention_heads: {c.Heads}, num_key_value_heads: {c.KvHeads}, max_position_embeddings: 128 }}")
            .AppendLine("  tokenizer: task")
            .AppendLine("task: { name: countdown, min_numbers: 3, max_numbers: 3, max_number: 40, max_target: 100 }")
            .AppendLine($"data: {{ train_problems: {prompts * iterations * 2}, test_problems: {evalProblems} }}")
            .AppendLine($"rl: {{ algorithm: grpo, iterations: {iterations}, prompts_per_iteration: {prompts}, samples_per_prompt: {samples}, learning_rate: 0.00005, beta: 0.01, " +
                        $"temperature: 0.7, max_new_tokens: 48, eval_every: 1, eval_problems: {evalProblems}, micro_batch_size: {c.Micro}, seed: 1 }}")
            .ToString();
        var recipePath = Path.Combine(workDir, "recipe.yaml");
        File.WriteAllText(recipePath, yaml);
        var sw = Stopwatch.StartNew();
        var result = RlPipeline.Run(Recipe.Load(recipePath), Console.WriteLine);
        var metrics = File.ReadAllLines(Path.Combine(workDir, "run", "metrics.jsonl")).Where(l => l.Trim().Length > 0).Select(l => JsonNode.Parse(l)!).ToList();
        var heap = ProcessMemory.HeapStats();
        var row = new JsonObject
        {
            ["case"] = c.Name, ["hidden"] = c.Hidden, ["layers"] = c.Layers, ["parameters"] = result.Parameters,
            ["prompts_x_samples"] = $"{prompts} x {samples}", ["micro_batch"] = c.Micro, ["iterations"] = iterations, ["eval_problems"] = evalProblems,
            ["allocator_settings"] = ProcessMemory.Settings,
            ["peak_rss_mb"] = Mb(ProcessMemory.PeakResidentBytes()), ["end_rss_mb"] = Mb(ProcessMemory.ResidentBytes()),
            ["peak_rss_mb_per_iteration"] = new JsonArray(metrics.Select(m => (JsonNode?)m["memory/peak_rss_mb"]?.GetValue<double>()).ToArray()),
            ["heap_in_use_mb"] = heap is { } h ? Mb(h.InUse) : null, ["heap_free_mb"] = heap is { } h2 ? Mb(h2.Free) : null,
            ["gc_heap_mb"] = Mb(GC.GetTotalMemory(false)), ["seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 1),
        };
        File.WriteAllText(Path.Combine(workDir, "memory.json"), row.ToJsonString());
        Console.WriteLine($"memory {c.Name}: peak RSS {row["peak_rss_mb"]} MB ({ProcessMemory.Settings})");
    }

    static double Mb(long bytes) => Math.Round(bytes / 1048576.0, 1);

    /// <summary>The README table of results/memory.json.</summary>
    public static string Table(JsonNode? memory)
    {
        if (memory?["rows"] is not JsonArray rows || rows.Count == 0) return "";
        var sb = new StringBuilder();
        sb.AppendLine($"Peak memory of GRPO runs ({memory["date"]}, {memory["machine"]}; each case in its own process, peak RSS = VmHWM of the whole process; fresh models, Countdown, 48 new tokens{((bool?)memory["quick"] == true ? "; QUICK smoke sizes, not a result" : "")}):\n");
        sb.AppendLine("| case | params | prompts × samples | micro-batch | iterations (+ eval problems) | allocator | peak RSS (MB) | target (MB) | end RSS (MB) |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |");
        foreach (var r in rows)
            sb.AppendLine($"| {r!["case"]} | {r["parameters"]} | {r["prompts_x_samples"]} | {r["micro_batch"]} | {r["iterations"]} (+{r["eval_problems"]}) | {r["allocator"]} | {r["peak_rss_mb"]} | ≤ {r["target_mb"]} | {r["end_rss_mb"]} |");
        sb.AppendLine();
        return sb.ToString();
    }
}
