using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Recipes;
using Sharpen.Serving;

namespace Sharpen.Cli.Commands;

/// <summary>
/// <c>sharpen data judge-steps --judge-url URL --data solutions.jsonl --out FILE [--method genprm|aurora] [--steps newline]
/// [--votes N --temperature T] [--judge-model NAME --api-key-env VAR --max-tokens N]</c>: LLM-judge step labels
/// (<see cref="JudgeStepLabeler"/>: GenPRM or AURORA) of the completions in a prompt/completion JSONL, written as
/// step-labelled JSONL (soft labels) plus <c>FILE-stem.summary.json</c>. A row's <c>answer</c> (or <c>reference</c>) field
/// is the reference answer.
/// </summary>
public static class JudgeStepsCommand
{
    /// <summary>The <c>judge-steps</c> subcommand of <c>data</c>.</summary>
    public static Command Create()
    {
        var url = new Option<string>("--judge-url") { Description = "Base URL of the judge's OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1", Required = true };
        var model = new Option<string>("--judge-model") { Description = "Model name sent to the judge", DefaultValueFactory = _ => "default" };
        var keyEnv = new Option<string?>("--api-key-env") { Description = "Environment variable holding the judge's API key" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most tokens of a judge reply", DefaultValueFactory = _ => 512 };
        var data = new Option<string>("--data") { Description = "Solutions JSONL (prompt, completion; optional answer or reference field)", Required = true };
        var steps = new Option<string>("--steps") { Description = "Step splitter: newline, countdown, delimiter:TEXT or regex:PATTERN", DefaultValueFactory = _ => "newline" };
        var method = new Option<string>("--method") { Description = "genprm (one generative verification per step) or aurora (prompt ensemble + reverse verification)", DefaultValueFactory = _ => "genprm" };
        var votes = new Option<int>("--votes") { Description = "GenPRM: verifications per step (label = share saying correct)", DefaultValueFactory = _ => 1 };
        var temperature = new Option<double>("--temperature") { Description = "Judge sampling temperature (raise it with --votes > 1)", DefaultValueFactory = _ => 0.0 };
        var output = new Option<string>("--out") { Description = "Output step-labelled JSONL", Required = true };
        var cmd = new Command("judge-steps", "LLM-judge step labels (GenPRM's generative verification or AURORA's prompt ensemble) of given solutions, as step-labelled JSONL")
            { url, model, keyEnv, maxTokens, data, steps, method, votes, temperature, output };
        cmd.SetAction(pr => CliErrors.Run(() =>
        {
            var labelMethod = pr.GetValue(method) switch
            {
                "genprm" => JudgeLabelMethod.GenPrm,
                "aurora" => JudgeLabelMethod.Aurora,
                var m => throw new ArgumentException($"--method must be genprm or aurora, got '{m}'"),
            };
            double t = pr.GetValue(temperature);
            if (!(t >= 0) || !double.IsFinite(t)) throw new ArgumentException($"--temperature must be ≥ 0, got {t}");
            var spec = new JudgeSpec { Url = pr.GetValue(url)!, Model = pr.GetValue(model)!, ApiKeyEnv = pr.GetValue(keyEnv), MaxTokens = pr.GetValue(maxTokens) }.Validate();
            var splitter = StepSplitter.Parse(pr.GetValue(steps)!);
            var options = new JudgeStepLabelOptions { Method = labelMethod, Votes = pr.GetValue(votes) }.Validate();
            var dataPath = pr.GetValue(data)!;
            var rows = JsonlDataset.LoadSft(dataPath).Items;
            if (rows.Count == 0) throw new ArgumentException($"{dataPath}: no solutions");
            var solutions = new List<(string, IReadOnlyList<string>, string?)>();
            for (int i = 0; i < rows.Count; i++)
            {
                var s = splitter.Split(rows[i].Completion);
                if (s.Count == 0) throw new ArgumentException($"{dataPath}:{i + 1}: the completion is empty; there are no steps to label");
                solutions.Add((rows[i].Prompt, s, rows[i].Fields.GetValueOrDefault("answer") ?? rows[i].Fields.GetValueOrDefault("reference")));
            }
            var judge = JudgeClient.Create(spec, t);
            long started = Stopwatch.GetTimestamp();
            var (labelled, failed) = new JudgeStepLabeler(judge, options).LabelManyAsync(solutions).GetAwaiter().GetResult();
            var outPath = pr.GetValue(output)!;
            StepLabelledExample.Write(outPath, labelled);
            var summaryPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(outPath))!, Path.GetFileNameWithoutExtension(outPath) + ".summary.json");
            AtomicFile.WriteAllText(summaryPath, new JsonObject
            {
                ["solutions"] = rows.Count, ["rows"] = labelled.Count, ["failed"] = failed, ["steps"] = labelled.Sum(r => r.Steps.Count),
                ["method"] = pr.GetValue(method), ["votes"] = options.Votes, ["judge_requests"] = judge.Calls, ["unparsed_replies"] = judge.Failures,
                ["seconds"] = Math.Round(Stopwatch.GetElapsedTime(started).TotalSeconds, 2), ["step_splitter"] = pr.GetValue(steps),
            }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"judge-steps: {labelled.Count} of {rows.Count} solutions labelled ({failed} without parseable replies), {judge.Calls} judge requests; wrote {outPath}");
            return 0;
        }));
        return cmd;
    }
}
