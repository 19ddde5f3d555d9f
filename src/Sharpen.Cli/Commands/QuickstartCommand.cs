using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tasks;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Evaluation;
using Sharpen.Recipes;
using Sharpen.Training.Sft;

namespace Sharpen.Cli.Commands;

/// <summary>
/// <c>sharpen quickstart</c>: a small policy learns Countdown on the CPU. Stages: make data →
/// initialise a model → SFT → evaluate on held-out problems → report. Each stage adds a row to
/// summary.json's <c>stages</c>; an RL stage slots in after SFT.
/// </summary>
public static class QuickstartCommand
{
    /// <summary>Knobs of the quickstart (defaults: the 10-minute run on 2 cores).</summary>
    public sealed record Settings
    {
        public string Out { get; init; } = "runs/quickstart";
        public int TrainProblems { get; init; } = 20000;
        public int TestProblems { get; init; } = 500;
        public int SftSteps { get; init; } = 400;
        public int BatchSize { get; init; } = 64;
        public int HiddenSize { get; init; } = 192;
        public int Layers { get; init; } = 4;
        public int Seed { get; init; } = 1;
        public int MaxNumber { get; init; } = 40;
        public bool UseAllNumbers { get; init; }
        public int RlIterations { get; init; } = 60;
        public int RlPrompts { get; init; } = 64;
        public int RlSamples { get; init; } = 8;
        public double RlLearningRate { get; init; } = 5e-5;
        public double RlBeta { get; init; } = 0.01;
        public double RlTemperature { get; init; } = 0.7;
        public string RlAlgorithm { get; init; } = "grpo";
    }

    /// <summary>The command; <paramref name="run"/> replaces the run itself (tests read the parsed settings this way).</summary>
    public static Command Create(Action<Settings>? run = null)
    {
        var output = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => "runs/quickstart" };
        var steps = new Option<int>("--sft-steps") { Description = "SFT optimizer steps", DefaultValueFactory = _ => new Settings().SftSteps };
        var test = new Option<int>("--test-problems") { Description = "Held-out problems for evaluation", DefaultValueFactory = _ => 500 };
        var train = new Option<int>("--train-problems") { Description = "Worked solutions the SFT stage learns from", DefaultValueFactory = _ => new Settings().TrainProblems };
        var seed = new Option<int>("--seed") { Description = "Seed of data, initialisation and order", DefaultValueFactory = _ => 1 };
        var d = new Settings();
        var maxNumber = new Option<int>("--max-number") { Description = "Largest Countdown number (difficulty)", DefaultValueFactory = _ => d.MaxNumber };
        var hidden = new Option<int>("--hidden-size") { Description = "Width of the policy", DefaultValueFactory = _ => d.HiddenSize };
        var layers = new Option<int>("--layers") { Description = "Transformer layers of the policy", DefaultValueFactory = _ => d.Layers };
        var useAll = new Option<bool>("--use-all-numbers") { Description = "Every number must be used exactly once", DefaultValueFactory = _ => d.UseAllNumbers };
        var algorithm = new Option<string>("--rl-algorithm") { Description = "RL algorithm of the second stage", DefaultValueFactory = _ => d.RlAlgorithm };
        var iterations = new Option<int>("--rl-iterations") { Description = "RL iterations", DefaultValueFactory = _ => d.RlIterations };
        var lr = new Option<double>("--rl-lr") { Description = "RL learning rate", DefaultValueFactory = _ => d.RlLearningRate };
        var beta = new Option<double>("--rl-beta") { Description = "KL coefficient toward the SFT model", DefaultValueFactory = _ => d.RlBeta };
        var cmd = new Command("quickstart", "Train a small policy on Countdown (SFT, then RL), evaluate it on held-out problems after each stage, and write a report.")
            { output, steps, train, test, seed, maxNumber, useAll, hidden, layers, algorithm, iterations, lr, beta };
        cmd.SetAction(pr => CliErrors.Run(() =>
        {
            var settings = new Settings
            {
                Out = pr.GetValue(output)!, SftSteps = pr.GetValue(steps), TrainProblems = pr.GetValue(train), TestProblems = pr.GetValue(test), Seed = pr.GetValue(seed),
                MaxNumber = pr.GetValue(maxNumber), UseAllNumbers = pr.GetValue(useAll), HiddenSize = pr.GetValue(hidden), Layers = pr.GetValue(layers), RlAlgorithm = pr.GetValue(algorithm)!, RlIterations = pr.GetValue(iterations),
                RlLearningRate = pr.GetValue(lr), RlBeta = pr.GetValue(beta),
            };
            if (run is not null) run(settings);
            else Run(settings, Console.WriteLine);
            return 0;
        }));
        return cmd;
    }

    /// <summary>The SFT stage as a recipe (the same settings as recipes/sft-countdown.yaml).</summary>
    public static Recipe SftRecipe(Settings s) => new()
    {
        Kind = "sft", Output = Path.Combine(s.Out, "sft"), Seed = s.Seed,
        Model = new ModelSection
        {
            Init = new JsonObject
            {
                ["hidden_size"] = s.HiddenSize, ["intermediate_size"] = s.HiddenSize * 8 / 3 / 16 * 16, ["num_hidden_layers"] = s.Layers,
                ["num_attention_heads"] = Math.Max(1, s.HiddenSize / 32), ["max_position_embeddings"] = 128,
            },
        },
        Task = new TaskSection
        {
            Name = "countdown",
            Options = new() { ["min_numbers"] = Json(3), ["max_numbers"] = Json(3), ["max_number"] = Json(s.MaxNumber), ["max_target"] = Json(100),
                ["use_all_numbers"] = System.Text.Json.JsonSerializer.SerializeToElement(s.UseAllNumbers) },
        },
        Data = new DataSection { TrainProblems = s.TrainProblems, TestProblems = s.TestProblems },
        Sft = new SftOptions
        {
            MaxSteps = s.SftSteps, BatchSize = s.BatchSize, LearningRate = 2e-3, WarmupSteps = Math.Min(30, s.SftSteps / 4), MinLrRatio = 0.05,
            WeightDecay = 0.01, LogEvery = 10, EvalEvery = Math.Max(1, s.SftSteps / 4), EvalExamples = 256, EvalProblems = 200,
            EvalMaxNewTokens = 48, CheckpointEvery = 0, MaxSequenceLength = 96, Seed = s.Seed,
        },
        Eval = new EvalSection { Problems = s.TestProblems, Samples = 1, MaxNewTokens = 48 },
    };

    /// <summary>
    /// Writes <paramref name="count"/> Countdown problems that appear in neither the SFT training file
    /// nor the held-out file (matched by problem id) to <paramref name="path"/>. Returns how many.
    /// </summary>
    public static int MakeFreshPrompts(Recipe sftRecipe, string path, int count, int seed)
    {
        var (trainFile, testFile) = DatasetWriter.SplitPaths(Path.Combine(sftRecipe.Output, "data", "countdown.jsonl"));
        var seen = JsonlDataset.LoadSft(trainFile).Items.Concat(JsonlDataset.LoadSft(testFile).Items)
            .Select(e => e.Fields.GetValueOrDefault("id") ?? e.Prompt).ToHashSet();
        var task = sftRecipe.Task!.Build("quickstart");
        var fresh = task.Generate(count * 3, seed).Where(p => seen.Add(p.Id)).Take(count).Select(p => DatasetWriter.ToSftExample(task, p)).ToList();
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        DatasetWriter.WriteSft(path, fresh);
        return fresh.Count;
    }

    /// <summary>The RL stage: the SFT checkpoint, fresh prompts, the SFT run's held-out split.</summary>
    public static Recipe RlRecipe(Settings s, Recipe sftRecipe, string sftCheckpoint)
    {
        var (_, testFile) = DatasetWriter.SplitPaths(Path.Combine(sftRecipe.Output, "data", "countdown.jsonl"));
        return sftRecipe with
        {
            Kind = "rl", Output = Path.Combine(s.Out, "rl"),
            Model = new ModelSection { Path = sftCheckpoint },
            Data = new DataSection { Train = Path.Combine(s.Out, "rl", "data", "prompts.jsonl"), Test = testFile },
            RlSection = new JsonObject
            {
                ["algorithm"] = s.RlAlgorithm, ["iterations"] = s.RlIterations, ["prompts_per_iteration"] = s.RlPrompts,
                ["samples_per_prompt"] = s.RlSamples, ["learning_rate"] = s.RlLearningRate, ["beta"] = s.RlBeta, ["temperature"] = s.RlTemperature,
                ["max_new_tokens"] = 48, ["eval_every"] = Math.Max(1, s.RlIterations / 4), ["eval_problems"] = 500,
                ["micro_batch_size"] = 128, ["seed"] = s.Seed,
            },
        };
    }

    static System.Text.Json.JsonElement Json(int v) => System.Text.Json.JsonSerializer.SerializeToElement(v);

    public static JsonObject Run(Settings s, Action<string> log)
    {
        var total = Stopwatch.StartNew();
        Directory.CreateDirectory(s.Out);
        var stages = new JsonArray();
        var runLog = new RunLog(s.Out);

        // 1–3. Data, a fresh model, SFT on worked solutions, held-out evaluation.
        var recipe = SftRecipe(s);
        var sft = SftPipeline.Run(recipe, log);
        stages.Add(Stage("sft", sft.Eval!, sft.Seconds));
        log($"sft: held-out greedy accuracy {sft.Eval!.Accuracy:P1} on {sft.Eval.N} problems ({sft.Seconds:F0} s)");

        // 4. RL from the SFT checkpoint on fresh prompts (none seen in SFT, none held out): RL on the SFT
        //    prompts mostly rewards recalling memorised solutions, which does not carry over to new problems.
        var rlRecipe = RlRecipe(s, recipe, sft.Sft.FinalCheckpoint);
        int freshPrompts = MakeFreshPrompts(recipe, rlRecipe.Data.Train!, s.RlIterations * s.RlPrompts, s.Seed + 1);
        log($"rl: {freshPrompts} fresh prompts");
        var rl = RlPipeline.Run(rlRecipe, log);
        stages.Add(Stage(s.RlAlgorithm, rl.After!, rl.Seconds));
        log($"{s.RlAlgorithm}: held-out greedy accuracy {rl.After!.Accuracy:P1} (SFT {sft.Eval.Accuracy:P1}) ({rl.Seconds:F0} s)");

        // 5. Report.
        var metrics = new RunLog(recipe.Output, append: true).ReadMetrics();
        foreach (var row in metrics) runLog.Metrics((JsonObject)row.DeepClone());
        var summary = new JsonObject
        {
            ["task"] = "countdown", ["parameters"] = sft.Parameters, ["train_examples"] = sft.TrainExamples,
            ["stages"] = stages, ["seconds"] = Math.Round(total.Elapsed.TotalSeconds, 1), ["final_checkpoint"] = rl.Rl.FinalCheckpoint,
            ["rl_gain_points"] = Math.Round(100 * (rl.After.Accuracy - sft.Eval.Accuracy), 1),
        };
        runLog.Summary(summary);
        var table = new List<string>
        {
            $"Countdown (3 numbers from 1–{s.MaxNumber}, targets ≤ 100), {sft.Parameters:N0}-parameter model, {total.Elapsed.TotalMinutes:F1} minutes.", "",
            "| stage | held-out greedy accuracy | n | seconds |", "| --- | ---: | ---: | ---: |",
        };
        foreach (var st in stages)
            table.Add($"| {st!["name"]} | {st["accuracy"]!.GetValue<double>():P1} | {st["n"]} | {st["seconds"]} |");
        table.Add("");
        table.Add("Greedy verdicts after SFT: " + string.Join(", ", sft.Eval.Verdicts.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value}")));
        table.Add("");
        table.Add($"Greedy verdicts after {s.RlAlgorithm}: " + string.Join(", ", rl.After.Verdicts.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value}")));
        // The held-out curve starts at the SFT model's accuracy (iteration 0).
        var rlMetrics = new RunLog(rlRecipe.Output, append: true).ReadMetrics()
            .Prepend(new JsonObject { ["step"] = 0, ["eval_accuracy"] = rl.Before!.Accuracy }).ToList();
        var report = RunReport.Write(s.Out, "Sharpen quickstart", metrics, table, rlMetrics, lossTitle: "Training loss (SFT)");
        log($"report: {report}");
        foreach (var line in table.Skip(2)) log(line);
        return summary;
    }

    static JsonObject Stage(string name, EvalResult e, double seconds) =>
        new() { ["name"] = name, ["accuracy"] = e.Accuracy, ["n"] = e.N, ["seconds"] = Math.Round(seconds, 1) };
}
