using System.CommandLine;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Tasks;
using Sharpen.Training;

namespace Sharpen.Cli.Commands;

/// <summary><c>sharpen eval</c>: greedy accuracy, pass@k and maj@k of a checkpoint on a task, or the accuracy and cost of a
/// search strategy (<c>--strategy</c>); optionally the mean score of the evaluated completions under a reward model.</summary>
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
        var strategy = new Option<string>("--strategy") { Description = $"Search strategy: {string.Join(", ", Sharpen.Search.SearchStrategies.Names)} (greedy = the plain evaluation)", DefaultValueFactory = _ => "greedy" };
        var budget = new Option<int>("--budget-tokens") { Description = "Search: most generated tokens per problem", DefaultValueFactory = _ => 512 };
        var scorer = new Option<string>("--scorer") { Description = $"Search: outcome/step scorer: {string.Join(", ", Sharpen.Search.SearchScorerRegistry.Kinds.Select(k => k.Value.TakesFolder ? k.Key + ":DIR" : k.Key))}", DefaultValueFactory = _ => "verifier" };
        var steps = new Option<string?>("--steps") { Description = "Search: step splitter (countdown, newline, delimiter:X, regex:P; default by task)" };
        var maxStep = new Option<int>("--max-step-tokens") { Description = "Search: most tokens per step", DefaultValueFactory = _ => 16 };
        var maxSamples = new Option<int>("--max-samples") { Description = "bon/vote: most samples per problem (0 = until the budget is spent)", DefaultValueFactory = _ => 0 };
        var beamWidth = new Option<int>("--beam-width") { Description = "beam: partial solutions kept", DefaultValueFactory = _ => 4 };
        var expansions = new Option<int>("--expansions") { Description = "beam: next steps per kept solution; mcts: steps per expansion", DefaultValueFactory = _ => 4 };
        var mctsC = new Option<double>("--mcts-c") { Description = "mcts: exploration constant (PUCT)", DefaultValueFactory = _ => 1.25 };
        var rewardModel = new Option<DirectoryInfo?>("--reward-model") { Description = "Also score the evaluated completions with this trained reward model (reward_model_mean, per-row reward_model)" };
        var cmd = new Command("eval", "Evaluate a checkpoint on a verifiable task.") { model, task, data, n, samples, temperature, maxNew, seed, output,
            strategy, budget, scorer, steps, maxStep, maxSamples, beamWidth, expansions, mctsC, rewardModel };
        cmd.SetAction(pr => CliErrors.Run(() =>
        {
            var summary = Run(pr.GetValue(model)!.FullName, pr.GetValue(task)!, pr.GetValue(data)?.FullName, pr.GetValue(n), pr.GetValue(samples),
                pr.GetValue(temperature), pr.GetValue(maxNew), pr.GetValue(seed), pr.GetValue(output)!,
                new EvalSearch.Settings
                {
                    Strategy = pr.GetValue(strategy)!, Scorer = pr.GetValue(scorer)!, Steps = pr.GetValue(steps), MaxStepTokens = pr.GetValue(maxStep),
                    Options = new Sharpen.Search.SearchOptions
                    {
                        BudgetTokens = pr.GetValue(budget), Seed = pr.GetValue(seed), MaxSamples = pr.GetValue(maxSamples),
                        BeamWidth = pr.GetValue(beamWidth), Expansions = pr.GetValue(expansions), MctsC = pr.GetValue(mctsC),
                    },
                }, pr.GetValue(rewardModel)?.FullName);
            Console.WriteLine(summary.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }));
        return cmd;
    }

    public static JsonObject Run(string modelDir, string taskName, string? dataPath, int n, int samples, double temperature, int maxNew, int seed, string outDir,
        EvalSearch.Settings? search = null, string? rewardModelDir = null)
    {
        var t = TaskRegistry.Create(taskName);
        if (search is not null) { _ = Sharpen.Search.SearchStrategies.Create(search.Strategy); search.Options.Validate(); }
        var problems = dataPath is null
            ? t.Generate(n, seed)
            : JsonlDataset.LoadSft(dataPath).Items.Take(n).Select(SftPipeline.ToProblem).ToList();
        var loaded = HfCheckpoint.Load(modelDir, requireTokenizer: true);
        using var policy = loaded.Model;
        var engine = new RolloutEngine(policy, loaded.Tokenizer!);
        using var rm = rewardModelDir is null ? null : new Sharpen.Rewards.ModelReward(rewardModelDir);
        if (EvalSearch.IsSearch(search))
        {
            var searchLog = new RunLog(outDir);
            var s = EvalSearch.Run(search!, engine, t, problems, temperature, maxNew, searchLog, rm);
            s["model"] = modelDir;
            s["task"] = taskName;
            s["temperature"] = temperature;
            searchLog.Summary(s);
            return s;
        }
        var result = Evaluation.Run(engine, t, problems, samples, temperature, maxNew, seed);

        // Per-problem rows: the greedy completion and its verdict.
        var log = new RunLog(outDir);
        var rmScores = rm?.Score(result.Greedy.Select((g, i) => (problems[i].Prompt, g.Completion.CompletionText)).ToList());
        for (int i = 0; i < problems.Count; i++)
        {
            var (completion, v) = result.Greedy[i];
            var row = new JsonObject
            {
                ["step"] = i, ["id"] = problems[i].Id, ["prompt"] = problems[i].Prompt, ["completion"] = completion.CompletionText,
                ["correct"] = v.Correct, ["reason"] = v.Reason, ["tokens"] = completion.CompletionIds.Length,
            };
            if (rmScores is not null) row["reward_model"] = rmScores[i];
            log.Metrics(row);
        }
        var summary = result.ToJson();
        summary["strategy"] = "greedy";
        if (rmScores is not null) summary["reward_model_mean"] = rmScores.Average();
        summary["model"] = modelDir;
        summary["task"] = taskName;
        summary["temperature"] = temperature;
        log.Summary(summary);
        return summary;
    }
}
