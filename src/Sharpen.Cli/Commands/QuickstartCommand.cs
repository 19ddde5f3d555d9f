using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tasks;
using Sharpen.Tokenizers;
using Sharpen.Training;

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
    }

    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => "runs/quickstart" };
        var steps = new Option<int>("--sft-steps") { Description = "SFT optimizer steps", DefaultValueFactory = _ => new Settings().SftSteps };
        var test = new Option<int>("--test-problems") { Description = "Held-out problems for evaluation", DefaultValueFactory = _ => 500 };
        var seed = new Option<int>("--seed") { Description = "Seed of data, initialisation and order", DefaultValueFactory = _ => 1 };
        var cmd = new Command("quickstart", "Train a small policy on Countdown (SFT), evaluate it on held-out problems, and write a report.")
            { output, steps, test, seed };
        cmd.SetAction(pr => CliErrors.Run(() =>
        {
            Run(new Settings { Out = pr.GetValue(output)!, SftSteps = pr.GetValue(steps), TestProblems = pr.GetValue(test), Seed = pr.GetValue(seed) }, Console.WriteLine);
            return 0;
        }));
        return cmd;
    }

    public static JsonObject Run(Settings s, Action<string> log)
    {
        var total = Stopwatch.StartNew();
        Directory.CreateDirectory(s.Out);
        var stages = new JsonArray();
        var runLog = new RunLog(s.Out);

        // 1. Data: Countdown with three numbers; held-out problems never appear in training.
        var sw = Stopwatch.StartNew();
        var task = TaskRegistry.Create("countdown", new CountdownOptions { MinNumbers = 3, MaxNumbers = 3, MaxNumber = 20, MaxTarget = 100 });
        var made = DatasetWriter.MakeDataset(task, s.TrainProblems + s.TestProblems, s.Seed, Path.Combine(s.Out, "data", "countdown.jsonl"), s.TestProblems);
        var train = JsonlDataset.LoadSft(made.Files[0]).Items;
        var testRows = JsonlDataset.LoadSft(made.Files[1]).Items;
        var testProblems = testRows.Select(ToProblem).ToList();
        log($"data: {train.Count} training and {testRows.Count} held-out Countdown problems ({sw.Elapsed.TotalSeconds:F1} s)");

        // 2. A fresh model with a character tokenizer over the task's alphabet.
        var tokenizer = CharTokenizer.Create(task.Alphabet);
        var config = new ModelConfig
        {
            ModelType = "llama", VocabSize = tokenizer.VocabSize, HiddenSize = s.HiddenSize, IntermediateSize = s.HiddenSize * 8 / 3 / 16 * 16,
            NumHiddenLayers = s.Layers, NumAttentionHeads = s.HiddenSize / 32, NumKeyValueHeads = s.HiddenSize / 32, MaxPositionEmbeddings = 128,
            TieWordEmbeddings = true, BosTokenId = tokenizer.BosTokenId, EosTokenIds = [tokenizer.EosTokenId!.Value], PadTokenId = tokenizer.PadTokenId,
        };
        using var model = new CausalLM(config, seed: s.Seed);
        log($"model: {model.ParameterCount():N0} parameters (d={config.HiddenSize}, {config.NumHiddenLayers} layers), vocabulary {tokenizer.VocabSize}");
        var engine = new RolloutEngine(model, tokenizer);

        // 3. SFT on worked solutions.
        sw.Restart();
        var sftOptions = new SftOptions
        {
            MaxSteps = s.SftSteps, BatchSize = s.BatchSize, LearningRate = 2e-3, WarmupSteps = 30, MinLrRatio = 0.05,
            WeightDecay = 0.01, LogEvery = 10, EvalEvery = Math.Max(50, s.SftSteps / 4), EvalExamples = 256, EvalProblems = 200,
            EvalMaxNewTokens = 48, CheckpointEvery = 0, MaxSequenceLength = 96, Seed = s.Seed,
        };
        var sftDir = Path.Combine(s.Out, "sft");
        var sft = new SftTrainer(model, tokenizer, sftOptions) { Log = log, Task = task, EvalProblems = testProblems }
            .Run(train, testRows, sftDir);
        var sftEval = Evaluation.Run(engine, task, testProblems, maxNewTokens: 48);
        stages.Add(Stage("sft", sftEval, sw.Elapsed.TotalSeconds));
        log($"sft: held-out greedy accuracy {sftEval.Accuracy:P1} on {sftEval.N} problems ({sw.Elapsed.TotalSeconds:F0} s)");

        // 4. RL stage goes here (next issue): it starts from sft.FinalCheckpoint and adds a row to `stages`.

        // 5. Report.
        var metrics = new RunLog(sftDir, append: true).ReadMetrics();
        foreach (var row in metrics) runLog.Metrics((JsonObject)row.DeepClone());
        var summary = new JsonObject
        {
            ["task"] = "countdown", ["parameters"] = model.ParameterCount(), ["train_examples"] = train.Count,
            ["stages"] = stages, ["seconds"] = Math.Round(total.Elapsed.TotalSeconds, 1), ["final_checkpoint"] = sft.FinalCheckpoint,
            ["eval"] = sftEval.ToJson(),
        };
        runLog.Summary(summary);
        var table = new List<string>
        {
            $"Countdown (3 numbers from 1–20, targets ≤ 100), {model.ParameterCount():N0}-parameter model, {total.Elapsed.TotalMinutes:F1} minutes.", "",
            "| stage | held-out greedy accuracy | n | seconds |", "| --- | ---: | ---: | ---: |",
        };
        foreach (var st in stages)
            table.Add($"| {st!["name"]} | {st["accuracy"]!.GetValue<double>():P1} | {st["n"]} | {st["seconds"]} |");
        table.Add("");
        table.Add("Greedy verdicts after SFT: " + string.Join(", ", sftEval.Verdicts.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value}")));
        var report = RunReport.Write(s.Out, "Sharpen quickstart", metrics, table);
        log($"report: {report}");
        foreach (var line in table.Skip(2)) log(line);
        return summary;
    }

    static JsonObject Stage(string name, EvalResult e, double seconds) =>
        new() { ["name"] = name, ["accuracy"] = e.Accuracy, ["n"] = e.N, ["seconds"] = Math.Round(seconds, 1) };

    static Problem ToProblem(SftExample e) => new(e.Fields.GetValueOrDefault("id") ?? e.Prompt, e.Prompt, e.Fields.GetValueOrDefault("answer") ?? "", e.Fields);
}
