using System.CommandLine;
using Sharpen.Bench;
using Sharpen.Torch;

namespace Sharpen.Cli.Commands;

/// <summary><c>sharpen bench generate|train|rl|preferences|preferences-maxmin|search|serve|soak|memory|real-size</c>: the benchmark programs in bench/.</summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var dir = new Option<DirectoryInfo>("--dir") { Description = "The bench/ folder to write results/ and README.md into", DefaultValueFactory = _ => new DirectoryInfo("bench") };
        var genQuick = new Option<bool>("--quick") { Description = "Only the torch vs llama.cpp rows (results/generate-quick.json), no reference path or H₂O" };
        var genProfile = new Option<bool>("--profile") { Description = "Only the fast path's time profile at batch 1 and 64 (results/generate-profile.json): start, prompt, µs per decode step, tensors created per step" };
        var genRepeats = new Option<int>("--repeats") { Description = "Timed runs per configuration (the best is kept; torch and llama.cpp alternate)", DefaultValueFactory = _ => 3 };
        var gen = new Command("generate", "Prompt + decode tokens/s of the built-in engine (fast path and reference) and of llama.cpp on the same weights, on a Llama 26M and a Qwen2 9.8M at batch 1/16/64, and H₂O KV eviction on 256-token completions.") { dir, genQuick, genProfile, genRepeats };
        gen.SetAction(pr => CliErrors.Run(() =>
        {
            if (pr.GetValue(genRepeats) < 1) throw new ArgumentException($"--repeats must be ≥ 1, got {pr.GetValue(genRepeats)}");
            BenchReport.Write(pr.GetValue(dir)!.FullName, GenerateBench.Run(Console.WriteLine, repeats: pr.GetValue(genRepeats), quick: pr.GetValue(genQuick), profileOnly: pr.GetValue(genProfile)));
            return 0;
        }));
        var train = new Command("train", "Training tokens/s and GFLOPS against the measured fp32 matmul GFLOPS.") { dir };
        train.SetAction(pr => CliErrors.Run(() => { BenchReport.Write(pr.GetValue(dir)!.FullName, TrainBench.Run(Console.WriteLine)); return 0; }));
        var budget = new Option<double>("--budget") { Description = "Training seconds per algorithm", DefaultValueFactory = _ => 90 };
        var work = new Option<string>("--work") { Description = "Scratch folder (SFT model, per-algorithm runs)", DefaultValueFactory = _ => "runs/bench-rl" };
        var engines = new Option<string?>("--engine") { Description = "Compare rollout engines instead (comma-separated: torch,llamacpp,openai): GRPO for --iterations each; results in results/rl-engines.json" };
        var iterations = new Option<int>("--iterations") { Description = "With --engine: RL iterations per engine", DefaultValueFactory = _ => 20 };
        var sftSteps = new Option<int>("--sft-steps") { Description = "With --engine: SFT steps of the starting policy (the quickstart's: 400)", DefaultValueFactory = _ => 400 };
        var prompts = new Option<int>("--prompts") { Description = "With --engine: prompts per RL iteration, 8 samples each (the quickstart's: 64)", DefaultValueFactory = _ => 64 };
        var heldOut = new Option<int>("--held-out") { Description = "With --engine: held-out problems of the accuracy (the quickstart's: 500)", DefaultValueFactory = _ => 500 };
        var rl = new Command("rl", "PPO, ReMax, GRPO, RLOO, REINFORCE, and GRPO with dynamic sampling or an entropy bonus, on one SFT model: s/iteration, peak memory, accuracy over a time budget; with --engine, GRPO per rollout engine.") { dir, budget, work, engines, iterations, sftSteps, prompts, heldOut };
        rl.SetAction(pr => CliErrors.Run(() =>
        {
            var self = Environment.ProcessPath!;
            var entry = System.Reflection.Assembly.GetEntryAssembly()!.Location;
            var child = Path.GetFileNameWithoutExtension(self) == "dotnet" ? $"{self} {entry}" : self;
            if (pr.GetValue(engines) is { } list)
            {
                var names = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (names.FirstOrDefault(n => !RlEngineBench.Engines.Contains(n) && !RlEngineBench.Variants.Contains(n)) is { } bad)
                    throw new ArgumentException($"--engine: unknown engine '{bad}'; bench rl measures {string.Join(", ", RlEngineBench.Engines.Concat(RlEngineBench.Variants))}");
                var engineResult = RlEngineBench.Run(Console.WriteLine, pr.GetValue(work)!, child, names, pr.GetValue(iterations),
                    new RlEngineBench.Size(pr.GetValue(sftSteps), pr.GetValue(prompts), pr.GetValue(heldOut)));
                BenchReport.Write(pr.GetValue(dir)!.FullName, engineResult);
                return 0;
            }
            var result = RlBench.Run(Console.WriteLine, pr.GetValue(work)!, child, pr.GetValue(budget));
            BenchReport.PlotRl(pr.GetValue(dir)!.FullName, result);
            BenchReport.Write(pr.GetValue(dir)!.FullName, result);
            return 0;
        }));
        var quick = new Option<bool>("--quick") { Description = "Tiny sizes (2 ε values, 2 seeds, a few steps): a smoke test, not a result" };
        var prefWork = new Option<string>("--work") { Description = "Scratch folder (reference models, per-method runs, metrics.jsonl, summary.json)", DefaultValueFactory = _ => "runs/bench-preferences" };
        var epsilons = new Option<string?>("--epsilons") { Description = "Comma-separated label-flip rates (default 0,0.1,0.2,0.3,0.4)" };
        var seeds = new Option<int?>("--seeds") { Description = "Seeds per configuration (≥ 2; default 3)" };
        var fourWay = new Option<bool>("--four-way") { Description = "Tajwar et al.'s four-way comparison instead (offline vs on-policy × without vs with a negative gradient: sft, dpo, online_filtered_bc, online_dpo; default ε = 0): writes results/preferences-four-way.json" };
        var prefs = new Command("preferences", "SFT, DPO, cDPO, IPO, rDPO, SimPO and online DPO on a lexicon task with flipped labels: held-out true reward and KL against ε.") { dir, quick, prefWork, epsilons, seeds, fourWay };
        prefs.SetAction(pr => CliErrors.Run(() =>
        {
            var options = pr.GetValue(quick) ? PreferenceBenchOptions.Quick : new PreferenceBenchOptions();
            if (pr.GetValue(fourWay)) options = options with { Methods = PreferenceBench.FourWayMethods, Epsilons = [0.0] };
            if (pr.GetValue(epsilons) is { } eps) options = options with { Epsilons = PreferenceBenchOptions.ParseEpsilons(eps) };
            if (pr.GetValue(seeds) is { } n) options = options with { Seeds = n };
            // Models this small gain nothing from intra-op threads, and on a shared machine they lose ~20x to oversubscription.
            Sharpen.Torch.TorchRuntime.EnsureLoaded();
            if (Environment.GetEnvironmentVariable("SHARPEN_NUM_THREADS") is null) TorchSharp.torch.set_num_threads(1);
            var result = PreferenceBench.Run(Console.WriteLine, pr.GetValue(prefWork)!, options);
            result["quick"] = pr.GetValue(quick);
            BenchReport.Write(pr.GetValue(dir)!.FullName, result);
            if (!options.FourWay) PreferenceReport.Plot(pr.GetValue(dir)!.FullName, result);
            return 0;
        }));
        var prefsPlot = new Command("preferences-plot", "Redraws results/preferences*.png from results/preferences.json (no training).") { dir };
        prefsPlot.SetAction(pr => CliErrors.Run(() =>
        {
            var path = Path.Combine(pr.GetValue(dir)!.FullName, "results", "preferences.json");
            if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no results; run `sharpen bench preferences` first");
            PreferenceReport.Plot(pr.GetValue(dir)!.FullName, System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!);
            return 0;
        }));
        var maxminWork = new Option<string>("--work") { Description = "Scratch folder (metrics.jsonl, summary.json)", DefaultValueFactory = _ => "runs/bench-preferences-maxmin" };
        var maxminSeeds = new Option<int?>("--seeds") { Description = "Seeds (default 3)" };
        var maxmin = new Command("preferences-maxmin", "MaxMin-RLHF vs single-reward RLHF with two user groups of conflicting tastes: each group's true reward.") { dir, maxminWork, maxminSeeds };
        maxmin.SetAction(pr => CliErrors.Run(() =>
        {
            var options = new MaxMinBenchOptions();
            if (pr.GetValue(maxminSeeds) is { } n) options = options with { Seeds = n };
            Sharpen.Torch.TorchRuntime.EnsureLoaded();
            if (Environment.GetEnvironmentVariable("SHARPEN_NUM_THREADS") is null) TorchSharp.torch.set_num_threads(1);
            BenchReport.Write(pr.GetValue(dir)!.FullName, MaxMinBench.Run(Console.WriteLine, pr.GetValue(maxminWork)!, options));
            return 0;
        }));
        var algorithm = new Option<string>("--algorithm") { Required = true };
        var oneEngine = new Option<string?>("--engine");
        var one = new Command("rl-one", "One algorithm of `bench rl` (run by it in a child process).") { algorithm, budget, work, oneEngine, iterations, sftSteps, prompts, heldOut };
        one.Hidden = true;
        one.SetAction(pr => CliErrors.Run(() =>
        {
            if (pr.GetValue(oneEngine) is { } engineName)
                RlEngineBench.RunOne(engineName, pr.GetValue(work)!, pr.GetValue(iterations), new RlEngineBench.Size(pr.GetValue(sftSteps), pr.GetValue(prompts), pr.GetValue(heldOut)));
            else RlBench.RunOne(pr.GetValue(algorithm)!, pr.GetValue(work)!, pr.GetValue(budget));
            return 0;
        }));
        var search = SearchCommand(dir);
        var serveQuick = new Option<bool>("--quick") { Description = "A tiny smoke run (small model, 1 and 4 clients), not a result" };
        var serveModel = new Option<string>("--model") { Description = $"The served model: {string.Join(" or ", ServeBench.Models)} (see bench/README.md)", DefaultValueFactory = _ => ServeBench.Models[0] };
        var serve = new Command("serve", "sharpen serve on loopback with 1, 8 and 64 concurrent clients: tokens/s, p50/p99 latency, peak RSS, beside the engine run directly.") { dir, serveQuick, serveModel };
        serve.SetAction(pr => CliErrors.Run(() =>
        {
            var result = ServeBench.Run(Console.WriteLine, pr.GetValue(serveQuick), model: pr.GetValue(serveModel)!);
            BenchReport.Write(pr.GetValue(dir)!.FullName, result);
            return 0;
        }));
        var soakMinutes = new Option<double>("--minutes") { Description = "Wall-clock minutes of the disturbed run (the undisturbed run takes about as long again)", DefaultValueFactory = _ => 30 };
        var soakWork = new Option<string>("--work") { Description = "Scratch folder (starting policy, the disturbed and the undisturbed run)", DefaultValueFactory = _ => "runs/bench-soak" };
        var soak = new Command("soak", "GRPO against a reward server that fails 10% of requests and is restarted twice, SIGKILL + --resume every minutes/6; final weights vs an undisturbed run, RSS over time, retried requests.") { dir, soakMinutes, soakWork };
        soak.SetAction(pr => CliErrors.Run(() =>
        {
            var self = Environment.ProcessPath!;
            var entry = System.Reflection.Assembly.GetEntryAssembly()!.Location;
            var child = Path.GetFileNameWithoutExtension(self) == "dotnet" ? $"{self} {entry}" : self;
            BenchReport.Write(pr.GetValue(dir)!.FullName, SoakBench.Run(Console.WriteLine, pr.GetValue(soakWork)!, child, pr.GetValue(soakMinutes)));
            return 0;
        }));
        var memQuick = new Option<bool>("--quick") { Description = "Tiny sizes (4 prompts × 2 samples, 1 iteration): a smoke test, not a result" };
        var memWork = new Option<string>("--work") { Description = "Scratch folder (one run per case)", DefaultValueFactory = _ => "runs/bench-memory" };
        var memory = new Command("memory", "Peak RSS of the quickstart's GRPO stage and of a 25M model's GRPO step, each in a child process, with Sharpen's allocator settings and glibc's defaults.") { dir, memQuick, memWork };
        memory.SetAction(pr => CliErrors.Run(() =>
        {
            var self = Environment.ProcessPath!;
            var entry = System.Reflection.Assembly.GetEntryAssembly()!.Location;
            var child = Path.GetFileNameWithoutExtension(self) == "dotnet" ? $"{self} {entry}" : self;
            BenchReport.Write(pr.GetValue(dir)!.FullName, MemoryBench.Run(Console.WriteLine, pr.GetValue(memWork)!, child, pr.GetValue(memQuick)));
            return 0;
        }));
        var memCase = new Option<string>("--case") { Required = true };
        var memOne = new Command("memory-one", "One case of `bench memory` (run by it in a child process).") { memCase, memWork, memQuick };
        memOne.Hidden = true;
        memOne.SetAction(pr => CliErrors.Run(() => { MemoryBench.RunOne(pr.GetValue(memCase)!, pr.GetValue(memWork)!, pr.GetValue(memQuick)); return 0; }));
        var rsQuick = new Option<bool>("--quick") { Description = "Fewer tokens (8 new tokens, 1 GRPO iteration): a smoke test, not a result" };
        var rsKeep = new Option<bool>("--keep") { Description = "Keep the written checkpoint (~1 GB) in --work instead of deleting it" };
        var rsWork = new Option<string>("--work") { Description = "Scratch folder for the checkpoint (deleted afterwards)", DefaultValueFactory = _ => Path.Combine(Path.GetTempPath(), "sharpen-bench-real-size") };
        var realSize = new Command("real-size", "Random weights in Qwen2.5-0.5B's exact shapes, written as sharded BF16 safetensors with a tokenizer of its size; a child process loads them, generates and takes LoRA GRPO steps: load time, peak RSS, tokens/s, step time.") { dir, rsQuick, rsKeep, rsWork };
        realSize.SetAction(pr => CliErrors.Run(() =>
        {
            var self = Environment.ProcessPath!;
            var entry = System.Reflection.Assembly.GetEntryAssembly()!.Location;
            var child = Path.GetFileNameWithoutExtension(self) == "dotnet" ? $"{self} {entry}" : self;
            BenchReport.Write(pr.GetValue(dir)!.FullName, RealSizeBench.Run(Console.WriteLine, pr.GetValue(rsWork)!, child, pr.GetValue(rsQuick), pr.GetValue(rsKeep)));
            return 0;
        }));
        var rsModel = new Option<string>("--model") { Required = true };
        var realSizeOne = new Command("real-size-one", "The child of `bench real-size`.") { rsModel, rsWork, rsQuick };
        realSizeOne.Hidden = true;
        realSizeOne.SetAction(pr => CliErrors.Run(() => { RealSizeBench.RunChild(pr.GetValue(rsModel)!, pr.GetValue(rsWork)!, pr.GetValue(rsQuick)); return 0; }));
        var report = new Command("report", "Regenerate the tables in bench/README.md from bench/results (runs nothing).") { dir };
        report.SetAction(pr => CliErrors.Run(() => { BenchReport.Refresh(pr.GetValue(dir)!.FullName); return 0; }));
        var fdpg = new Command("fdpg", "f-DPG's divergences on a toy target (a base restricted to passing outcomes): alignment, forward KL to the target, entropy.") { dir };
        fdpg.SetAction(pr => CliErrors.Run(() => { BenchReport.Write(pr.GetValue(dir)!.FullName, DistributionBench.RunFdpg(Console.WriteLine)); return 0; }));
        var diversity = new Command("diversity", "Flow of Reasoning (trajectory balance) vs GRPO at equal samples on a toy with 10 correct outcomes: distinct correct solutions.") { dir };
        diversity.SetAction(pr => CliErrors.Run(() => { BenchReport.Write(pr.GetValue(dir)!.FullName, DistributionBench.RunDiversity(Console.WriteLine)); return 0; }));
        return new Command("bench", "Benchmarks (results in bench/results, table in bench/README.md).") { gen, train, rl, prefs, prefsPlot, maxmin, one, search, serve, report, soak, memory, memOne, realSize, realSizeOne, fdpg, diversity, SearchSizesCommand(dir), Game24DiversityCommand(dir) };
    }

    // `bench search`: accuracy against generated-token budget for every search strategy, and the PRMs it needs trained at equal labelling compute.
    static Command SearchCommand(Option<DirectoryInfo> dir)
    {
        var policy = new Option<string?>("--policy") { Description = "Policy folder (default: runs/quickstart/rl/final, else runs/quickstart/sft/final, else the quickstart's SFT stage trained into --work)" };
        var problems = new Option<int>("--problems") { Description = "Most held-out problems", DefaultValueFactory = _ => 200 };
        var quick = new Option<bool>("--quick") { Description = "A tiny smoke run (2 budgets, a few problems, 2 PRM steps)" };
        var minutes = new Option<double>("--max-minutes") { Description = "Wall-clock target; the search stops taking new problems after it", DefaultValueFactory = _ => 25 };
        var work = new Option<string>("--work") { Description = "Scratch folder (labels, PRMs)", DefaultValueFactory = _ => "runs/bench-search" };
        var search = new Command("search", "Accuracy against generated-token budget: greedy, best-of-N (verifier, PRM, implicit PRM), vote, weighted vote, beam, MCTS; MC vs implicit PRM at equal labelling compute.")
            { dir, policy, problems, quick, minutes, work };
        search.SetAction(pr => CliErrors.Run(() =>
        {
            var settings = new SearchBenchSettings
            {
                Policy = pr.GetValue(policy), Problems = pr.GetValue(problems), Quick = pr.GetValue(quick), MaxMinutes = pr.GetValue(minutes), WorkDir = pr.GetValue(work)!,
            };
            var result = SearchBench.Run(Console.WriteLine, settings, QuickstartCommand.SftRecipe(new QuickstartCommand.Settings()));
            SearchReport.Plot(pr.GetValue(dir)!.FullName, result);
            BenchReport.Write(pr.GetValue(dir)!.FullName, result);
            return 0;
        }));
        return search;
    }
    // `bench search-sizes`: the policy-size axis of test-time scaling, two SFT policies at equal counted inference FLOPs.
    static Command SearchSizesCommand(Option<DirectoryInfo> dir)
    {
        var problems = new Option<int>("--problems") { Description = "Most held-out problems", DefaultValueFactory = _ => 60 };
        var steps = new Option<int>("--sft-steps") { Description = "SFT steps of each policy", DefaultValueFactory = _ => 300 };
        var quick = new Option<bool>("--quick") { Description = "A tiny smoke run (4 SFT steps, 3 problems, 2 budgets)" };
        var minutes = new Option<double>("--max-minutes") { Description = "Wall-clock target of the search phase", DefaultValueFactory = _ => 10 };
        var work = new Option<string>("--work") { Description = "Scratch folder (the two policies, reused when present)", DefaultValueFactory = _ => "runs/bench-search-sizes" };
        var cmd = new Command("search-sizes", "Two policy sizes (SFT on the quickstart's Countdown) searched at equal counted inference FLOPs: greedy, vote, best-of-N, DVTS, compute-optimal.")
            { dir, problems, steps, quick, minutes, work };
        cmd.SetAction(pr => CliErrors.Run(() =>
        {
            var settings = new SearchSizesSettings
            {
                Problems = pr.GetValue(problems), SftSteps = pr.GetValue(steps), Quick = pr.GetValue(quick), MaxMinutes = pr.GetValue(minutes), WorkDir = pr.GetValue(work)!,
            };
            BenchReport.Write(pr.GetValue(dir)!.FullName, SearchSizesBench.Run(Console.WriteLine, settings, new QuickstartCommand.Settings()));
            return 0;
        }));
        return cmd;
    }
    // `bench diversity-game24`: Flow of Reasoning vs GRPO on Game24 with a tiny SFT policy, distinct correct solutions per problem.
    static Command Game24DiversityCommand(Option<DirectoryInfo> dir)
    {
        var steps = new Option<int>("--sft-steps") { Description = "SFT steps of the starting policy", DefaultValueFactory = _ => 300 };
        var iterations = new Option<int>("--iterations") { Description = "RL iterations of each method (8 prompts × 8 samples)", DefaultValueFactory = _ => 20 };
        var problems = new Option<int>("--problems") { Description = "Held-out problems sampled after training", DefaultValueFactory = _ => 30 };
        var samples = new Option<int>("--samples") { Description = "Samples per held-out problem", DefaultValueFactory = _ => 32 };
        var quick = new Option<bool>("--quick") { Description = "A tiny smoke run" };
        var work = new Option<string>("--work") { Description = "Scratch folder (the SFT policy is reused when present)", DefaultValueFactory = _ => "runs/bench-diversity-game24" };
        var cmd = new Command("diversity-game24", "Flow of Reasoning (trajectory balance) vs GRPO on Game24 from a tiny SFT policy at equal samples: distinct correct solutions per held-out problem.")
            { dir, steps, iterations, problems, samples, quick, work };
        cmd.SetAction(pr => CliErrors.Run(() =>
        {
            var settings = new Game24DiversitySettings
            {
                SftSteps = pr.GetValue(steps), Iterations = pr.GetValue(iterations), Problems = pr.GetValue(problems), Samples = pr.GetValue(samples),
                Quick = pr.GetValue(quick), WorkDir = pr.GetValue(work)!,
            };
            BenchReport.Write(pr.GetValue(dir)!.FullName, Game24DiversityBench.Run(Console.WriteLine, settings));
            return 0;
        }));
        return cmd;
    }
}
