using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Evaluation;
using Sharpen.Generation;
using Sharpen.LlamaCpp;
using Sharpen.Recipes;
using Sharpen.Rewards;
using Sharpen.Serving;
using Sharpen.Tasks;
using Sharpen.Training;
using Sharpen.Training.Rl;

namespace Sharpen.Bench;

/// <summary>
/// <c>sharpen bench rl --engine torch,llamacpp,openai</c>: the quickstart's GRPO stage (its SFT model trained by the quickstart's
/// own SFT recipe, its fresh prompts, its RL settings: 64 prompts × 8 samples, 48 new tokens at T = 0.7, lr 5e-5, β = 0.01)
/// for a fixed number of iterations with each rollout engine, each in its own process: seconds per iteration (evaluation
/// excluded; weight sync included), generation seconds, the logged engine/trainer gap, and held-out greedy accuracy on the
/// quickstart's 500 held-out problems after the same iterations ± its standard error. The <c>openai</c> row starts
/// <c>sharpen serve</c>'s server in the child process on loopback and syncs weights through its reload endpoint.
/// </summary>
public static class RlEngineBench
{
    /// <summary>The engines measured by default.</summary>
    public static readonly string[] Engines = ["torch", "llamacpp", "openai"];
    /// <summary>Also accepted: <c>llamacpp-async</c>, the llama.cpp engine with <c>rollout.async</c> (generation of the next
    /// iteration overlaps the update: llama.cpp's threads and torch's run at the same time).</summary>
    public static readonly string[] Variants = ["llamacpp-async"];

    /// <summary>
    /// The bench's size: the quickstart's SFT steps, RL prompts per iteration and held-out problems (defaults: the
    /// quickstart's own, 400 / 64 / 500). Smaller values make a quick run for a loaded machine; every engine gets the same.
    /// </summary>
    public sealed record Size(int SftSteps = 400, int Prompts = 64, int HeldOut = 500)
    {
        /// <summary>The quickstart settings with this size.</summary>
        public QuickstartSettings Settings => new QuickstartSettings() with { SftSteps = SftSteps, RlPrompts = Prompts, TestProblems = HeldOut };

        /// <summary>Throws <see cref="ArgumentException"/> naming the bad flag.</summary>
        public Size Validate()
        {
            if (SftSteps < 1) throw new ArgumentException($"--sft-steps must be ≥ 1, got {SftSteps}");
            if (Prompts < 1) throw new ArgumentException($"--prompts must be ≥ 1, got {Prompts}");
            if (HeldOut < 1) throw new ArgumentException($"--held-out must be ≥ 1, got {HeldOut}");
            return this;
        }

        /// <summary>The child's flags for this size.</summary>
        public IEnumerable<string> Args() => ["--sft-steps", Str(SftSteps), "--prompts", Str(Prompts), "--held-out", Str(HeldOut)];
    }

    static string Str(int v) => v.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The driver: the quickstart's SFT model (at <paramref name="size"/>), then one child process per engine; returns the result JSON.</summary>
    public static JsonObject Run(Action<string> log, string workDir, string childCommand, IReadOnlyList<string> engines, int iterations, Size? size = null)
    {
        size = (size ?? new Size()).Validate();
        var root = workDir;                           // the children get --work as given and find their folder the same way
        workDir = EngineWork(workDir, size);
        var sft = PrepareSft(log, workDir, size.Settings);
        var rows = new JsonArray();
        foreach (var engine in engines)
        {
            log($"rl grpo with the {engine} engine: {iterations} iterations in a child process");
            var psi = new ProcessStartInfo(childCommand.Split(' ')[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in childCommand.Split(' ').Skip(1)) psi.ArgumentList.Add(a);
            foreach (var a in new[] { "bench", "rl-one", "--algorithm", "grpo", "--engine", engine, "--iterations", Str(iterations), "--work", root }.Concat(size.Args()))
                psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            p.WaitForExit();
            if (p.ExitCode != 0) throw new InvalidOperationException($"rl with engine {engine} failed ({p.ExitCode}): {stderr.Result}{stdout.Result}");
            var row = JsonNode.Parse(File.ReadAllText(Path.Combine(workDir, "engine-" + engine, "bench.json")))!.AsObject();
            log($"  {engine}: {row["seconds_per_iteration"]} s/iteration (generation {row["generate_seconds_per_iteration"]}), accuracy {row["accuracy_after"]} ± {row["accuracy_standard_error"]}, " +
                $"load average {row["load_average_start"]} → {row["load_average_end"]}");
            rows.Add(row);
        }
        var result = new JsonObject
        {
            ["benchmark"] = "rl-engines", ["iterations"] = iterations, ["start"] = "quickstart sft", ["sft_steps"] = size.SftSteps,
            ["prompts_per_iteration"] = size.Prompts, ["samples_per_prompt"] = size.Settings.RlSamples, ["held_out"] = size.HeldOut,
            ["quick"] = size != new Size(), ["sft_accuracy"] = sft, ["rows"] = rows,
        };
        var torch = rows.FirstOrDefault(r => r!["engine"]!.GetValue<string>() == "torch");
        foreach (var r in rows)
            if (torch is not null && r != torch)
                result[$"ratio_{r!["engine"]}_to_torch"] = Math.Round(r["seconds_per_iteration"]!.GetValue<double>() / torch["seconds_per_iteration"]!.GetValue<double>(), 3);
        return result;
    }

    /// <summary>One engine in this process (what the child runs).</summary>
    public static void RunOne(string engineName, string workDir, int iterations, Size? size = null)
    {
        size = (size ?? new Size()).Validate();
        var settings = size.Settings;
        double? loadStart = LoadAverage();
        workDir = EngineWork(workDir, size);
        var sftRecipe = Quickstart.SftRecipe(settings, workDir);
        var (prompts, test, task) = Data(sftRecipe, iterations, settings);
        var loaded = HfCheckpoint.Load(FinalCheckpoint(workDir), requireTokenizer: true);
        using var policy = loaded.Model;
        var tokenizer = loaded.Tokenizer!;
        var options = Quickstart.RlRecipe(settings, workDir, sftRecipe, FinalCheckpoint(workDir)).RlOptions("quickstart rl")
            with { Iterations = iterations, MaxSeconds = 0, EvalEvery = 0 };
        var outDir = Path.Combine(workDir, "engine-" + engineName);
        if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
        Directory.CreateDirectory(outDir);
        var before = Evaluator.Run(new RolloutEngine(policy, tokenizer), task, test, maxNewTokens: options.MaxNewTokens);

        PolicyHost? host = null;
        OpenAiServer? server = null;
        IRolloutEngine engine;
        switch (engineName)
        {
            case "torch": engine = new RolloutEngine(policy, tokenizer); break;
            // llama.cpp computes with as many threads as the torch engine it is compared with (SHARPEN_NUM_THREADS or the default).
            case "llamacpp" or "llamacpp-async": engine = new LlamaCppEngine(policy, tokenizer, new LlamaCppOptions { Threads = TorchSharp.torch.get_num_threads(), WorkDirectory = Path.Combine(outDir, "gguf") }); break;
            case "openai":
                var serveDir = Path.Combine(outDir, "served");
                HfCheckpoint.SaveAtomically(serveDir, policy, tokenizer);
                const int maxBatch = 64;   // the server's --max-batch: a request's prompts × samples must fit it
                host = PolicyHost.Load(serveDir, new PolicyHostOptions { ModelId = "policy", MaxBatch = maxBatch });
                server = OpenAiServer.StartAsync(host, new ServerOptions { Port = 0 }).GetAwaiter().GetResult();
                engine = new OpenAiEngine(new OpenAiEngineOptions { BaseUrl = new Uri(server.BaseAddress, "v1"), Model = "policy", CheckpointDir = serveDir, PromptsPerRequest = Math.Max(1, maxBatch / options.SamplesPerPrompt) },
                    tokenizer, policy.Config.EosTokenIds);
                break;
            default: throw new ArgumentException($"unknown engine '{engineName}'; bench rl measures {string.Join(", ", Engines.Concat(Variants))}");
        }
        RlResult result;
        JsonObject? llamaTimings = null;
        try
        {
            result = new RlTrainer(policy, tokenizer, options, [new WeightedReward(new TaskReward(task))]) { Task = task, EvalProblems = test, Engine = engine, AsyncRollouts = engineName.EndsWith("-async", StringComparison.Ordinal) }
                .Run(prompts, outDir);
            if (engine is LlamaCppEngine lc) llamaTimings = PerIteration(lc.Timings, result.Iterations);
        }
        finally
        {
            (engine as IDisposable)?.Dispose();
            server?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            host?.Dispose();
        }
        var rows = new RunLog(outDir, append: true).ReadMetrics();
        double Mean(string key) => rows.Where(r => r[key] is not null).Select(r => r[key]!.GetValue<double>()).DefaultIfEmpty(double.NaN).Average();
        // Wall clock of each iteration without evaluation (with rollout.async its phases overlap, so they do not add up).
        var iterSeconds = rows.Select(r => r["timing/iteration"]!.GetValue<double>()).ToList();
        double acc = result.Eval!.Accuracy;
        var json = new JsonObject
        {
            ["engine"] = engineName, ["algorithm"] = "grpo", ["iterations"] = result.Iterations, ["rollouts_per_iteration"] = options.PromptsPerIteration * options.SamplesPerPrompt,
            ["seconds_per_iteration"] = Math.Round(iterSeconds.Average(), 3),
            ["seconds_per_iteration_standard_error"] = iterSeconds.Count < 2 ? null : Math.Round(StdErr(iterSeconds), 3),   // none from one iteration (NaN is not JSON)
            ["generate_seconds_per_iteration"] = Math.Round(Mean("timing/generate"), 3),
            ["update_seconds_per_iteration"] = Math.Round(Mean("timing/update_actor"), 3),
            ["reference_seconds_per_iteration"] = Math.Round(Mean("timing/reference"), 3),   // the reference pass (+ the old log-prob pass when not folded)
            ["llamacpp_seconds_per_iteration"] = llamaTimings,
            ["accuracy_before"] = before.Accuracy, ["accuracy_after"] = acc,
            ["accuracy_standard_error"] = Math.Round(Math.Sqrt(acc * (1 - acc) / result.Eval.N), 4), ["held_out"] = result.Eval.N,
            ["logprob_abs_diff"] = double.IsNaN(Mean("rollout/logprob_abs_diff")) ? null : Mean("rollout/logprob_abs_diff"),
            ["kl_engine_trainer"] = double.IsNaN(Mean("rollout/kl_engine_trainer")) ? null : Mean("rollout/kl_engine_trainer"),
            ["tis_weight_mean"] = double.IsNaN(Mean("rollout/tis_weight_mean")) ? null : Mean("rollout/tis_weight_mean"),
            ["peak_rss_mb"] = Math.Round(Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0, 1),
            ["load_average_start"] = loadStart, ["load_average_end"] = LoadAverage(), ["threads"] = TorchSharp.torch.get_num_threads(),
        };
        File.WriteAllText(Path.Combine(outDir, "bench.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>The llama.cpp engine's own breakdown per iteration (the first load, made before the run, is in the sync numbers).</summary>
    static JsonObject PerIteration(LlamaCppTimings t, int iterations)
    {
        double Per(double s) => Math.Round(s / Math.Max(1, iterations), 4);
        return new JsonObject
        {
            ["gguf_export"] = Per(t.ExportSeconds), ["in_place_rewrite"] = Per(t.InPlaceSeconds), ["model_load"] = Per(t.LoadSeconds),
            ["context_create"] = Per(t.ContextSeconds), ["prompt_decode"] = Per(t.PromptSeconds), ["kv_copy"] = Per(t.CopySeconds),
            ["step_decode"] = Per(t.DecodeSeconds), ["sampling"] = Per(t.SampleSeconds),
            ["reloads"] = t.Reloads, ["in_place_syncs"] = t.InPlaceSyncs, ["contexts"] = t.Contexts,
            ["decode_calls"] = t.DecodeCalls, ["decode_tokens"] = t.DecodeTokens, ["prompt_tokens"] = t.PromptTokens,
        };
    }

    // Its own folder under the shared --work (bench rl's SFT model is a different, shorter run); a smaller size gets its own.
    static string EngineWork(string workDir, Size size) =>
        Path.Combine(workDir, size == new Size() ? "engines" : $"engines-sft{size.SftSteps}-p{size.Prompts}-h{size.HeldOut}");

    /// <summary>The machine's 1-minute load average (Linux /proc/loadavg; null elsewhere).</summary>
    static double? LoadAverage()
    {
        try { return double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    static string FinalCheckpoint(string workDir) => Path.Combine(workDir, "sft", "final");

    /// <summary>Trains the quickstart's SFT model into <paramref name="workDir"/>/sft unless it is there; returns its held-out accuracy when trained now.</summary>
    static JsonNode? PrepareSft(Action<string> log, string workDir, QuickstartSettings settings)
    {
        Directory.CreateDirectory(workDir);
        if (File.Exists(Path.Combine(FinalCheckpoint(workDir), "model.safetensors")))
        {
            var summary = Path.Combine(workDir, "sft", "summary.json");
            return File.Exists(summary) ? JsonNode.Parse(File.ReadAllText(summary))?["eval"]?["accuracy"]?.DeepClone() : null;
        }
        log($"preparing the quickstart's SFT model ({settings.SftSteps} steps) in {Path.Combine(workDir, "sft")}");
        var sft = SftPipeline.Run(Quickstart.SftRecipe(settings, workDir), log);
        log($"sft: held-out greedy accuracy {sft.Eval?.Accuracy:P1}");
        return sft.Eval?.Accuracy;
    }

    /// <summary>The quickstart's RL data: fresh prompts (in neither SFT file) for <paramref name="iterations"/>, its held-out problems, its task.</summary>
    static (List<RlPrompt> Prompts, List<Problem> Test, IVerifiableTask Task) Data(Recipe sftRecipe, int iterations, QuickstartSettings settings)
    {
        var (trainFile, testFile) = DatasetWriter.SplitPaths(Path.Combine(sftRecipe.Output, "data", "countdown.jsonl"));
        var task = sftRecipe.Task!.Build("quickstart");
        var seen = JsonlDataset.LoadSft(trainFile).Items.Concat(JsonlDataset.LoadSft(testFile).Items)
            .Select(e => e.Fields.GetValueOrDefault("id") ?? e.Prompt).ToHashSet();
        int count = iterations * settings.RlPrompts;
        var prompts = task.Generate(count * 3, settings.Seed + 1).Where(p => seen.Add(p.Id)).Take(count).Select(RlPrompt.From).ToList();
        var test = JsonlDataset.LoadSft(testFile).Items.Select(SftPipeline.ToProblem).ToList();
        return (prompts, test, task);
    }

    static double StdErr(IReadOnlyList<double> xs)
    {
        if (xs.Count < 2) return double.NaN;
        double m = xs.Average();
        return Math.Sqrt(xs.Sum(x => (x - m) * (x - m)) / (xs.Count - 1) / xs.Count);
    }
}
