using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Evaluation;
using Sharpen.Generation;
using Sharpen.Rewards;
using Sharpen.Search;
using Sharpen.Tasks;
using Sharpen.Training;

namespace Sharpen.Recipes;

/// <summary>Settings of one evaluation (the flags of <c>sharpen eval</c>).</summary>
public sealed record EvalSettings
{
    /// <summary>Checkpoint folder of the evaluated policy.</summary>
    public required string Model { get; init; }
    /// <summary>Output folder (metrics.jsonl: one row per problem; summary.json).</summary>
    public required string Out { get; init; }
    /// <summary>Task name (<see cref="TaskRegistry.Names"/>); null: <see cref="Data"/> prompts scored by reward model and/or server only.</summary>
    public string? Task { get; init; }
    /// <summary>Held-out JSONL (null: generate <see cref="N"/> problems from the task).</summary>
    public string? Data { get; init; }
    /// <summary>Problems (or prompts) to evaluate.</summary>
    public int N { get; init; } = 500;
    /// <summary>Samples per problem (k) for pass@k and maj@k.</summary>
    public int Samples { get; init; } = 1;
    /// <summary>Temperature of the k samples (and of search steps).</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Most tokens per completion.</summary>
    public int MaxNewTokens { get; init; } = 64;
    /// <summary>Seed of generated problems and of sampling.</summary>
    public int Seed { get; init; } = 12345;
    /// <summary>Search strategy settings; null or strategy "greedy" = the plain evaluation.</summary>
    public EvalSearch.Settings? Search { get; init; }
    /// <summary>Trained reward model folder that also scores the evaluated completions (reward_model_mean, per-row reward_model).</summary>
    public string? RewardModel { get; init; }
    /// <summary>Reward server URL that also scores the greedy completions (reward_server_mean, per-row reward_server).</summary>
    public string? RewardUrl { get; init; }
    /// <summary>The engine that generates the evaluated completions (default: torch). Search strategies run on the torch engine.</summary>
    public RolloutSpec Rollout { get; init; } = new();
    /// <summary>A multi-turn environment instead of a task: a built-in name (<see cref="Environments.EnvironmentRegistry.Names"/>)
    /// or an environment server's http(s) URL. <see cref="N"/> episodes on seeds <see cref="Seed"/> … Seed + N − 1.</summary>
    public string? Env { get; init; }
    /// <summary>With <see cref="Env"/>: most assistant turns per episode (null: the environment's own limit).</summary>
    public int? MaxTurns { get; init; }
    /// <summary>With <see cref="Env"/>: token budget of a whole episode (null: <see cref="EnvConfig"/>'s <c>token_budget</c>, else 512).</summary>
    public int? TokenBudget { get; init; }
    /// <summary>A YAML file holding the environment's section: a recipe (its <c>env:</c> block is read, the rest ignored)
    /// or the block's keys at the top level. Used instead of, or with, <see cref="Env"/> (then the names must agree), so
    /// an environment with options (a frozen model, a task's settings, a server's URL) is evaluated as its recipe trains it.</summary>
    public string? EnvConfig { get; init; }
    /// <summary>The frozen model of a <c>dsp</c>/<c>daslam</c> environment (<c>--frozen-checkpoint</c>, or <c>--frozen-url</c>
    /// with <c>--frozen-model</c>); replaces the <c>frozen</c> key of <see cref="EnvConfig"/>.</summary>
    public Environments.FrozenModelSpec? Frozen { get; init; }
}

/// <summary>What an evaluation produced: the summary written to summary.json, and the greedy/pass@k/maj@k result when
/// the plain evaluation ran on a task (null for a search strategy or an evaluation without a task).</summary>
public sealed record EvalRunResult(JsonObject Summary, EvalResult? Result);

/// <summary>
/// An evaluation run: greedy accuracy, pass@k and maj@k of a checkpoint on a task, or the accuracy and cost of a
/// search strategy; optionally the mean score of the evaluated completions under a reward model or server. Without a
/// task, prompts from a file are completed greedily and scored by reward model and/or server. Writes metrics.jsonl
/// (one row per problem) and summary.json into <see cref="EvalSettings.Out"/>.
/// </summary>
public static class EvalRun
{
    /// <summary>Runs the evaluation <paramref name="settings"/> describe; <paramref name="log"/> receives progress lines.</summary>
    public static EvalRunResult Run(EvalSettings settings, Action<string>? log = null, CancellationToken cancel = default)
    {
        cancel.ThrowIfCancellationRequested();
        var s = settings;
        if (s.Env is not null || s.EnvConfig is not null)
        {
            if (s.Task is not null || s.Data is not null || EvalSearch.IsSearch(s.Search) || s.RewardModel is not null || s.RewardUrl is not null)
                throw new ArgumentException("--env evaluates episodes in an environment; it takes none of --task, --data, --strategy, --reward-model, --reward-url");
            var envSummary = RunOnEnvironment(s, cancel);
            log?.Invoke($"eval: {envSummary["n"]} episodes, summary in {Path.Combine(s.Out, "summary.json")}");
            return new(envSummary, null);
        }
        var (summary, result) = s.Task is null ? (RunWithoutTask(s), null) : RunOnTask(s, cancel);
        log?.Invoke($"eval: {summary["n"]} problems, summary in {Path.Combine(s.Out, "summary.json")}");
        return new(summary, result);
    }

    /// <summary>The --reward-url value as a URL (null when absent); anything but an absolute http(s) URL is an error.</summary>
    static Uri? RewardUrl(string? text) => text is null ? null : HttpReward.ParseUrl(text, "--reward-url");

    /// <summary>
    /// Evaluation without a task: the first N prompts of the data file (rows with a prompt; a completion is optional),
    /// greedy completions, each scored by the reward model and/or the reward server. Rows hold the prompt, the completion
    /// and each score; the summary each function's mean and <c>reward_mean</c>, their sum.
    /// </summary>
    static JsonObject RunWithoutTask(EvalSettings s)
    {
        string? dataPath = s.Data, rewardModelDir = s.RewardModel, modelDir = s.Model;
        if (dataPath is null || (rewardModelDir is null && s.RewardUrl is null))
            throw new ArgumentException("eval without --task needs --data (prompts) and --reward-url and/or --reward-model to score them");
        var url = RewardUrl(s.RewardUrl);
        var rows = JsonlDataset.LoadPrompts(dataPath).Items.Take(s.N).ToList();
        var loaded = HfCheckpoint.Load(modelDir, requireTokenizer: true);
        using var policy = loaded.Model;
        var rewards = new List<WeightedReward>();
        try
        {
            if (rewardModelDir is not null) rewards.Add(new(new ModelReward(rewardModelDir)));
            if (url is not null) rewards.Add(new(new HttpReward(url, "reward_server")));
            var prompts = rows.Select(r => new RlPrompt(r.Prompt, r.Fields)).ToList();
            var engine = RolloutEngines.Create(s.Rollout, policy, loaded.Tokenizer!);
            IReadOnlyList<Rollout> ro;
            try { ro = engine.Generate(prompts.Select(p => p.Prompt).ToList(), new SamplingOptions { Temperature = 0, MaxNewTokens = s.MaxNewTokens }); }
            finally { (engine as IDisposable)?.Dispose(); }
            var ctx = RlPrompt.Contexts(prompts, ro);
            var perFunction = rewards.Select(w => (Name: w.Function is ModelReward ? "reward_model" : "reward_server",
                Scores: w.Function.ScoreAsync(ctx).AsTask().GetAwaiter().GetResult())).ToList();
            var log = new RunLog(s.Out);
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

    /// <summary>
    /// Episodes in an environment (<see cref="EvalSettings.Env"/>): greedy at temperature 0, else sampled at
    /// <see cref="EvalSettings.Temperature"/> when <see cref="EvalSettings.Samples"/> &gt; 1 is not asked for (one episode per
    /// seed). metrics.jsonl holds one row per episode (seed, return, turns, won, end, tokens per turn), transcripts.jsonl
    /// the trajectories, summary.json success rate, mean return, mean turns and the mean tokens of each turn.
    /// </summary>
    static JsonObject RunOnEnvironment(EvalSettings s, CancellationToken cancel)
    {
        if (s.Samples != 1) throw new ArgumentException("--env plays one greedy episode per seed; --samples must be 1");
        var section = EnvSectionOf(s);
        EnvironmentSource env;
        try { env = EnvironmentSource.From(section, s.EnvConfig ?? "--env"); }
        catch (RecipeException e)
        {
            var message = s.EnvConfig is null ? e.Message.Replace("'env.name'", "--env").Replace("'env.url'", "--env") : e.Message;
            if (message.Contains("'env.frozen' is required", StringComparison.Ordinal))
                message += " (from the command line: --frozen-checkpoint DIR, or --frozen-url URL --frozen-model NAME, or --env-config FILE.yaml with the recipe's env block)";
            throw new ArgumentException(message);
        }
        using var _ = env;
        var loaded = HfCheckpoint.Load(s.Model, requireTokenizer: true);
        using var policy = loaded.Model;
        var options = env.Rollout with { Sampling = env.Rollout.Sampling with { Temperature = 0, MaxNewTokens = s.MaxNewTokens } };
        var seeds = Enumerable.Range(s.Seed, s.N).ToArray();
        var result = EnvironmentEvaluator.Run(new RolloutEngine(policy, loaded.Tokenizer!), env.Create, seeds, options, cancel: cancel);
        var log = new RunLog(s.Out);
        for (int i = 0; i < result.Trajectories.Count; i++)
        {
            var t = result.Trajectories[i];
            log.Metrics(new JsonObject
            {
                ["step"] = i, ["seed"] = t.Seed, ["return"] = t.Return, ["turns"] = t.Turns.Count, ["won"] = t.Succeeded,
                ["end"] = t.End.ToString().ToLowerInvariant(), ["turn_tokens"] = new JsonArray(t.Turns.Select(x => (JsonNode?)(x.TokenIds?.Length ?? 0)).ToArray()),
            });
        }
        var transcripts = Path.Combine(s.Out, "transcripts.jsonl");
        Environments.TrajectoryJsonl.Write(transcripts, result.Trajectories, includeTokens: false);
        var summary = result.ToJson();
        summary["model"] = s.Model;
        summary["max_turns"] = env.Rollout.MaxTurns;
        summary["token_budget"] = env.Rollout.MaxTrajectoryTokens;
        summary["seed"] = s.Seed;
        summary["transcripts"] = transcripts;
        if (env.Frozen is not null)
        {
            // The frozen model's batched calls, requests and tokens over the whole evaluation.
            var counts = new JsonObject();
            foreach (var (k, v) in env.TakeMetrics().OrderBy(kv => kv.Key, StringComparer.Ordinal)) counts[k["frozen/".Length..]] = v;
            counts["model"] = env.Frozen.Describe();
            summary["frozen"] = counts;
        }
        log.Summary(summary);
        return summary;
    }

    /// <summary>The <c>env</c> section an evaluation plays: from <see cref="EvalSettings.EnvConfig"/> (a recipe's <c>env:</c>
    /// block or a bare block) and/or <see cref="EvalSettings.Env"/> (a name or a server URL), with the command line's turn
    /// limit, token budget and frozen model laid over it. Errors name the file or flag.</summary>
    internal static EnvSection EnvSectionOf(EvalSettings s)
    {
        EnvSection section;
        if (s.EnvConfig is { } file)
        {
            if (!File.Exists(file)) throw new ArgumentException($"--env-config: {file} not found");
            JsonNode? root;
            try { root = YamlToJson.Convert(File.ReadAllText(file), file); }
            catch (RecipeException e) { throw new ArgumentException(e.Message); }
            var block = root as JsonObject ?? throw new ArgumentException($"{file}: expected a mapping (a recipe with an 'env:' block, or the block's keys)");
            if (block["env"] is JsonObject inner) block = inner;
            else if (block.ContainsKey("kind")) throw new ArgumentException($"{file}: the recipe has no 'env:' block (kind '{block["kind"]}')");
            try { section = block.Deserialize<EnvSection>(Recipe.Json) ?? throw new ArgumentException($"{file}: empty 'env' block"); }
            catch (JsonException e) { throw new ArgumentException($"{file}: {UnknownKey.Describe(e, "env")}"); }
            if (s.Env is { } named)
            {
                bool asUrl = Uri.TryCreate(named, UriKind.Absolute, out var nu) && nu.Scheme is "http" or "https";
                var theirs = asUrl ? section.Url : section.Name;
                if (!string.Equals(theirs, named, StringComparison.OrdinalIgnoreCase))
                    throw new ArgumentException($"--env is '{named}' but {file}'s env {(asUrl ? "url" : "name")} is '{theirs ?? ""}'; give one of them, or the same");
            }
        }
        else
        {
            section = Uri.TryCreate(s.Env, UriKind.Absolute, out var u) && u.Scheme is "http" or "https"
                ? new EnvSection { Url = s.Env }
                : new EnvSection { Name = s.Env! };
        }
        if (s.MaxTurns is { } turns) section = section with { Turns = turns };
        if (s.TokenBudget is { } budget) section = section with { TokenBudget = budget };
        if (s.Frozen is { } frozen)
        {
            if (section.Url is not null || !FrozenNames.Contains(section.Name, StringComparer.OrdinalIgnoreCase))
                throw new ArgumentException($"--frozen-checkpoint/--frozen-url: only {string.Join(" and ", FrozenNames)} have a frozen model, not '{section.Url ?? section.Name}'");
            try { frozen.Validate(); }
            catch (ArgumentException e) { throw new ArgumentException($"--frozen-*: {e.Message}"); }
            var options = new Dictionary<string, JsonElement>(section.Options ?? [], StringComparer.Ordinal)
            {
                ["frozen"] = JsonSerializer.SerializeToElement(new JsonObject
                {
                    ["checkpoint"] = frozen.Checkpoint, ["url"] = frozen.Url, ["model"] = frozen.Model, ["api_key"] = frozen.ApiKey,
                    ["max_new_tokens"] = frozen.MaxNewTokens, ["temperature"] = frozen.Temperature, ["template"] = frozen.Template,
                    ["timeout_seconds"] = frozen.TimeoutSeconds, ["seed"] = frozen.Seed, ["stop"] = new JsonArray(frozen.Stop.Select(x => (JsonNode?)x).ToArray()),
                }),
            };
            section = section with { Options = options };
        }
        return section;
    }

    static readonly string[] FrozenNames = ["dsp", "daslam"];

    static (JsonObject Summary, EvalResult? Result) RunOnTask(EvalSettings s, CancellationToken cancel)
    {
        string taskName = s.Task!, modelDir = s.Model, outDir = s.Out;
        var search = s.Search;
        var t = TaskRegistry.Create(taskName);
        var url = RewardUrl(s.RewardUrl);
        if (search is not null) { _ = SearchStrategies.Create(search.Strategy); search.Options.Validate(); }
        if (url is not null && EvalSearch.IsSearch(search)) throw new ArgumentException("--reward-url works with the greedy evaluation, not with --strategy");
        var problems = s.Data is null
            ? t.Generate(s.N, s.Seed)
            : JsonlDataset.LoadSft(s.Data).Items.Take(s.N).Select(SftPipeline.ToProblem).ToList();
        var loaded = HfCheckpoint.Load(modelDir, requireTokenizer: true);
        using var policy = loaded.Model;
        var engine = new RolloutEngine(policy, loaded.Tokenizer!);
        using var rm = s.RewardModel is null ? null : new ModelReward(s.RewardModel);
        if (EvalSearch.IsSearch(search))
        {
            if (s.Rollout.Engine != "torch") throw new ArgumentException($"search strategies run on the torch engine; --engine {s.Rollout.Engine} works with the plain evaluation (--strategy greedy)");
            var searchLog = new RunLog(outDir);
            var ss = EvalSearch.Run(search!, engine, t, problems, s.Temperature, s.MaxNewTokens, searchLog, rm);
            ss["model"] = modelDir;
            ss["task"] = taskName;
            ss["temperature"] = s.Temperature;
            searchLog.Summary(ss);
            return (ss, null);
        }
        var chosen = s.Rollout.Engine == "torch" && s.Rollout.Options.Count == 0 ? engine : RolloutEngines.Create(s.Rollout, policy, loaded.Tokenizer!);
        EvalResult result;
        try { result = Evaluator.Run(chosen, t, problems, s.Samples, s.Temperature, s.MaxNewTokens, s.Seed); }
        finally { if (!ReferenceEquals(chosen, engine)) (chosen as IDisposable)?.Dispose(); }
        cancel.ThrowIfCancellationRequested();

        // Per-problem rows: the greedy completion and its verdict.
        var log = new RunLog(outDir);
        var rmScores = rm?.Score(result.Greedy.Select((g, i) => (problems[i].Prompt, g.Completion.CompletionText)).ToList());
        double?[]? serverScores = null;
        if (url is not null)
        {
            using var server = new HttpReward(url, "reward_server");
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
        summary["engine"] = s.Rollout.Engine;
        if (rmScores is not null) summary["reward_model_mean"] = rmScores.Average();
        if (serverScores is not null && serverScores.Any(x => x.HasValue)) summary["reward_server_mean"] = serverScores.Where(x => x.HasValue).Average(x => x!.Value);
        summary["model"] = modelDir;
        summary["task"] = taskName;
        summary["temperature"] = s.Temperature;
        log.Summary(summary);
        return (summary, result);
    }
}
