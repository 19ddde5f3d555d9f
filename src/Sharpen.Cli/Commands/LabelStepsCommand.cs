using System.CommandLine;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Tasks;
using Sharpen.Training;
using Sharpen.Recipes;
using Sharpen.Training.RewardModels;

namespace Sharpen.Cli.Commands;

/// <summary>
/// <c>sharpen data label-steps --model DIR --data problems.jsonl --task countdown --samples-per-problem M --rollouts N
/// --steps countdown --out FILE [--hard] [--seed S] [--given] [--outcomes FILE]</c>: Monte-Carlo step labels (Math-Shepherd) as step-labelled
/// JSONL, plus <c>FILE-stem.summary.json</c> (rows, steps, rollouts, generated tokens, seconds).
/// </summary>
public static class LabelStepsCommand
{
    /// <summary>The <c>label-steps</c> subcommand of <c>data</c>.</summary>
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Policy checkpoint folder (Hugging Face layout with tokenizer)", Required = true };
        var data = new Option<string>("--data") { Description = "Problems JSONL as `data make` writes it (prompt, completion, id, answer, task fields)", Required = true };
        var task = new Option<string>("--task") { Description = $"Verifier: {string.Join(", ", TaskRegistry.Names)}", Required = true };
        var samples = new Option<int>("--samples-per-problem") { Description = "Solutions sampled per problem (M)", DefaultValueFactory = _ => 4 };
        var rollouts = new Option<int>("--rollouts") { Description = "Continuations per step prefix (N)", DefaultValueFactory = _ => 8 };
        var steps = new Option<string>("--steps") { Description = "Step splitter: newline, countdown, delimiter:TEXT or regex:PATTERN", DefaultValueFactory = _ => "newline" };
        var output = new Option<string>("--out") { Description = "Output step-labelled JSONL", Required = true };
        var hard = new Option<bool>("--hard") { Description = "Hard labels (any continuation correct) instead of soft (fraction correct)" };
        var seed = new Option<long>("--seed") { Description = "Sampling seed", DefaultValueFactory = _ => 1 };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature", DefaultValueFactory = _ => 1.0 };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Most new tokens per solution or continuation", DefaultValueFactory = _ => 64 };
        var given = new Option<bool>("--given") { Description = "Label the completions in --data instead of sampling solutions" };
        var skipBad = new Option<bool>("--skip-bad-lines") { Description = "Skip and count malformed lines of --data" };
        var outcomes = new Option<string?>("--outcomes") { Description = "Also write the labelled solutions with their verdicts as {\"prompt\",\"completion\",\"label\"} JSONL (implicit-PRM data)" };
        var cmd = new Command("label-steps", "Monte-Carlo step labels (Math-Shepherd): from every step prefix of a policy's solutions, N rollouts checked by the task's verifier")
            { model, data, task, samples, rollouts, steps, output, hard, seed, temperature, maxNew, given, skipBad, outcomes };
        cmd.SetAction(pr => CliErrors.Run(() =>
        {
            var t = TaskRegistry.Create(pr.GetValue(task)!);
            var splitter = StepSplitter.Parse(pr.GetValue(steps)!);
            var options = new StepLabelOptions
            {
                SamplesPerProblem = pr.GetValue(samples), Rollouts = pr.GetValue(rollouts), Hard = pr.GetValue(hard),
                Temperature = pr.GetValue(temperature), MaxNewTokens = pr.GetValue(maxNew), Seed = pr.GetValue(seed),
            }.Validate();
            var dataPath = pr.GetValue(data)!;
            var rows = JsonlDataset.LoadSft(dataPath, pr.GetValue(skipBad)).Reported(dataPath, Console.WriteLine);
            if (rows.Items.Count == 0) throw new ArgumentException($"{dataPath}: no problems");
            var loaded = HfCheckpoint.Load(pr.GetValue(model)!, requireTokenizer: true);
            using var policy = loaded.Model;
            var labeler = new StepLabeler(new RolloutEngine(policy, loaded.Tokenizer!), t, splitter, options);
            var result = pr.GetValue(given)
                ? labeler.LabelCompletions(rows.Items.Select(e => (SftPipeline.ToProblem(e), e.Completion)).ToList())
                : labeler.Label(rows.Items.Select(SftPipeline.ToProblem).ToList());
            var outPath = pr.GetValue(output)!;
            StepLabelledExample.Write(outPath, result.Rows, options.Hard);
            if (pr.GetValue(outcomes) is { } outcomesPath)
                OutcomeExample.Write(outcomesPath, result.Rows.Select(r => new OutcomeExample(r.Prompt, string.Concat(r.Steps),
                    r.Fields.GetValueOrDefault("correct") == "true" ? 1 : 0, r.Fields.Where(kv => kv.Key is not ("soft_labels" or "correct" or "rollouts")).ToDictionary())));
            var summaryPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(outPath))!, Path.GetFileNameWithoutExtension(outPath) + ".summary.json");
            AtomicFile.WriteAllText(summaryPath, new JsonObject
            {
                ["problems"] = rows.Items.Count, ["skipped_lines"] = rows.SkippedLines, ["rows"] = result.Rows.Count, ["steps"] = result.Steps,
                ["rollouts"] = result.Rollouts, ["rollouts_per_prefix"] = options.Rollouts,
                ["samples_per_problem"] = pr.GetValue(given) ? 1 : options.SamplesPerProblem, ["labels"] = options.Hard ? "hard" : "soft",
                ["solution_tokens"] = result.SolutionTokens, ["rollout_tokens"] = result.RolloutTokens, ["generated_tokens"] = result.GeneratedTokens,
                ["correct_solutions"] = result.Rows.Count(r => r.Fields.GetValueOrDefault("correct") == "true"),
                ["seconds"] = Math.Round(result.Seconds, 2), ["step_splitter"] = pr.GetValue(steps), ["task"] = t.Name,
            }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"wrote {result.Rows.Count} step-labelled solutions ({result.Steps} steps) to {outPath}; " +
                $"{result.Rollouts} rollouts, {result.GeneratedTokens} generated tokens ({result.RolloutTokens} in rollouts), {result.Seconds:F1} s; summary {summaryPath}");
            return 0;
        }));
        return cmd;
    }
}
