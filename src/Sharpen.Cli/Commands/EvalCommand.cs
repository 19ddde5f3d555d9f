using System.CommandLine;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Tasks;
using Sharpen.Training;

namespace Sharpen.Cli.Commands;

/// <summary><c>sharpen eval</c>: greedy accuracy, pass@k and maj@k of a checkpoint on a task.</summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Checkpoint folder", Required = true };
        var task = new Option<string>("--task") { Description = $"Task: {string.Join(", ", TaskRegistry.Names)}", Required = true };
        var data = new Option<FileInfo?>("--data") { Description = "Held-out JSONL written by `sharpen data make` (default: generate --n problems)" };
        var n = new Option<int>("--n") { Description = "Problems to evaluate", DefaultValueFactory = _ => 500 };
        var samples = new Option<int>("--samples") { Description = "Samples per problem (k) for pass@k and maj@k", DefaultValueFactory = _ => 1 };
        var temperature = new Option<double>("--temperature") { Description = "Temperature of the k samples", DefaultValueFactory = _ => 1.0 };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Most tokens per completion", DefaultValueFactory = _ => 64 };
        var seed = new Option<int>("--seed") { Description = "Seed of generated problems and of sampling", DefaultValueFactory = _ => 12345 };
        var output = new Option<string>("--out") { Description = "Output folder (metrics.jsonl: one row per problem; summary.json)", Required = true };
        var cmd = new Command("eval", "Evaluate a checkpoint on a verifiable task.") { model, task, data, n, samples, temperature, maxNew, seed, output };
        cmd.SetAction(pr => CliErrors.Run(() =>
        {
            var summary = Run(pr.GetValue(model)!.FullName, pr.GetValue(task)!, pr.GetValue(data)?.FullName, pr.GetValue(n), pr.GetValue(samples),
                pr.GetValue(temperature), pr.GetValue(maxNew), pr.GetValue(seed), pr.GetValue(output)!);
            Console.WriteLine(summary.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }));
        return cmd;
    }

    public static JsonObject Run(string modelDir, string taskName, string? dataPath, int n, int samples, double temperature, int maxNew, int seed, string outDir)
    {
        var t = TaskRegistry.Create(taskName);
        var problems = dataPath is null
            ? t.Generate(n, seed)
            : JsonlDataset.LoadSft(dataPath).Items.Take(n).Select(SftPipeline.ToProblem).ToList();
        var loaded = HfCheckpoint.Load(modelDir, requireTokenizer: true);
        using var policy = loaded.Model;
        var engine = new RolloutEngine(policy, loaded.Tokenizer!);
        var result = Evaluation.Run(engine, t, problems, samples, temperature, maxNew, seed);

        // Per-problem rows: the greedy completion and its verdict.
        var log = new RunLog(outDir);
        for (int i = 0; i < problems.Count; i++)
        {
            var (completion, v) = result.Greedy[i];
            log.Metrics(new JsonObject
            {
                ["step"] = i, ["id"] = problems[i].Id, ["prompt"] = problems[i].Prompt, ["completion"] = completion.CompletionText,
                ["correct"] = v.Correct, ["reason"] = v.Reason, ["tokens"] = completion.CompletionIds.Length,
            });
        }
        var summary = result.ToJson();
        summary["model"] = modelDir;
        summary["task"] = taskName;
        summary["temperature"] = temperature;
        log.Summary(summary);
        return summary;
    }
}
