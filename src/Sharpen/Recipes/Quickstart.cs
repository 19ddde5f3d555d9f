using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Evaluation;
using Sharpen.Training.Sft;

namespace Sharpen.Recipes;

/// <summary>
/// Knobs of the quickstart (defaults: the 10-minute run on 2 cores). Not sealed so that a front end can add its own
/// fields (the CLI adds the output folder).
/// </summary>
public record QuickstartSettings
{
    /// <summary>Worked solutions the SFT stage learns from.</summary>
    public int TrainProblems { get; init; } = 20000;
    /// <summary>Held-out problems each stage is evaluated on.</summary>
    public int TestProblems { get; init; } = 500;
    /// <summary>SFT optimizer steps.</summary>
    public int SftSteps { get; init; } = 400;
    /// <summary>SFT batch size.</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>Width of the policy.</summary>
    public int HiddenSize { get; init; } = 192;
    /// <summary>Transformer layers of the policy.</summary>
    public int Layers { get; init; } = 4;
    /// <summary>Seed of data, initialisation and order.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>Largest Countdown number (difficulty).</summary>
    public int MaxNumber { get; init; } = 40;
    /// <summary>Every number must be used exactly once.</summary>
    public bool UseAllNumbers { get; init; }
    /// <summary>RL iterations.</summary>
    public int RlIterations { get; init; } = 60;
    /// <summary>Prompts per RL iteration.</summary>
    public int RlPrompts { get; init; } = 64;
    /// <summary>Samples per prompt in the RL stage.</summary>
    public int RlSamples { get; init; } = 8;
    /// <summary>RL learning rate.</summary>
    public double RlLearningRate { get; init; } = 5e-5;
    /// <summary>KL coefficient toward the SFT model.</summary>
    public double RlBeta { get; init; } = 0.01;
    /// <summary>Sampling temperature of the RL rollouts.</summary>
    public double RlTemperature { get; init; } = 0.7;
    /// <summary>RL algorithm of the second stage.</summary>
    public string RlAlgorithm { get; init; } = "grpo";
}

/// <summary>One stage's row of the quickstart summary: held-out greedy accuracy on <paramref name="N"/> problems.</summary>
public sealed record QuickstartStage(string Name, double Accuracy, int N, double Seconds);

/// <summary>
/// What a quickstart run produced: the stages, the summary written to summary.json, the SFT run's metric rows (also
/// copied to the run's metrics.jsonl) and the RL run's, and the evaluations behind the stages (for reports).
/// </summary>
public sealed record QuickstartResult(IReadOnlyList<QuickstartStage> Stages, JsonObject Summary, long Parameters, int TrainExamples,
    EvalResult SftEval, EvalResult RlBefore, EvalResult RlAfter, string FinalCheckpoint, double Seconds,
    IReadOnlyList<JsonObject> SftMetrics, IReadOnlyList<JsonObject> RlMetrics);

/// <summary>
/// The quickstart: a small policy learns Countdown on the CPU. Stages: make data → initialise a model → SFT → evaluate
/// on held-out problems → RL from the SFT checkpoint on fresh prompts → evaluate again. Each stage adds a row to
/// summary.json's <c>stages</c>.
/// </summary>
public static class Quickstart
{
    /// <summary>The SFT stage as a recipe (the same settings as recipes/sft-countdown.yaml), writing under <paramref name="outDir"/>/sft.</summary>
    public static Recipe SftRecipe(QuickstartSettings s, string outDir) => new()
    {
        Kind = "sft", Output = Path.Combine(outDir, "sft"), Seed = s.Seed,
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
                ["use_all_numbers"] = JsonSerializer.SerializeToElement(s.UseAllNumbers) },
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

    /// <summary>The RL stage: the SFT checkpoint, fresh prompts, the SFT run's held-out split; writes under <paramref name="outDir"/>/rl.</summary>
    public static Recipe RlRecipe(QuickstartSettings s, string outDir, Recipe sftRecipe, string sftCheckpoint)
    {
        var (_, testFile) = DatasetWriter.SplitPaths(Path.Combine(sftRecipe.Output, "data", "countdown.jsonl"));
        return sftRecipe with
        {
            Kind = "rl", Output = Path.Combine(outDir, "rl"),
            Model = new ModelSection { Path = sftCheckpoint },
            Data = new DataSection { Train = Path.Combine(outDir, "rl", "data", "prompts.jsonl"), Test = testFile },
            RlSection = new JsonObject
            {
                ["algorithm"] = s.RlAlgorithm, ["iterations"] = s.RlIterations, ["prompts_per_iteration"] = s.RlPrompts,
                ["samples_per_prompt"] = s.RlSamples, ["learning_rate"] = s.RlLearningRate, ["beta"] = s.RlBeta, ["temperature"] = s.RlTemperature,
                ["max_new_tokens"] = 48, ["eval_every"] = Math.Max(1, s.RlIterations / 4), ["eval_problems"] = 500,
                ["micro_batch_size"] = 128, ["seed"] = s.Seed,
            },
        };
    }

    static JsonElement Json(int v) => JsonSerializer.SerializeToElement(v);

    /// <summary>
    /// Runs the quickstart into <paramref name="outDir"/>: sft/ and rl/ hold the stages' runs; the folder itself gets
    /// metrics.jsonl (the SFT run's rows) and summary.json (<c>task, parameters, train_examples, stages: [{name, accuracy,
    /// n, seconds}], seconds, final_checkpoint, rl_gain_points</c>). <paramref name="log"/> receives progress lines.
    /// </summary>
    public static QuickstartResult Run(QuickstartSettings settings, string outDir, Action<string>? log = null, CancellationToken cancel = default)
    {
        var s = settings;
        var say = log ?? (_ => { });
        var total = Stopwatch.StartNew();
        Directory.CreateDirectory(outDir);
        var runLog = new RunLog(outDir);

        // 1–3. Data, a fresh model, SFT on worked solutions, held-out evaluation.
        var recipe = SftRecipe(s, outDir);
        var sft = SftPipeline.Run(recipe, log, cancel: cancel);
        var stages = new List<QuickstartStage> { Stage("sft", sft.Eval!, sft.Seconds) };
        say($"sft: held-out greedy accuracy {sft.Eval!.Accuracy:P1} on {sft.Eval.N} problems ({sft.Seconds:F0} s)");

        // 4. RL from the SFT checkpoint on fresh prompts (none seen in SFT, none held out): RL on the SFT
        //    prompts mostly rewards recalling memorised solutions, which does not carry over to new problems.
        var rlRecipe = RlRecipe(s, outDir, recipe, sft.Sft.FinalCheckpoint);
        int freshPrompts = MakeFreshPrompts(recipe, rlRecipe.Data.Train!, s.RlIterations * s.RlPrompts, s.Seed + 1);
        say($"rl: {freshPrompts} fresh prompts");
        var rl = RlPipeline.Run(rlRecipe, log, cancel: cancel);
        stages.Add(Stage(s.RlAlgorithm, rl.After!, rl.Seconds));
        say($"{s.RlAlgorithm}: held-out greedy accuracy {rl.After!.Accuracy:P1} (SFT {sft.Eval.Accuracy:P1}) ({rl.Seconds:F0} s)");

        // 5. Summary.
        var metrics = new RunLog(recipe.Output, append: true).ReadMetrics();
        foreach (var row in metrics) runLog.Metrics((JsonObject)row.DeepClone());
        double seconds = total.Elapsed.TotalSeconds;
        var summary = new JsonObject
        {
            ["task"] = "countdown", ["parameters"] = sft.Parameters, ["train_examples"] = sft.TrainExamples,
            ["stages"] = new JsonArray(stages.Select(st => (JsonNode)new JsonObject
                { ["name"] = st.Name, ["accuracy"] = st.Accuracy, ["n"] = st.N, ["seconds"] = st.Seconds }).ToArray()),
            ["seconds"] = Math.Round(seconds, 1), ["final_checkpoint"] = rl.Rl.FinalCheckpoint,
            ["rl_gain_points"] = Math.Round(100 * (rl.After.Accuracy - sft.Eval.Accuracy), 1),
        };
        runLog.Summary(summary);
        var rlMetrics = new RunLog(rlRecipe.Output, append: true).ReadMetrics();
        return new QuickstartResult(stages, summary, sft.Parameters, sft.TrainExamples, sft.Eval, rl.Before!, rl.After, rl.Rl.FinalCheckpoint,
            seconds, metrics, rlMetrics);
    }

    static QuickstartStage Stage(string name, EvalResult e, double seconds) => new(name, e.Accuracy, e.N, Math.Round(seconds, 1));
}
