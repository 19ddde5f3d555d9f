using System.CommandLine;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Tasks;
using Sharpen.Training;
using Sharpen.Evaluation;
using Sharpen.Recipes;
using Sharpen.Rewards;
using Sharpen.Search;

namespace Sharpen.Cli.Commands;

/// <summary><c>sharpen eval</c>: greedy accuracy, pass@k and maj@k of a checkpoint on a task, or the accuracy and cost of a
/// search strategy (<c>--strategy</c>); optionally the mean score of the evaluated completions under a reward model.</summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Checkpoint folder", Required = true };
        var task = new Option<string?>("--task") { Description = $"Task: {string.Join(", ", TaskRegistry.Names)}. Without one, --data prompts are scored by --reward-url and/or --reward-model only" };
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
        var rewardUrl = new Option<string?>("--reward-url") { Description = "Also score the greedy completions with this reward server (reward_server_mean, per-row reward_server)" };
        var cmd = new Command("eval", "Evaluate a checkpoint on a verifiable task, or on prompts scored by reward models or servers.") { model, task, data, n, samples, temperature, maxNew, seed, output,
            strategy, budget, scorer, steps, maxStep, maxSamples, beamWidth, expansions, mctsC, rewardModel, rewardUrl };
        cmd.SetAction(pr => CliErrors.Run(() =>
        {
            if (pr.GetValue(task) is null)
            {
                var s = RunWithoutTask(pr.GetValue(model)!.FullName, pr.GetValue(data)?.FullName, pr.GetValue(n), pr.GetValue(maxNew),
                    pr.GetValue(output)!, pr.GetValue(rewardModel)?.FullName, pr.GetValue(rewardUrl));
                Console.WriteLine(s.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
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
                }, pr.GetValue(rewardModel)?.FullName, pr.GetValue(rewardUrl));
            Console.WriteLine(summary.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }));
        return cmd;
    }

    /// <summary>The --reward-url value as a URL (null when absent); anything but an absolute http(s) URL is an error.</summary>
    static Uri? RewardUrl(string? text) => text is null ? null : Sharpen.Rewards.HttpReward.ParseUrl(text, "--reward-url");

    /// <summary>
    /// Evaluation without a task: the first <paramref name="n"/> prompts of <paramref name="dataPath"/> (rows with a prompt;
    /// a completion is optional), greedy completions, each scored by the reward model and/or the reward server. Rows hold
    /// the prompt, the completion and each score; the summary each function's mean and <c>reward_mean</c>, their sum.
    /// </summary>
    public static JsonObject RunWithoutTask(string modelDir, string? dataPath, int n, int maxNew, string outDir, string? rewardModelDir, string? rewardUrl)
    {
        if (dataPath is null || (rewardModelDir is null && rewardUrl is null))
            throw new ArgumentException("eval without --task needs --data (prompts) and --reward-url and/or --reward-model to score them");
        var url = RewardUrl(rewardUrl);
        var rows = JsonlDataset.LoadPrompts(dataPath).Items.Take(n).ToList();
        var loaded = HfCheckpoint.Load(modelDir, requireTokenizer: true);
        using var policy = loaded.Model;
        var rewards = new List<Sharpen.Rewards.WeightedReward>();
        try
        {
            if (rewardModelDir is not null) rewards.Add(new(new Sharpen.Rewards.ModelReward(rewardModelDir)));
            if (url is not null) rewards.Add(new(new Sharpen.Rewards.HttpReward(url, "reward_server")));
            var prompts = rows.Select(r => new RlPrompt(r.Prompt, r.Fields)).ToList();
            var ro = new RolloutEngine(policy, loaded.Tokenizer!).Generate(prompts.Select(p => p.Prompt).ToList(), new SamplingOptions { Temperature = 0, MaxNewTokens = maxNew });
            var ctx = RlPrompt.Contexts(prompts, ro);
            var perFunction = rewards.Select(w => (Name: w.Function is Sharpen.Rewards.ModelReward ? "reward_model" : "reward_server",
                Scores: w.Function.ScoreAsync(ctx).AsTask().GetAwaiter().GetResult())).ToList();
            var log = new RunLog(outDir);
            for (int i = 0; i < rows.Count; i++)
            {
                var row = new JsonObject { ["step"] = i, ["prompt"] = rows[i].Prompt, ["completion"] = ro[i].CompletionText, ["tokens"] = ro[i].CompletionIds.Length };
                foreach (var (name, scores) in perFunction) row[name] = scores[i];
                log.Metrics(row);
            }
            var summary = new JsonObject { ["n"] = rows.Count, ["strategy"] = "greedy", ["model"] = modelDir, ["data"] = dataPath };
            double total = 0;
            foreach (var (name, scores) in perFunction)
            {
                var applied = scores.Where(x => x.HasValue).Select(x => x!.Value).ToList();
                double mean = applied.Count > 0 ? applied.Average() : double.NaN;
                summary[$"{name}_mean"] = applied.Count > 0 ? mean : null;
                total += applied.Count > 0 ? scores.Sum(x => x ?? 0) / rows.Count : 0;
            }
            summary["reward_mean"] = rows.Count > 0 ? total : null;
            log.Summary(summary);
            return summary;
        }
        finally
        {
            foreach (var d in rewards.Select(w => w.Function).OfType<IDisposable>()) d.Dispose();
        }
    }

    public static JsonObject Run(string modelDir, string taskName, string? dataPath, int n, int samples, double temperature, int maxNew, int seed, string outDir,
        EvalSearch.Settings? search = null, string? rewardModelDir = null, string? rewardUrl = null)
    {
        var t = TaskRegistry.Create(taskName);
        var url = RewardUrl(rewardUrl);
        if (search is not null) { _ = Sharpen.Search.SearchStrategies.Create(search.Strategy); search.Options.Validate(); }
        if (url is not null && EvalSearch.IsSearch(search)) throw new ArgumentException("--reward-url works with the greedy evaluation, not with --strategy");
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
        var result = Evaluator.Run(engine, t, problems, samples, temperature, maxNew, seed);

        // Per-problem rows: the greedy completion and its verdict.
        var log = new RunLog(outDir);
        var rmScores = rm?.Score(result.Greedy.Select((g, i) => (problems[i].Prompt, g.Completion.CompletionText)).ToList());
        double?[]? serverScores = null;
        if (url is not null)
        {
            using var server = new Sharpen.Rewards.HttpReward(url, "reward_server");
            serverScores = server.ScoreAsync(RlPrompt.Contexts(problems.Select(RlPrompt.From).ToList(), result.Greedy.Select(g => g.Completion)))
                .AsTask().GetAwaiter().GetResult();
        }
        for (int i = 0; i < problems.Count; i++)
        {
            var (completion, v) = result.Greedy[i];
            var row = new JsonObject
            {
                ["step"] = i, ["id"] = problems[i].Id, ["prompt"] = problems[i].Prompt, ["completion"] = completion.CompletionText,
                ["correct"] = v.Correct, ["reason"] = v.Reason, ["tokens"] = completion.CompletionIds.Length,
            };
            if (rmScores is not null) row["reward_model"] = rmScores[i];
            if (serverScores is not null) row["reward_server"] = serverScores[i];
            log.Metrics(row);
        }
        var summary = result.ToJson();
        summary["strategy"] = "greedy";
        if (rmScores is not null) summary["reward_model_mean"] = rmScores.Average();
        if (serverScores is not null && serverScores.Any(x => x.HasValue)) summary["reward_server_mean"] = serverScores.Where(x => x.HasValue).Average(x => x!.Value);
        summary["model"] = modelDir;
        summary["task"] = taskName;
        summary["temperature"] = temperature;
        log.Summary(summary);
        return summary;
    }
}
