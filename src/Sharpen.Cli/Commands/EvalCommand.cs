using System.CommandLine;
using Sharpen.Recipes;
using Sharpen.Tasks;

namespace Sharpen.Cli.Commands;

/// <summary><c>sharpen eval</c>: parses the flags into <see cref="EvalSettings"/>, runs <see cref="EvalRun.Run"/> (greedy accuracy,
/// pass@k and maj@k of a checkpoint on a task, or the accuracy and cost of a search strategy; optional reward-model and
/// reward-server scores) and prints the summary.</summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo?>("--model") { Description = "Checkpoint folder (required, except with --reward-model-bench)" };
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
        var beamWidth = new Option<int>("--beam-width") { Description = "beam: partial solutions kept; dvts: total beams N (N / expansions independent subtrees)", DefaultValueFactory = _ => 4 };
        var expansions = new Option<int>("--expansions") { Description = "beam: next steps per kept solution; mcts: steps per expansion", DefaultValueFactory = _ => 4 };
        var probe = new Option<int>("--probe-samples") { Description = "compute-optimal: samples whose verifier scores estimate a problem's difficulty", DefaultValueFactory = _ => 4 };
        var difficulty = new Option<double>("--difficulty-threshold") { Description = "compute-optimal: difficulty (1 − mean probe score) below which a problem is easy", DefaultValueFactory = _ => 0.5 };
        var easy = new Option<string>("--easy-strategy") { Description = "compute-optimal: strategy for easy problems", DefaultValueFactory = _ => "weighted-vote" };
        var hard = new Option<string>("--hard-strategy") { Description = "compute-optimal: strategy for hard problems", DefaultValueFactory = _ => "beam" };
        var mctsC = new Option<double>("--mcts-c") { Description = "mcts: exploration constant (PUCT)", DefaultValueFactory = _ => 1.25 };
        var rewardModel = new Option<DirectoryInfo?>("--reward-model") { Description = "Also score the evaluated completions with this trained reward model (reward_model_mean, per-row reward_model)" };
        var rewardUrl = new Option<string?>("--reward-url") { Description = "Also score the greedy completions with this reward server (reward_server_mean, per-row reward_server)" };
        var env = new Option<string?>("--env") { Description = $"Multi-turn environment: {string.Join(", ", Sharpen.Environments.EnvironmentRegistry.Names)}, or a server's http(s) URL; --n greedy episodes on seeds --seed … (success rate, mean return, mean turns, tokens per turn; transcripts.jsonl)" };
        var maxTurns = new Option<int?>("--max-turns") { Description = "--env: most assistant turns per episode (default: the environment's own limit)" };
        var tokenBudget = new Option<int?>("--token-budget") { Description = "--env: token budget of a whole episode (default: --env-config's token_budget, else 512)" };
        var rmBench = new Option<FileInfo?>("--reward-model-bench") { Description = "RewardMATH-style benchmark of reward models: JSONL rows {prompt, correct, incorrect: [...]}; scores --reward-model (or every model of --policy-scores): accuracy (correct above all incorrect) and MRR" };
        var policyScores = new Option<FileInfo?>("--policy-scores") { Description = "--reward-model-bench: JSONL rows {reward_model: DIR, policy_score: number} (the policy optimised against each); adds the Pearson and Spearman correlations of the benchmark scores with them" };
        var envConfig = new Option<FileInfo?>("--env-config") { Description = "--env: a YAML file with the environment's section: a recipe (its env: block) or the block's keys (frozen model, task options, server URL), e.g. recipes/dsp-countdown.yaml" };
        var frozenCheckpoint = new Option<DirectoryInfo?>("--frozen-checkpoint") { Description = "--env dsp/daslam: the frozen model, a Sharpen checkpoint loaded in process (prompt template raw, greedy, 48 tokens)" };
        var frozenUrl = new Option<string?>("--frozen-url") { Description = "--env dsp/daslam: the frozen model behind an OpenAI-compatible server (base URL ending in /v1; with --frozen-model)" };
        var frozenModel = new Option<string?>("--frozen-model") { Description = "--frozen-url: the served model's name" };
        var cmd = new Command("eval", "Evaluate a checkpoint on a verifiable task, in a multi-turn environment, or on prompts scored by reward models or servers; or benchmark reward models.") { model, task, data, n, samples, temperature, maxNew, seed, output,
            strategy, budget, scorer, steps, maxStep, maxSamples, beamWidth, expansions, mctsC, probe, difficulty, easy, hard, rewardModel, rewardUrl, env, maxTurns, tokenBudget, rmBench, policyScores, envConfig, frozenCheckpoint, frozenUrl, frozenModel };
        var engineFlags = new EngineFlags();
        engineFlags.AddTo(cmd);
        cmd.SetAction(pr => CliErrors.Run(() =>
        {
            if (pr.GetValue(rmBench) is { } bench)
            {
                if (pr.GetValue(model) is not null || pr.GetValue(task) is not null || pr.GetValue(env) is not null)
                    throw new ArgumentException("--reward-model-bench scores reward models only; it takes none of --model, --task, --env");
                var rms = new List<string>();
                List<double>? ps = null;
                if (pr.GetValue(policyScores) is { } psFile) (rms, ps) = Sharpen.Evaluation.RewardModelBench.LoadPolicyScores(psFile.FullName);
                else if (pr.GetValue(rewardModel) is { } one) rms.Add(one.FullName);
                var benchSummary = Sharpen.Evaluation.RewardModelBench.Run(bench.FullName, rms, ps, pr.GetValue(output)!, Console.Error.WriteLine);
                Console.WriteLine(benchSummary.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            if (pr.GetValue(policyScores) is not null) throw new ArgumentException("--policy-scores goes with --reward-model-bench");
            var settings = new EvalSettings
            {
                Model = (pr.GetValue(model) ?? throw new ArgumentException("--model is required (a checkpoint folder)")).FullName, Task = pr.GetValue(task), Data = pr.GetValue(data)?.FullName, N = pr.GetValue(n),
                Samples = pr.GetValue(samples), Temperature = pr.GetValue(temperature), MaxNewTokens = pr.GetValue(maxNew), Seed = pr.GetValue(seed),
                Out = pr.GetValue(output)!, RewardModel = pr.GetValue(rewardModel)?.FullName, RewardUrl = pr.GetValue(rewardUrl),
                Rollout = engineFlags.Spec(pr),
                Env = pr.GetValue(env), MaxTurns = pr.GetValue(maxTurns), TokenBudget = pr.GetValue(tokenBudget), EnvConfig = pr.GetValue(envConfig)?.FullName,
                Frozen = pr.GetValue(frozenCheckpoint) is null && pr.GetValue(frozenUrl) is null && pr.GetValue(frozenModel) is null ? null
                    : new Sharpen.Environments.FrozenModelSpec { Checkpoint = pr.GetValue(frozenCheckpoint)?.FullName, Url = pr.GetValue(frozenUrl), Model = pr.GetValue(frozenModel) },
                Search = new EvalSearch.Settings
                {
                    Strategy = pr.GetValue(strategy)!, Scorer = pr.GetValue(scorer)!, Steps = pr.GetValue(steps), MaxStepTokens = pr.GetValue(maxStep),
                    Options = new Sharpen.Search.SearchOptions
                    {
                        BudgetTokens = pr.GetValue(budget), Seed = pr.GetValue(seed), MaxSamples = pr.GetValue(maxSamples),
                        BeamWidth = pr.GetValue(beamWidth), Expansions = pr.GetValue(expansions), MctsC = pr.GetValue(mctsC),
                        ProbeSamples = pr.GetValue(probe), DifficultyThreshold = pr.GetValue(difficulty), EasyStrategy = pr.GetValue(easy)!, HardStrategy = pr.GetValue(hard)!,
                    },
                },
            };
            var result = EvalRun.Run(settings);
            Console.WriteLine(result.Summary.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }));
        return cmd;
    }
}
