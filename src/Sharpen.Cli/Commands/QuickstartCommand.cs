using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Sharpen.Evaluation;
using Sharpen.Recipes;

namespace Sharpen.Cli.Commands;

/// <summary>
/// <c>sharpen quickstart</c>: parses the flags, runs <see cref="Quickstart.Run"/> (data → model → SFT → RL, each stage
/// evaluated on held-out problems) and draws report.md from its result.
/// </summary>
public static class QuickstartCommand
{
    /// <summary>The quickstart's knobs (<see cref="QuickstartSettings"/>) and the output folder.</summary>
    public sealed record Settings : QuickstartSettings
    {
        /// <summary>Output folder.</summary>
        public string Out { get; init; } = "runs/quickstart";
    }

    /// <summary>The command; <paramref name="run"/> replaces the run itself (tests read the parsed settings this way).</summary>
    public static Command Create(Action<Settings>? run = null)
    {
        var output = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => "runs/quickstart" };
        var steps = new Option<int>("--sft-steps") { Description = "SFT optimizer steps", DefaultValueFactory = _ => new Settings().SftSteps };
        var test = new Option<int>("--test-problems") { Description = "Held-out problems for evaluation", DefaultValueFactory = _ => 500 };
        var train = new Option<int>("--train-problems") { Description = "Worked solutions the SFT stage learns from", DefaultValueFactory = _ => new Settings().TrainProblems };
        var seed = new Option<int>("--seed") { Description = "Seed of data, initialisation and order", DefaultValueFactory = _ => 1 };
        var d = new Settings();
        var maxNumber = new Option<int>("--max-number") { Description = "Largest Countdown number (difficulty)", DefaultValueFactory = _ => d.MaxNumber };
        var hidden = new Option<int>("--hidden-size") { Description = "Width of the policy", DefaultValueFactory = _ => d.HiddenSize };
        var layers = new Option<int>("--layers") { Description = "Transformer layers of the policy", DefaultValueFactory = _ => d.Layers };
        var useAll = new Option<bool>("--use-all-numbers") { Description = "Every number must be used exactly once", DefaultValueFactory = _ => d.UseAllNumbers };
        var algorithm = new Option<string>("--rl-algorithm") { Description = "RL algorithm of the second stage (with --env the default is " + new AgentQuickstartSettings().RlAlgorithm + ")", DefaultValueFactory = _ => d.RlAlgorithm };
        var iterations = new Option<int>("--rl-iterations") { Description = "RL iterations", DefaultValueFactory = _ => d.RlIterations };
        var lr = new Option<double>("--rl-lr") { Description = "RL learning rate", DefaultValueFactory = _ => d.RlLearningRate };
        var beta = new Option<double>("--rl-beta") { Description = "KL coefficient toward the SFT model", DefaultValueFactory = _ => d.RlBeta };
        var a = new AgentQuickstartSettings();
        var env = new Option<string?>("--env") { Description = "Agent quickstart in a multi-turn environment (guess-number): SFT on random-guess games, then RL; success rate within the turn limit on --test-problems held-out games" };
        var envHigh = new Option<int>("--env-high") { Description = "--env: largest secret number (1 … N)", DefaultValueFactory = _ => a.High };
        var envTurns = new Option<int>("--env-turns") { Description = "--env: guesses per game", DefaultValueFactory = _ => a.MaxTurns };
        var envSft = new Option<int>("--env-sft-steps") { Description = "--env: SFT optimizer steps", DefaultValueFactory = _ => a.SftSteps };
        var envIters = new Option<int>("--env-rl-iterations") { Description = "--env: RL iterations", DefaultValueFactory = _ => a.RlIterations };
        var envLr = new Option<double>("--env-rl-lr") { Description = "--env: RL learning rate", DefaultValueFactory = _ => a.RlLearningRate };
        var envMini = new Option<int>("--env-rl-mini-batch") { Description = "--env: trajectories per RL optimizer step (0: the whole iteration's batch)", DefaultValueFactory = _ => a.RlMiniBatchSize };
        var envWarmup = new Option<int>("--env-rl-warmup") { Description = "--env: RL optimizer steps of linear learning-rate warmup", DefaultValueFactory = _ => a.RlWarmupSteps };
        var envEpochs = new Option<int>("--env-rl-epochs") { Description = "--env: passes over each RL iteration's trajectories", DefaultValueFactory = _ => a.RlEpochs };
        var envHidden = new Option<int>("--env-hidden-size") { Description = "--env: width of the policy", DefaultValueFactory = _ => a.HiddenSize };
        var envLayers = new Option<int>("--env-layers") { Description = "--env: transformer layers of the policy", DefaultValueFactory = _ => a.Layers };
        var envTrain = new Option<int>("--env-train-games") { Description = "--env: random-guess demonstration games of the SFT stage", DefaultValueFactory = _ => a.TrainGames };
        var envBeta = new Option<double>("--env-rl-beta") { Description = "--env: KL coefficient toward the SFT model during RL", DefaultValueFactory = _ => a.RlBeta };
        var envIllegal = new Option<double>("--env-illegal-reward") { Description = "--env: reward of an illegal guess (ruled out by the feedback, or not a number in range; ≤ 0)", DefaultValueFactory = _ => a.IllegalReward };
        var envProgress = new Option<double>("--env-progress-reward") { Description = "--env: reward per bit of information a guess gains (the interval's size before / after, log2; ≥ 0)", DefaultValueFactory = _ => a.ProgressReward };
        var envEntropy = new Option<double>("--env-rl-entropy") { Description = "--env: entropy bonus coefficient of the RL loss", DefaultValueFactory = _ => a.RlEntropy };
        var envGames = new Option<int>("--env-rl-games") { Description = "--env: games (seeds) per RL iteration", DefaultValueFactory = _ => a.RlGames };
        var envSamples = new Option<int>("--env-rl-samples") { Description = "--env: trajectories per seed (the group)", DefaultValueFactory = _ => a.RlSamples };
        var envNumberTokens = new Option<bool>("--env-number-tokens") { Description = "--env: every number one token of the policy's vocabulary (false: one token per character)", DefaultValueFactory = _ => a.NumberTokens };
        var cmd = new Command("quickstart", "Train a small policy on Countdown (SFT, then RL), evaluate it on held-out problems after each stage, and write a report.")
            { output, steps, train, test, seed, maxNumber, useAll, hidden, layers, algorithm, iterations, lr, beta, env, envHigh, envTurns, envSft, envIters, envLr, envMini, envEpochs, envWarmup, envHidden, envLayers, envTrain, envBeta, envIllegal, envGames, envSamples, envNumberTokens, envProgress, envEntropy };
        cmd.SetAction(pr => CliErrors.Run(() =>
        {
            if (pr.GetValue(env) is { } envName)
            {
                var agent = new AgentQuickstartSettings
                {
                    Env = envName, High = pr.GetValue(envHigh), MaxTurns = pr.GetValue(envTurns), SftSteps = pr.GetValue(envSft),
                    RlIterations = pr.GetValue(envIters), RlLearningRate = pr.GetValue(envLr), TestGames = pr.GetValue(test), Seed = pr.GetValue(seed),
                    RlAlgorithm = pr.GetResult(algorithm) is { Implicit: false } ? pr.GetValue(algorithm)! : a.RlAlgorithm, RlMiniBatchSize = pr.GetValue(envMini), RlEpochs = pr.GetValue(envEpochs), RlWarmupSteps = pr.GetValue(envWarmup),
                    HiddenSize = pr.GetValue(envHidden), Layers = pr.GetValue(envLayers), TrainGames = pr.GetValue(envTrain), RlBeta = pr.GetValue(envBeta),
                    IllegalReward = pr.GetValue(envIllegal), RlGames = pr.GetValue(envGames), RlSamples = pr.GetValue(envSamples),
                    NumberTokens = pr.GetValue(envNumberTokens), ProgressReward = pr.GetValue(envProgress), RlEntropy = pr.GetValue(envEntropy),
                };
                // An 84k-parameter policy gains nothing from intra-op threads: measured with the defaults on the quiet 2-core
                // machine, 2 threads took 6.2 minutes and 1 thread 2.6 (README). SHARPEN_NUM_THREADS still decides when set.
                Sharpen.Torch.TorchRuntime.EnsureLoaded();
                if (Environment.GetEnvironmentVariable("SHARPEN_NUM_THREADS") is null) TorchSharp.torch.set_num_threads(1);
                RunAgent(agent, pr.GetValue(output) is "runs/quickstart" ? "runs/quickstart-guess-number" : pr.GetValue(output)!, Console.WriteLine);
                return 0;
            }
            var settings = new Settings
            {
                Out = pr.GetValue(output)!, SftSteps = pr.GetValue(steps), TrainProblems = pr.GetValue(train), TestProblems = pr.GetValue(test), Seed = pr.GetValue(seed),
                MaxNumber = pr.GetValue(maxNumber), UseAllNumbers = pr.GetValue(useAll), HiddenSize = pr.GetValue(hidden), Layers = pr.GetValue(layers), RlAlgorithm = pr.GetValue(algorithm)!, RlIterations = pr.GetValue(iterations),
                RlLearningRate = pr.GetValue(lr), RlBeta = pr.GetValue(beta),
            };
            if (run is not null) run(settings);
            else Run(settings, Console.WriteLine);
            return 0;
        }));
        return cmd;
    }

    /// <summary>The SFT stage as a recipe (<see cref="Quickstart.SftRecipe"/> under <see cref="Settings.Out"/>).</summary>
    public static Recipe SftRecipe(Settings s) => Quickstart.SftRecipe(s, s.Out);

    /// <summary>Runs the quickstart (<see cref="Quickstart.Run"/>), then draws report.md and prints its table.</summary>
    public static JsonObject Run(Settings s, Action<string> log)
    {
        var r = Quickstart.Run(s, s.Out, log);
        var table = new List<string>
        {
            $"Countdown (3 numbers from 1–{s.MaxNumber}, targets ≤ 100), {r.Parameters:N0}-parameter model, {r.Seconds / 60:F1} minutes.", "",
            "| stage | held-out greedy accuracy | n | seconds |", "| --- | ---: | ---: | ---: |",
        };
        foreach (var st in r.Stages)
            table.Add($"| {st.Name} | {st.Accuracy:P1} | {st.N} | {st.Seconds.ToString(CultureInfo.InvariantCulture)} |");
        table.Add("");
        table.Add("Greedy verdicts after SFT: " + Verdicts(r.SftEval));
        table.Add("");
        table.Add($"Greedy verdicts after {s.RlAlgorithm}: " + Verdicts(r.RlAfter));
        // The held-out curve starts at the SFT model's accuracy (iteration 0).
        var rlMetrics = r.RlMetrics.Prepend(new JsonObject { ["step"] = 0, ["eval_accuracy"] = r.RlBefore.Accuracy }).ToList();
        var report = RunReport.Write(s.Out, "Sharpen quickstart", r.SftMetrics, table, rlMetrics, lossTitle: "Training loss (SFT)");
        log($"report: {report}");
        foreach (var line in table.Skip(2)) log(line);
        return r.Summary;
    }

    /// <summary>Runs the agent quickstart (<see cref="AgentQuickstart.Run"/>) and writes report.md: the stages, plots of the
    /// RL rollouts' success rate and mean turns per iteration, and three held-out transcripts after SFT and after RL.</summary>
    public static JsonObject RunAgent(AgentQuickstartSettings s, string outDir, Action<string> log)
    {
        var r = AgentQuickstart.Run(s, outDir, log);
        var md = new System.Text.StringBuilder("# Sharpen agent quickstart\n\n");
        md.AppendLine($"Guess the number in {s.Low}–{s.High} within {s.MaxTurns} guesses, {r.Parameters:N0}-parameter model, {r.Seconds / 60:F1} minutes.");
        md.AppendLine("SFT sees only games whose guesses are random legal numbers (no strategy); RL is rewarded 1 for a win, " +
            $"{s.ProgressReward.ToString(CultureInfo.InvariantCulture)} per bit of information a guess gains and {s.IllegalReward.ToString(CultureInfo.InvariantCulture)} per illegal guess. " +
            "The success rate counts wins only.\n");
        md.AppendLine("| stage | held-out success rate | mean turns | n | seconds |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: |");
        foreach (var st in r.Stages)
            md.AppendLine($"| {st.Name} | {st.SuccessRate:P1} | {st.MeanTurns.ToString("F2", CultureInfo.InvariantCulture)} | {st.N} | {st.Seconds.ToString(CultureInfo.InvariantCulture)} |");
        md.AppendLine();
        // Iteration 0 is the SFT model's held-out result.
        var rows = r.RlMetrics.Prepend(new JsonObject { ["step"] = 0, ["eval_success_rate"] = r.SftEval.SuccessRate, ["eval_mean_turns"] = r.SftEval.MeanTurns }).ToList();
        if (RunReport.Plot(outDir, "success_rate.png", "RL: success rate per iteration", "success rate", rows,
                ("success_rate", "rollouts (sampled)"), ("eval_success_rate", "held-out (greedy)")))
            md.AppendLine("![success rate](success_rate.png)\n");
        if (RunReport.Plot(outDir, "mean_turns.png", "RL: mean turns per iteration", "turns", rows,
                ("mean_turns", "rollouts (sampled)"), ("eval_mean_turns", "held-out (greedy)")))
            md.AppendLine("![mean turns](mean_turns.png)\n");
        foreach (var (name, eval) in new[] { ("After SFT", r.SftEval), ($"After {s.RlAlgorithm}", r.RlEval) })
        {
            md.AppendLine($"## {name}: three held-out games\n");
            foreach (var t in eval.Trajectories.Take(3))
                md.AppendLine($"seed {t.Seed}, {(t.Succeeded ? "won" : "lost")} in {t.Turns.Count} turns:\n\n```text\n{Sharpen.Environments.TranscriptRenderer.Plain(t.Messages).TrimEnd()}\n```\n");
        }
        md.AppendLine("Raw numbers: `metrics.jsonl` (the RL run's rows), `summary.json`, `sft_transcripts.jsonl`, `rl_transcripts.jsonl`.");
        var path = Path.Combine(outDir, "report.md");
        File.WriteAllText(path, md.ToString());
        log($"report: {path}");
        return r.Summary;
    }

    static string Verdicts(EvalResult e) => string.Join(", ", e.Verdicts.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value}"));
}
