using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Environments;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tasks;
using Sharpen.Tokenizers;
using Sharpen.Evaluation;
using Sharpen.Training;
using Sharpen.Training.Rl;

namespace Sharpen.Recipes;

/// <summary>What an RL recipe run produced.</summary>
public sealed record RlPipelineResult(RlResult Rl, EvalResult? Before, EvalResult? After, long Parameters, double Seconds);

/// <summary>
/// Runs an <c>rl</c> recipe: load the policy (usually an SFT checkpoint), take prompts from the data
/// file or the task, reward with the task's verifier (plus any extra reward functions passed in),
/// run <see cref="RlTrainer"/>, and evaluate before and after on held-out problems.
/// </summary>
public static class RlPipeline
{
    /// <summary>Runs <paramref name="recipe"/>; <paramref name="extraRewards"/> lets library users add their own reward functions.</summary>
    public static RlPipelineResult Run(Recipe recipe, Action<string>? log = null, bool resume = false,
        IReadOnlyList<WeightedReward>? extraRewards = null, CancellationToken cancel = default)
    {
        if (recipe.Env is not null) return RunEnvironment(recipe, log, resume, cancel);
        var sw = Stopwatch.StartNew();
        var options = recipe.RlOptions();
        var task = recipe.Task?.Build("recipe");   // null: rewards from reward models or servers only, no accuracy
        Directory.CreateDirectory(recipe.Output);

        // Prompts (training) and problems (held-out). Rows need a prompt; a completion is optional.
        IReadOnlyList<RlPrompt> prompts;
        IReadOnlyList<Problem> heldOut;
        if (recipe.Data.Train is { } trainPath)
        {
            prompts = JsonlDataset.LoadPrompts(trainPath, recipe.Data.SkipBadLines, SftPipeline.ChatFormatOf(recipe)).Reported(trainPath, log).Items
                .Select(e => Prompt(e, options)).ToList();
            heldOut = recipe.Data.Test is { } testPath
                ? JsonlDataset.LoadPrompts(testPath, recipe.Data.SkipBadLines, SftPipeline.ChatFormatOf(recipe)).Reported(testPath, log).Items.Select(SftPipeline.ToProblem).ToList()
                : [];
        }
        else
        {
            var t = task ?? throw new RecipeException("recipe: an rl recipe needs 'data.train' or a 'task' to generate prompts");
            var made = DatasetWriter.MakeDataset(t, recipe.Data.TrainProblems + recipe.Data.TestProblems, recipe.Seed,
                Path.Combine(recipe.Output, "data", $"{t.Name}.jsonl"), recipe.Data.TestProblems);
            prompts = JsonlDataset.LoadSft(made.Files[0]).Items.Select(e => Prompt(e, options)).ToList();
            heldOut = JsonlDataset.LoadSft(made.Files[1]).Items.Select(SftPipeline.ToProblem).ToList();
        }

        // Policy.
        var (policy, tokenizer) = SftPipeline.LoadPolicy(recipe, task);
        using var _ = policy;

        // Rewards.
        var rewards = BuildRewards(recipe.Rewards, task, policy, tokenizer);
        using var disposeRewards = new DisposeAll(rewards.Select(w => w.Function).OfType<IDisposable>().ToList());
        if (extraRewards is not null) rewards.AddRange(extraRewards);

        var evalVerifier = task;
        if (options.DatasetReset > 0 && !prompts.Any(p => p.Fields.ContainsKey(DatasetReset.ResponseField)))
            throw new RecipeException("recipe: 'rl.dataset_reset' resets rollouts to prefixes of the dataset's responses, but no training row has a completion");
        if (recipe.Eval.Task is { } evalSection)   // Easy-to-Hard: evaluate on problems of other options (seeded apart from training)
        {
            var evalTask = evalSection.Build("recipe 'eval.task'");
            evalVerifier = evalTask;
            var trainIds = prompts.Select(p => p.Fields.GetValueOrDefault("id")).OfType<string>().ToHashSet(StringComparer.Ordinal);
            heldOut = evalTask.Generate(recipe.Eval.Problems, recipe.Seed + 104729).Where(p => !trainIds.Contains(p.Id)).ToList();
            log?.Invoke($"eval.task: {heldOut.Count} held-out problems from the evaluation task's options");
        }
        var evalProblems = heldOut.Take(recipe.Eval.Problems).ToList();
        EvalResult? before = evalProblems.Count > 0 && task is not null
            ? Evaluator.Run(new RolloutEngine(policy, tokenizer), evalVerifier!, evalProblems, maxNewTokens: recipe.Eval.MaxNewTokens)
            : null;
        if (before is not null) log?.Invoke($"before RL: held-out greedy accuracy {before.Accuracy:P1} (n={before.N})");
        // Without a task, the held-out measure is the rewards' own: the mean total reward of greedy completions.
        var evalPrompts = evalProblems.Select(RlPrompt.From).ToList();
        double? rewardBefore = evalProblems.Count > 0 && task is null
            ? Evaluator.GreedyReward(new RolloutEngine(policy, tokenizer), evalPrompts, rewards, recipe.Eval.MaxNewTokens, cancel)
            : null;
        if (rewardBefore is { } rb) log?.Invoke($"before RL: held-out greedy reward {rb:F4} (n={evalProblems.Count})");

        var spec = recipe.Rollout();
        var engine = recipe.Data.Offline is null && (spec.Engine != "torch" || spec.Options.Count > 0) ? RolloutEngines.Create(spec, policy, tokenizer) : null;
        using var disposeEngine = engine as IDisposable;
        if (engine is not null) log?.Invoke($"rollout engine: {spec.Engine}");
        var trainer = new RlTrainer(policy, tokenizer, options, rewards)
        {
            Log = log, Task = task, EvalProblems = evalProblems, Engine = engine, Tis = spec.Tis, TisCap = spec.TisCap, AsyncRollouts = spec.Async,
            RewardModelDirectory = recipe.Rewards?.FirstOrDefault(r => !string.IsNullOrEmpty(r.Model))?.Model,
        };
        RlResult rl;
        if (recipe.Data.Offline is { } offlinePath)
        {
            var scored = ScoredCompletion.Load(offlinePath, recipe.Data.SkipBadLines).Reported(offlinePath, log);
            rl = trainer.RunOffline(scored.Items, recipe.Output, cancel);
        }
        else rl = trainer.Run(prompts, recipe.Output, resume, cancel);

        EvalResult? after = evalProblems.Count > 0 && task is not null
            ? Evaluator.Run(new RolloutEngine(policy, tokenizer), evalVerifier!, evalProblems, recipe.Eval.Samples, recipe.Eval.Temperature,
                recipe.Eval.MaxNewTokens, recipe.Seed)
            : null;
        var extra = new Dictionary<string, JsonNode?>();
        if (rewardBefore is { } b)
        {
            double rewardAfter = Evaluator.GreedyReward(new RolloutEngine(policy, tokenizer), evalPrompts, rewards, recipe.Eval.MaxNewTokens, cancel);
            (extra["held_out_reward_before"], extra["held_out_reward_after"], extra["n"]) = (b, rewardAfter, evalProblems.Count);
            log?.Invoke($"after RL: held-out greedy reward {rewardAfter:F4} (before {b:F4}, n={evalProblems.Count})");
        }
        if (Evaluator.RecordBeforeAfter(recipe.Output, before, after, policy.ParameterCount(), extra) is { } line) log?.Invoke($"after RL: {line}");
        return new RlPipelineResult(rl, before, after, policy.ParameterCount(), sw.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// A multi-turn <c>rl</c> recipe (<c>env:</c>): greedy success rate on the held-out seeds 0 … eval.problems − 1 before,
    /// <see cref="RlTrainer.RunEnvironment"/>, and the same evaluation after (summary.json: <c>success_rate</c>,
    /// <c>mean_turns</c>, <c>mean_return</c>, <c>turn_tokens</c> after; <c>*_before</c> before; eval_transcripts.jsonl).
    /// </summary>
    static RlPipelineResult RunEnvironment(Recipe recipe, Action<string>? log, bool resume, CancellationToken cancel)
    {
        var sw = Stopwatch.StartNew();
        var options = recipe.RlOptions();
        Directory.CreateDirectory(recipe.Output);
        using var env = EnvironmentSource.From(recipe.Env!, "recipe");
        var (policy, tokenizer) = SftPipeline.LoadPolicyOver(recipe, env.Alphabet);
        using var _ = policy;
        var seeds = Enumerable.Range(0, recipe.Eval.Problems).ToArray();
        var rollout = env.Rollout;
        var greedy = rollout with { Sampling = rollout.Sampling with { Temperature = 0, MaxNewTokens = options.MaxNewTokens } };
        EnvironmentEvalResult? before = seeds.Length > 0
            ? EnvironmentEvaluator.Run(new RolloutEngine(policy, tokenizer), env.Create, seeds, greedy, cancel: cancel)
            : null;
        if (before is not null) log?.Invoke($"before RL: {env.Name} success {before.SuccessRate:P1}, mean turns {before.MeanTurns:F2} (n={before.N})");
        var frozenBefore = env.TakeMetrics();   // the evaluation before training: reported in summary.json, not in the first row
        var trainer = new RlTrainer(policy, tokenizer, options with { EvalProblems = seeds.Length > 0 ? seeds.Length : options.EvalProblems }, [])
        {
            Log = log, Environment = new RlEnvironment(env.Create, rollout) { EvalSeeds = seeds.Length > 0 ? seeds : null, Metrics = env.Frozen is null ? null : env.TakeMetrics },
        };
        var rl = trainer.RunEnvironment(recipe.Output, resume, cancel);
        var runLog = new RunLog(recipe.Output, append: true);
        var summary = runLog.ReadSummary();
        if (before is not null)
            foreach (var key in new[] { "success_rate", "mean_turns", "mean_return" }) summary[key + "_before"] = before.ToJson()[key]?.DeepClone();
        summary["parameters"] = policy.ParameterCount();
        if (env.Frozen is { } frozen)
            summary["frozen"] = new JsonObject
            {
                ["model"] = frozen.Describe(), ["calls"] = frozen.Calls, ["requests"] = frozen.Requests, ["tokens"] = frozen.Tokens,
                ["calls_before"] = frozenBefore["frozen/calls"], ["requests_before"] = frozenBefore["frozen/requests"],
            };
        runLog.Summary(summary);
        if (trainer.EnvironmentEval is { } after)
            log?.Invoke($"after RL: {env.Name} success {after.SuccessRate:P1}, mean turns {after.MeanTurns:F2} (n={after.N})" +
                        (before is null ? "" : $", before {before.SuccessRate:P1}"));
        return new RlPipelineResult(rl, null, null, policy.ParameterCount(), sw.Elapsed.TotalSeconds);
    }

    /// <summary>A training row as an RL prompt; with <c>rl.dataset_reset</c> its completion is kept as the response to reset to (DR-PO).</summary>
    static RlPrompt Prompt(SftExample e, RlOptions options)
    {
        var p = RlPrompt.From(SftPipeline.ToProblem(e));
        if (options.DatasetReset <= 0 || string.IsNullOrEmpty(e.Completion)) return p;
        return p with { Fields = new Dictionary<string, string>(p.Fields) { [DatasetReset.ResponseField] = e.Completion } };
    }

    /// <summary>An <c>flr</c> entry as a <see cref="FollowUpLikelihoodReward"/>; errors name <c>rewards[i].flr.KEY</c>.</summary>
    static FollowUpLikelihoodReward BuildFlr(FlrSection flr, RewardSection r, int i, bool hasName, bool hasModel, bool hasUrl, CausalLM? policy, ITokenizer? tokenizer)
    {
        var key = $"recipe: 'rewards[{i}]'";
        if (hasModel || hasUrl || r.SelfLikelihood is not null || !string.IsNullOrEmpty(r.Prm))
            throw new RecipeException($"{key} gives 'flr' with 'model', 'url', 'prm' or 'self_likelihood'; a reward is one of them (the scoring model of FLR is 'flr.model')");
        if (!double.IsFinite(r.Weight)) throw new RecipeException($"recipe: 'rewards[{i}].weight' must be a finite number, got {r.Weight}");
        if (!(r.MaxAbs > 0) || !double.IsFinite(r.MaxAbs)) throw new RecipeException($"recipe: 'rewards[{i}].max_abs' must be a positive finite number, got {r.MaxAbs}");
        ClipOf(r, i);
        foreach (var (list, field) in new[] { (flr.Positive, "positive"), (flr.Negative, "negative") })
        {
            if (list is null) continue;
            if (list.Count == 0) throw new RecipeException($"recipe: 'rewards[{i}].flr.{field}' is empty; give at least one follow-up or leave it out for the defaults");
            for (int j = 0; j < list.Count; j++)
                if (string.IsNullOrEmpty(list[j])) throw new RecipeException($"recipe: 'rewards[{i}].flr.{field}[{j}]' is empty; a follow-up needs text");
        }
        var name = hasName ? r.Name : "flr";
        if (flr.Model is { } folder)
        {
            LoadedModel loaded;
            try { loaded = HfCheckpoint.Load(folder, requireTokenizer: true); }
            catch (CheckpointException e) { throw new RecipeException($"recipe: 'rewards[{i}].flr.model': {e.Message}"); }
            foreach (var p in loaded.Model.parameters()) p.requires_grad = false;
            return new FollowUpLikelihoodReward(loaded.Model, loaded.Tokenizer!, flr.Positive, flr.Negative, flr.UserTurn, ownsModel: true, name: name);
        }
        if (policy is null || tokenizer is null)
            throw new RecipeException($"{key}: 'flr' without 'flr.model' works in rl recipes only (it scores with the policy's starting weights)");
        return new FollowUpLikelihoodReward(policy.Copy(trainable: false), tokenizer, flr.Positive, flr.Negative, flr.UserTurn, ownsModel: true, name: name);
    }

    /// <summary>
    /// The recipe's <c>rewards</c> entries as reward functions (default: the task's verifier). Each entry is the task's
    /// verifier (<c>name</c> alone), a reward-model folder (<c>model</c>, loaded as a <see cref="ModelReward"/>) or a reward
    /// server (<c>url</c>, an <see cref="HttpReward"/>, with <c>name</c> as its label). The caller disposes the functions.
    /// </summary>
    /// <remarks>A <c>self_likelihood</c> entry needs <paramref name="policy"/> and <paramref name="tokenizer"/> (rl recipes): it scores
    /// with a frozen copy of the policy as it is now (<see cref="SelfLikelihoodReward"/>).</remarks>
    public static List<WeightedReward> BuildRewards(IReadOnlyList<RewardSection>? sections, IVerifiableTask? task,
        CausalLM? policy = null, ITokenizer? tokenizer = null)
    {
        var rewards = new List<WeightedReward>();
        if (sections is null && task is null)
            throw new RecipeException("recipe: without a 'task' there is no verifier; give 'rewards' with 'model' (a reward-model folder) or 'url' (a reward server)");
        try
        {
            for (int i = 0; i < (sections?.Count ?? 1); i++)
            {
                var r = sections?[i] ?? new RewardSection { Name = task!.Name };
                var key = $"recipe: 'rewards[{i}]'";
                bool hasName = !string.IsNullOrEmpty(r.Name), hasModel = !string.IsNullOrEmpty(r.Model), hasUrl = !string.IsNullOrEmpty(r.Url);
                if (r.SelfLikelihood is { } sl)
                {
                    if (hasModel || hasUrl) throw new RecipeException($"{key} gives 'self_likelihood' with 'model' or 'url'; a reward is one of them");
                    if (policy is null || tokenizer is null) throw new RecipeException($"{key}: 'self_likelihood' works in rl recipes only (it scores with the policy's starting weights)");
                    if (!double.IsFinite(r.Weight)) throw new RecipeException($"recipe: 'rewards[{i}].weight' must be a finite number, got {r.Weight}");
                    var self = new SelfLikelihoodReward(policy.Copy(trainable: false), tokenizer, sl.Normalize, ownsModel: true,
                        name: hasName ? r.Name : "self_likelihood");
                    if (rewards.Any(w => w.Function.Name == self.Name))
                    {
                        self.Dispose();
                        throw new RecipeException($"{key} is named '{self.Name}' like an earlier reward; names label the metrics (reward/NAME) and must differ (set 'name')");
                    }
                    rewards.Add(new WeightedReward(self, r.Weight) { Clip = ClipOf(r, i), MaxAbs = r.MaxAbs });
                    continue;
                }
                if (r.Flr is { } flr)
                {
                    var reward = BuildFlr(flr, r, i, hasName, hasModel, hasUrl, policy, tokenizer);
                    if (rewards.Any(w => w.Function.Name == reward.Name))
                    {
                        reward.Dispose();
                        throw new RecipeException($"{key} is named '{reward.Name}' like an earlier reward; names label the metrics (reward/NAME) and must differ (set 'name')");
                    }
                    rewards.Add(new WeightedReward(reward, r.Weight) { Clip = ClipOf(r, i), MaxAbs = r.MaxAbs });
                    continue;
                }
                if (!string.IsNullOrEmpty(r.Prm))
                {
                    if (hasModel || hasUrl) throw new RecipeException($"{key} gives 'prm' with 'model' or 'url'; a reward is one of them");
                    if (!double.IsFinite(r.Weight)) throw new RecipeException($"recipe: 'rewards[{i}].weight' must be a finite number, got {r.Weight}");
                    if (!(r.MaxAbs > 0) || !double.IsFinite(r.MaxAbs)) throw new RecipeException($"recipe: 'rewards[{i}].max_abs' must be a positive finite number, got {r.MaxAbs}");
                    ClipOf(r, i);
                    var prm = LoadProcessReward(r, i, hasName ? r.Name : null);
                    if (rewards.Any(w => w.Function.Name == prm.Name))
                    {
                        prm.Dispose();
                        throw new RecipeException($"{key} is named '{prm.Name}' like an earlier reward; names label the metrics (reward/NAME) and must differ (set 'name')");
                    }
                    rewards.Add(new WeightedReward(prm, r.Weight) { Clip = ClipOf(r, i), MaxAbs = r.MaxAbs });
                    continue;
                }
                if (r.Aggregate is not null) throw new RecipeException($"{key} gives 'aggregate' without 'prm'; it says how a PRM's step scores become one");
                if (hasModel && hasUrl) throw new RecipeException($"{key} gives both 'model' and 'url'; a reward is one of the two");
                if (!hasUrl && hasName == hasModel)
                    throw new RecipeException($"{key} needs exactly one of 'name' (the task's verifier), 'model' (a reward-model folder) or 'url' (a reward server)");
                if (!double.IsFinite(r.Weight)) throw new RecipeException($"recipe: 'rewards[{i}].weight' must be a finite number, got {r.Weight}");
                if (!(r.MaxAbs > 0) || !double.IsFinite(r.MaxAbs)) throw new RecipeException($"recipe: 'rewards[{i}].max_abs' must be a positive finite number, got {r.MaxAbs}");
                ClipOf(r, i);
                IRewardFunction fn;
                if (hasUrl)
                {
                    Uri url;
                    try { url = HttpReward.ParseUrl(r.Url, $"'rewards[{i}].url'"); }
                    catch (ArgumentException e) { throw new RecipeException($"recipe: {e.Message}"); }
                    if (!(r.TimeoutSeconds > 0) || !double.IsFinite(r.TimeoutSeconds))
                        throw new RecipeException($"recipe: 'rewards[{i}].timeout_seconds' must be a positive number of seconds, got {r.TimeoutSeconds}");
                    if (r.Retries < 0) throw new RecipeException($"recipe: 'rewards[{i}].retries' must be 0 or more, got {r.Retries}");
                    if (r.MaxBatch < 0) throw new RecipeException($"recipe: 'rewards[{i}].max_batch' must be 0 (no limit) or more, got {r.MaxBatch}");
                    if (r.Concurrency < 1) throw new RecipeException($"recipe: 'rewards[{i}].concurrency' must be 1 or more, got {r.Concurrency}");
                    fn = new HttpReward(url, hasName ? r.Name : "remote", TimeSpan.FromSeconds(r.TimeoutSeconds), r.Retries,
                        maxBatch: r.MaxBatch, concurrency: r.Concurrency);
                }
                else if (hasModel)
                {
                    try { fn = new ModelReward(r.Model!, normalize: r.Normalize); }
                    catch (CheckpointException e) { throw new RecipeException($"recipe: 'rewards[{i}].model': {e.Message}"); }
                }
                else
                {
                    if (task is null) throw new RecipeException($"{key} names '{r.Name}', a task's verifier, but the recipe has no 'task'; use 'model' or 'url'");
                    if (r.Name != task.Name) throw new RecipeException($"recipe: 'rewards' names '{r.Name}'; recipes can use the task's verifier ('{task.Name}'), a reward model ('model: folder') or a reward server ('url: http://...'); add other reward functions from code");
                    fn = new TaskReward(task);
                }
                if (rewards.Any(w => w.Function.Name == fn.Name))
                {
                    (fn as IDisposable)?.Dispose();
                    throw new RecipeException($"{key} is named '{fn.Name}' like an earlier reward; names label the metrics (reward/NAME) and must differ (set 'name')");
                }
                rewards.Add(new WeightedReward(fn, r.Weight) { Clip = ClipOf(r, i), MaxAbs = r.MaxAbs });
            }
        }
        catch
        {
            foreach (var d in rewards.Select(w => w.Function).OfType<IDisposable>()) d.Dispose();
            throw;
        }
        return rewards;
    }

    /// <summary>
    /// The entry's <c>prm</c> folder as an outcome reward (Easy-to-Hard, arXiv:2403.09472): a PRM folder (<c>prm.json</c>) or an
    /// implicit-PRM folder (<c>implicit_prm.json</c>), scored at the step boundaries recorded with it and aggregated by
    /// <c>aggregate</c> (default min for a PRM, sum for an implicit PRM). The reward owns the loaded model.
    /// </summary>
    static StepScorerReward LoadProcessReward(RewardSection r, int i, string? name)
    {
        var dir = r.Prm!;
        bool isPrm = File.Exists(Path.Combine(dir, ProcessRewardModel.MarkerFile)), isImplicit = File.Exists(Path.Combine(dir, ImplicitPrm.MarkerFile));
        if (!isPrm && !isImplicit)
            throw new RecipeException($"recipe: 'rewards[{i}].prm': {dir} has neither {ProcessRewardModel.MarkerFile} (a kind: prm folder) nor {ImplicitPrm.MarkerFile} (a kind: implicit_prm folder)");
        StepAggregation how;
        try { how = r.Aggregate is { } a ? StepAggregator.Parse(a) : isPrm ? StepAggregation.Min : StepAggregation.Sum; }
        catch (ArgumentException e) { throw new RecipeException($"recipe: 'rewards[{i}].aggregate': {e.Message}"); }
        try
        {
            if (isPrm)
            {
                var prm = new ProcessRewardModel(dir, name);
                return new StepScorerReward(prm, prm.Splitter, how, ownsScorer: true);
            }
            var implicitPrm = ImplicitPrm.Load(dir, name);
            return new StepScorerReward(implicitPrm, implicitPrm.Splitter, how, ownsScorer: true);
        }
        catch (CheckpointException e) { throw new RecipeException($"recipe: 'rewards[{i}].prm': {e.Message}"); }
    }

    /// <summary>The entry's <c>clip: [min, max]</c> as a <see cref="RewardClip"/> (null when absent).</summary>
    static RewardClip? ClipOf(RewardSection r, int i)
    {
        if (r.Clip is null) return null;
        if (r.Clip.Length != 2) throw new RecipeException($"recipe: 'rewards[{i}].clip' must be [min, max], got {r.Clip.Length} numbers");
        try { return new RewardClip(r.Clip[0], r.Clip[1]).Validate($"'rewards[{i}].clip'"); }
        catch (ArgumentException e) { throw new RecipeException($"recipe: {e.Message}"); }
    }

    sealed class DisposeAll(List<IDisposable> items) : IDisposable
    {
        public void Dispose() { foreach (var d in items) d.Dispose(); }
    }
}
