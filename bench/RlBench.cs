using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Rewards;
using Sharpen.Tasks;
using Sharpen.Training;
using Sharpen.Evaluation;
using Sharpen.Recipes;
using Sharpen.Training.Rl;
using Sharpen.Training.Sft;
using Sharpen.Generation;

namespace Sharpen.Bench;

/// <summary>
/// RL algorithms compared on the same SFT model, prompts and reward (the Countdown verifier), each
/// in its own process so peak memory is its own: seconds per iteration, peak RSS, bytes of tensor
/// state (parameters, gradients, Adam moments of every model the algorithm keeps), and held-out
/// greedy accuracy over a fixed training-time budget.
/// </summary>
public static class RlBench
{
    /// <summary>The rows: five algorithms, then GRPO with DAPO's dynamic sampling and GRPO with an entropy bonus of 0.01.</summary>
    public static readonly string[] Algorithms = ["ppo", "remax", "grpo", "rloo", "reinforce", "grpo+dynamic", "grpo+entropy"];

    /// <summary>The registry algorithm of a row name (<c>grpo+dynamic</c> → <c>grpo</c>).</summary>
    public static string BaseAlgorithm(string row) => row.Split('+')[0];

    /// <summary>Same rollouts per iteration for every algorithm: 64 sequences (16 prompts × 4 samples, or 64 prompts × 1). A
    /// <c>+dynamic</c> row keeps drawing prompts (up to 4 rounds) until 16 groups have unequal rewards; <c>+entropy</c> adds
    /// 0.01 × the token entropy to the objective.</summary>
    public static RlOptions OptionsFor(string row, double budgetSeconds, int seed) => BaseOptions(BaseAlgorithm(row), budgetSeconds, seed) with
    {
        DynamicSampling = row.EndsWith("+dynamic", StringComparison.Ordinal),
        EntropyCoefficient = row.EndsWith("+entropy", StringComparison.Ordinal) ? 0.01 : 0,
    };

    static RlOptions BaseOptions(string algorithm, double budgetSeconds, int seed) => RlOptions.For(algorithm) with
    {
        Iterations = 100_000, MaxSeconds = budgetSeconds, Seed = seed, LearningRate = 5e-5, CriticLearningRate = 2e-4, Temperature = 0.7,
        Beta = algorithm == "topr" ? 0.0 : 0.02, MaxNewTokens = 48, MicroBatchSize = 128, EvalEvery = 5, EvalProblems = 200,
        SamplesPerPrompt = algorithm is "grpo" or "rloo" or "dr_grpo" or "topr" ? 4 : 1,
        PromptsPerIteration = algorithm is "grpo" or "rloo" or "dr_grpo" or "topr" ? 16 : 64,
        Epochs = 1, CriticWarmupIterations = 0,
    };

    /// <summary>The driver: prepares an SFT checkpoint, runs each algorithm in a child process, writes results.</summary>
    public static JsonObject Run(Action<string> log, string workDir, string childCommand, double budgetSeconds = 90, int sftSteps = 300)
    {
        PrepareSft(log, workDir, sftSteps);
        var rows = new JsonArray();
        foreach (var algo in Algorithms)
        {
            var outDir = Path.Combine(workDir, algo);
            if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
            log($"rl {algo}: {budgetSeconds:F0} s of training in a child process");
            var psi = new ProcessStartInfo(childCommand.Split(' ')[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in childCommand.Split(' ').Skip(1)) psi.ArgumentList.Add(a);
            foreach (var a in new[] { "bench", "rl-one", "--algorithm", algo, "--work", workDir, "--budget", budgetSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) })
                psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            p.WaitForExit();
            if (p.ExitCode != 0) throw new InvalidOperationException($"rl {algo} failed ({p.ExitCode}): {stderr.Result}{stdout.Result}");
            var result = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "bench.json")))!.AsObject();
            log($"rl {algo}: {result["seconds_per_iteration"]} s/iteration, peak RSS {result["peak_rss_mb"]} MB, tensor state {result["tensor_state_mb"]} MB, accuracy {result["accuracy_before"]} → {result["accuracy_after"]}");
            rows.Add(result);
        }
        return new JsonObject { ["benchmark"] = "rl", ["budget_seconds"] = budgetSeconds, ["rows"] = rows };
    }

    /// <summary>Trains the shared SFT model into <paramref name="workDir"/>/sft unless it is there.</summary>
    public static void PrepareSft(Action<string> log, string workDir, int sftSteps = 300)
    {
        Directory.CreateDirectory(workDir);
        var sftDir = Path.Combine(workDir, "sft");
        if (!File.Exists(Path.Combine(sftDir, "final", "model.safetensors")))
        {
            log($"preparing the SFT model ({sftSteps} steps) in {sftDir}");
            SftPipeline.Run(SftRecipe(sftDir, sftSteps), log);
        }
    }

    /// <summary>RL prompts (fresh problems, none in the SFT files), the 200 held-out problems and the task.</summary>
    public static (List<RlPrompt> Prompts, List<Problem> Test, IVerifiableTask Task) Data(string workDir)
    {
        var sftDir = Path.Combine(workDir, "sft");
        var (trainFile, testFile) = DatasetWriter.SplitPaths(Path.Combine(sftDir, "data", "countdown.jsonl"));
        var task = TaskRegistry.Create("countdown", Countdown);
        // Fresh problems for RL (none in the SFT training or held-out files): RL on the SFT prompts mostly rewards recall.
        var seen = JsonlDataset.LoadSft(trainFile).Items.Concat(JsonlDataset.LoadSft(testFile).Items)
            .Select(e => e.Fields.GetValueOrDefault("id") ?? e.Prompt).ToHashSet();
        var prompts = task.Generate(30_000, seed: 2).Where(p => seen.Add(p.Id)).Select(RlPrompt.From).ToList();
        var test = JsonlDataset.LoadSft(testFile).Items.Select(SftPipeline.ToProblem).Take(200).ToList();
        return (prompts, test, task);
    }

    /// <summary>One algorithm in this process (what the child runs).</summary>
    public static void RunOne(string algorithm, string workDir, double budgetSeconds)
    {
        var sftDir = Path.Combine(workDir, "sft");
        var (prompts, test, task) = Data(workDir);
        var loaded = HfCheckpoint.Load(Path.Combine(sftDir, "final"), requireTokenizer: true);
        using var policy = loaded.Model;
        var options = OptionsFor(algorithm, budgetSeconds, seed: 1);
        var before = Evaluator.Run(new Generation.RolloutEngine(policy, loaded.Tokenizer!), task, test, maxNewTokens: 48);
        var outDir = Path.Combine(workDir, algorithm);
        var result = new RlTrainer(policy, loaded.Tokenizer!, options, [new WeightedReward(new TaskReward(task))]) { Task = task, EvalProblems = test }
            .Run(prompts, outDir);
        var rows = new RunLog(outDir, append: true).ReadMetrics();
        var iterSeconds = rows.Select(r => r["timing/generate"]!.GetValue<double>() + r["timing/score"]!.GetValue<double>() +
            r["timing/reference"]!.GetValue<double>() + r["timing/advantage"]!.GetValue<double>() + r["timing/update_actor"]!.GetValue<double>() +
            r["timing/update_critic"]!.GetValue<double>()).ToList();
        var spec = RlAlgorithms.Get(BaseAlgorithm(algorithm));
        long p = policy.ParameterCount();
        long stateFloats = 4 * p + (options.Beta > 0 && spec.Kl != KlPlacement.None ? p : 0) + (spec.UsesCritic ? 4 * (p + policy.Config.HiddenSize + 1) : 0);
        var curve = new JsonArray { new JsonObject { ["seconds"] = 0.0, ["accuracy"] = before.Accuracy } };
        foreach (var r in rows.Where(r => r["eval_accuracy"] is not null))
            curve.Add(new JsonObject { ["seconds"] = r["train_seconds"]!.GetValue<double>(), ["accuracy"] = r["eval_accuracy"]!.GetValue<double>() });
        var json = new JsonObject
        {
            ["algorithm"] = algorithm, ["iterations"] = result.Iterations, ["rollouts_per_iteration"] = options.PromptsPerIteration * options.SamplesPerPrompt,
            ["seconds_per_iteration"] = Math.Round(iterSeconds.Average(), 3),
            ["generate_seconds_per_iteration"] = Math.Round(rows.Average(r => r["timing/generate"]!.GetValue<double>()), 3),
            ["peak_rss_mb"] = Math.Round(Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0, 1),
            ["tensor_state_mb"] = Math.Round(stateFloats * 4 / 1048576.0, 2),
            ["accuracy_before"] = before.Accuracy, ["accuracy_after"] = result.Eval?.Accuracy, ["curve"] = curve,
        };
        if (options.DynamicSampling)
            json["sampling_rounds_per_iteration"] = Math.Round(rows.Average(r => r["sampling_rounds"]!.GetValue<double>()), 2);
        File.WriteAllText(Path.Combine(outDir, "bench.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    static readonly CountdownOptions Countdown = new() { MinNumbers = 3, MaxNumbers = 3, MaxNumber = 40, MaxTarget = 100 };

    static Recipe SftRecipe(string output, int steps) => new()
    {
        Kind = "sft", Output = output, Seed = 1,
        Model = new ModelSection { Init = new JsonObject { ["hidden_size"] = 192, ["intermediate_size"] = 512, ["num_hidden_layers"] = 4, ["num_attention_heads"] = 6, ["max_position_embeddings"] = 128 } },
        Task = new TaskSection
        {
            Name = "countdown",
            Options = new()
            {
                ["min_numbers"] = JsonSerializer.SerializeToElement(3), ["max_numbers"] = JsonSerializer.SerializeToElement(3),
                ["max_number"] = JsonSerializer.SerializeToElement(40), ["max_target"] = JsonSerializer.SerializeToElement(100),
            },
        },
        Data = new DataSection { TrainProblems = 20000, TestProblems = 200 },
        Sft = new SftOptions { MaxSteps = steps, BatchSize = 64, LearningRate = 2e-3, WarmupSteps = 30, MinLrRatio = 0.05, EvalEvery = 0, CheckpointEvery = 0, MaxSequenceLength = 96 },
        Eval = new EvalSection { Problems = 200, MaxNewTokens = 48 },
    };
}
