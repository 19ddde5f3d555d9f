using System.CommandLine;
using System.Text.Json.Nodes;
using Sharpen.Training;
using Sharpen.Recipes;
using Sharpen.Training.ExpertIteration;
using Sharpen.Training.Preference;
using Sharpen.Training.Rl;
using Sharpen.Data;

namespace Sharpen.Cli.Commands;

/// <summary><c>sharpen train RECIPE.yaml [--resume]</c>: run a recipe.</summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var recipe = new Argument<FileInfo?>("recipe") { Description = "YAML recipe (see recipes/)", Arity = ArgumentArity.ZeroOrOne };
        var resume = new Option<bool>("--resume") { Description = "Continue from the last checkpoint in the output folder" };
        var output = new Option<string?>("--out") { Description = "Override the recipe's output folder" };
        var skipBad = new Option<bool>("--skip-bad-lines") { Description = "Skip and count malformed JSONL lines instead of stopping at the first" };
        var trlConfig = new Option<FileInfo?>("--trl-config") { Description = "Run a TRL config file (flat YAML of TRL/transformers keys) instead of a recipe; needs --trainer" };
        var trainer = new Option<string?>("--trainer") { Description = $"With --trl-config: the TRL trainer it configures ({string.Join(", ", TrlConfig.Trainers.Keys)})" };
        var cmd = new Command("train", "Train from a YAML recipe (or a TRL config); writes metrics.jsonl, summary.json, checkpoints, the final model and report.md.")
            { recipe, resume, output, skipBad, trlConfig, trainer };
        var engineFlags = new EngineFlags();
        engineFlags.AddTo(cmd);
        cmd.SetAction((pr, ct) => Task.FromResult(CliErrors.Run(() =>
        {
            Recipe r;
            string name, path, command;
            if (pr.GetValue(trlConfig) is { } trl)
            {
                if (pr.GetValue(recipe) is not null) throw new RecipeException("give a recipe or --trl-config, not both");
                var t = pr.GetValue(trainer) ?? throw new RecipeException($"--trl-config needs --trainer ({string.Join(", ", TrlConfig.Trainers.Keys)})");
                r = TrlConfig.Load(trl.FullName, t);
                (name, path, command) = (trl.Name, trl.FullName, $"sharpen train --trl-config {trl.Name} --trainer {t}");
            }
            else
            {
                var file = pr.GetValue(recipe) ?? throw new RecipeException("give a recipe file (or --trl-config FILE --trainer NAME)");
                if (pr.GetValue(trainer) is not null) throw new RecipeException("--trainer goes with --trl-config; a recipe names its 'kind'");
                r = Recipe.Load(file.FullName);
                (name, path, command) = (file.Name, file.FullName, $"sharpen train {file.Name}");
            }
            if (pr.GetValue(output) is { } o) r = r with { Output = o };
            if (pr.GetValue(skipBad)) r = r with { Data = r.Data with { SkipBadLines = true } };
            if (engineFlags.Section(pr, r.RolloutSection) is { } rollout)
            {
                if (!Recipe.RolloutKinds.Contains(r.Kind))
                    throw new RecipeException($"{name}: --engine works with kind {string.Join(", ", Recipe.RolloutKinds)}; a {r.Kind} recipe does not sample rollouts");
                r = r with { RolloutSection = rollout };
                r.Rollout(name);
            }
            bool resumed = pr.GetValue(resume);
            var code = Marked(r, name, resumed, () => Dispatch(r, name, resumed, ct));
            if (ModelCard.Write(r.Output, r, command, File.ReadAllText(path)) is { } card) Console.WriteLine($"model card: {card}");
            return code;
        })));
        return cmd;
    }

    /// <summary>
    /// Runs <paramref name="run"/> and records how it ended in the output folder's summary.json: <c>status: completed</c> on
    /// success; on an error <c>status: failed</c> (or <c>interrupted</c>) with the one-line error, then rethrows. A folder this
    /// run created and left empty (it failed before writing anything) is removed instead. A resumed run first drops a torn
    /// last line of metrics.jsonl (what a crash mid-append leaves), with a warning.
    /// </summary>
    static int Marked(Recipe r, string name, bool resume, Func<int> run)
    {
        var existed = Directory.Exists(r.Output);
        if (resume && existed) new RunLog(r.Output, append: true).RepairTornLine(Console.Error.WriteLine);
        int code;
        try
        {
            code = run();
        }
        catch (Exception e)
        {
            if (!Directory.Exists(r.Output)) throw;
            if (!existed && !Directory.EnumerateFileSystemEntries(r.Output).Any()) { Directory.Delete(r.Output); throw; }
            new RunLog(r.Output, append: true).Summary(new JsonObject
            {
                ["status"] = e is OperationCanceledException ? "interrupted" : "failed",
                ["error"] = CliErrors.Message(e),
                ["recipe"] = name,
                ["kind"] = r.Kind,
                ["resumable"] = Directory.Exists(Path.Combine(r.Output, "checkpoints")) && Directory.EnumerateDirectories(Path.Combine(r.Output, "checkpoints")).Any(),
                ["time"] = DateTimeOffset.UtcNow.ToString("O"),
            });
            throw;
        }
        var log = new RunLog(r.Output, append: true);
        var summary = log.ReadSummary();
        summary.Remove("error");
        summary["status"] = "completed";
        log.Summary(summary);
        return code;
    }

    static int Dispatch(Recipe r, string name, bool resume, CancellationToken ct)
    {
        {
            if (r.Kind == "rl") return RunRl(r, name, resume, ct);
            if (r.Kind == "preference") return RunPreference(r, name, resume, ct);
            if (r.Kind == "kto") return RunKto(r, name, resume, ct);
            if (r.Kind == "reward_model") return RunRewardModel(r, name, resume, ct);
            if (r.Kind is "online_dpo" or "dno" or "spin") return RunOnlinePreference(r, name, resume, ct);
            if (r.Kind == "expert_iteration") return RunExpertIteration(r, name, resume, ct);
            if (r.Kind == "offline_pg") return RunOfflinePg(r, name, resume, ct);
            if (r.Kind is "prm" or "implicit_prm") return ProcessRewardTraining.Run(r, name, resume, ct);
            if (r.Kind == "ranking") return RunRanking(r, name, resume, ct);
            if (r.Kind == "align_distil") return RunAlignDistil(r, name, resume, ct);
            var result = SftPipeline.Run(r, Console.WriteLine, resume, ct);
            var metrics = new RunLog(r.Output, append: true).ReadMetrics();
            var lines = new List<string>
            {
                $"{result.TrainExamples} training examples, {result.Parameters:N0} parameters, {result.Sft.Steps} steps in {result.Seconds:F0} s.",
                "", $"Final training loss {result.Sft.FinalLoss:F4}" + (result.Sft.EvalLoss is { } el ? $", held-out loss {el:F4}" : "") + ".",
            };
            if (result.Eval is { } e)
                lines.Add($"Held-out ({e.N} problems): greedy accuracy {e.Accuracy:P1}, pass@{e.Samples} {e.PassAtK:P1}, maj@{e.Samples} {e.MajAtK:P1}.");
            Console.WriteLine($"report: {RunReport.Write(r.Output, $"sharpen train {name}", metrics, lines, lossTitle: "Training loss (SFT)")}");
            return 0;
        }
    }

    /// <summary>Writes report.md (the run's metrics with <paramref name="lines"/> on top) and prints its path.</summary>
    static void WriteReport(Recipe r, string name, IReadOnlyList<string> lines, string lossTitle)
    {
        var metrics = new RunLog(r.Output, append: true).ReadMetrics();
        Console.WriteLine($"report: {RunReport.Write(r.Output, $"sharpen train {name}", metrics, lines, lossTitle: lossTitle)}");
    }

    /// <summary>Prints a run's one-line result, writes report.md with it on top, and returns the exit code 0.</summary>
    static int Finish(Recipe r, string name, string line, string lossTitle)
    {
        Console.WriteLine(line);
        WriteReport(r, name, [line], lossTitle);
        return 0;
    }

    /// <summary>" (N lines skipped)" when a data file had lines skipped, else nothing.</summary>
    static string Skipped(int lines) => lines > 0 ? $" ({lines} lines skipped)" : "";

    static int RunPreference(Recipe r, string name, bool resume, CancellationToken ct)
    {
        var result = PreferencePipeline.Run(r, Console.WriteLine, resume, ct);
        var line = $"{r.PreferenceOptions().Loss}: {result.Result.Steps} steps on {result.Pairs} pairs" +
            Skipped(result.SkippedLines) +
            $", {result.Parameters:N0} parameters, {result.Seconds:F0} s; final loss {result.Result.FinalLoss:F4}, pair accuracy {result.Result.FinalAccuracy:P0}.";
        return Finish(r, name, line, "Preference loss");
    }

    static int RunKto(Recipe r, string name, bool resume, CancellationToken ct)
    {
        var result = KtoPipeline.Run(r, Console.WriteLine, resume, ct);
        var line = $"kto: {result.Result.Steps} steps on {result.Examples} unpaired examples" +
            Skipped(result.SkippedLines) +
            $", {result.Parameters:N0} parameters, {result.Seconds:F0} s; final loss {result.Result.FinalLoss:F4}.";
        return Finish(r, name, line, "KTO loss");
    }

    static int RunAlignDistil(Recipe r, string name, bool resume, CancellationToken ct)
    {
        var result = AlignDistilPipeline.Run(r, Console.WriteLine, resume, ct);
        var line = $"align_distil: {result.Result.Steps} steps on {result.Examples} prompt/response rows" +
            Skipped(result.SkippedLines) +
            $", {result.Parameters:N0} parameters, {result.Seconds:F0} s; final KL(teacher ‖ student) {result.Result.FinalLoss:F4}.";
        return Finish(r, name, line, "AlignDistil loss (KL to the teacher)");
    }

    static int RunRewardModel(Recipe r, string name, bool resume, CancellationToken ct)
    {
        var result = RewardModelPipeline.Run(r, Console.WriteLine, resume, ct);
        var line = $"reward model: {result.Result.Steps} steps on {result.Pairs} pairs" +
            Skipped(result.SkippedLines) +
            $", {result.Parameters:N0} parameters, {result.Seconds:F0} s; final loss {result.Result.FinalLoss:F4}, " +
            $"pair accuracy {result.Result.FinalAccuracy:P0}, reward margin {result.Result.FinalMargin:F4}; checkpoint {result.Result.FinalCheckpoint}.";
        return Finish(r, name, line, "Reward-model loss");
    }

    static int RunOnlinePreference(Recipe r, string name, bool resume, CancellationToken ct)
    {
        var judge = r.Judge() is { } spec ? JudgeClient.Create(spec) : null;
        var result = OnlineDpoPipeline.Run(r, Console.WriteLine, resume, cancel: ct, pairwiseJudge: judge?.AsPairwiseJudge(ct));
        if (judge is not null) Console.WriteLine($"judge: {judge.Calls} requests, {judge.Failures} unparsed replies, {judge.Inconsistent} pairs whose two orders disagreed");
        var o = r.OnlinePreferenceOptions();
        var lines = new List<string>
        {
            $"{o.Algorithm} ({o.Loss}): {result.Result.Iterations} iterations, {result.Result.TotalPairs} pairs, {result.Parameters:N0} parameters, {result.Seconds:F0} s; final loss {result.Result.FinalLoss:F4}.",
        };
        if (result.Before is { } b && result.After is { } a)
            lines.Add($"Held-out greedy accuracy: {b.Accuracy:P1} before, {a.Accuracy:P1} after (n={a.N}); pass@{a.Samples} {a.PassAtK:P1}, maj@{a.Samples} {a.MajAtK:P1}.");
        Console.WriteLine(lines[0]);
        WriteReport(r, name, lines, $"Preference loss ({o.Algorithm})");
        return 0;
    }

    static int RunExpertIteration(Recipe r, string name, bool resume, CancellationToken ct)
    {
        var result = ExpertIterationPipeline.Run(r, Console.WriteLine, resume, cancel: ct);
        var o = r.ExpertIterationOptions();
        static string Pct(double? x) => x is { } v ? v.ToString("P1") : "n/a";
        var lines = new List<string>
        {
            $"{o.Method}: {result.Result.Iterations.Count} iterations on {result.TrainProblems} problems, {result.Parameters:N0} parameters, {result.Seconds:F0} s.",
            "", "| iteration | held-out accuracy | pass rate of samples | problems solved | examples kept | SFT loss |", "| --- | --- | --- | --- | --- | --- |",
            $"| base | {Pct(result.Result.BaseAccuracy)} | | | | |",
        };
        foreach (var s in result.Result.Iterations)
            lines.Add($"| {s.Iteration} | {Pct(s.Accuracy)} | {s.PassRate:P1} | {s.ProblemsSolved}/{s.Problems} | {s.ExamplesKept} | {(s.SftLoss is { } l ? l.ToString("F4") : "skipped")} |");
        if (result.Eval is { } e)
            lines.AddRange(["", $"Final held-out ({e.N} problems): greedy accuracy {e.Accuracy:P1}, pass@{e.Samples} {e.PassAtK:P1}, maj@{e.Samples} {e.MajAtK:P1}."]);
        Console.WriteLine($"report: {RunReport.Write(r.Output, $"sharpen train {name}", [], lines)}");
        return 0;
    }

    static int RunRanking(Recipe r, string name, bool resume, CancellationToken ct)
    {
        if (resume) throw new RecipeException($"{name}: a ranking run writes no checkpoints (it takes seconds to minutes); run it again without --resume");
        var result = RankingPipeline.Run(r, Console.WriteLine, ct);
        var line = $"{r.RankingOptions().Task}: held-out {result.Metric} {result.Before:F4} before training, {result.After:F4} after {result.Rows.Count} steps.";
        return Finish(r, name, line, "REINFORCE loss (Plackett-Luce ranking policy)");
    }

    static int RunOfflinePg(Recipe r, string name, bool resume, CancellationToken ct)
    {
        var result = OfflinePolicyPipeline.Run(r, Console.WriteLine, resume, ct);
        var loss = r.OfflinePolicyOptions().Loss;
        var line = $"{loss}: {result.Result.Steps} steps on {result.Result.Items} {(loss switch { "copg" => "pairs", "alol" => "positive-advantage rows", _ => "step-labelled solutions" })} from {result.Rows} {(loss == "direct_advantage_po" ? "rows" : "scored completions")}" +
            Skipped(result.SkippedLines) +
            $", {result.Parameters:N0} parameters, {result.Seconds:F0} s; final loss {result.Result.FinalLoss:F4}.";
        return Finish(r, name, line, "Offline policy-gradient loss");
    }

    static int RunRl(Recipe r, string name, bool resume, CancellationToken ct)
    {
        var result = RlPipeline.Run(r, Console.WriteLine, resume, cancel: ct);
        var metrics = new RunLog(r.Output, append: true).ReadMetrics();
        var lines = new List<string> { $"{r.RlOptions().Algorithm}: {result.Rl.Iterations} iterations, {result.Parameters:N0} parameters, {result.Seconds:F0} s." };
        if (result.Before is { } b && result.After is { } a)
            lines.Add($"Held-out greedy accuracy: {b.Accuracy:P1} before, {a.Accuracy:P1} after (n={a.N}); pass@{a.Samples} {a.PassAtK:P1}, maj@{a.Samples} {a.MajAtK:P1}.");
        Console.WriteLine($"report: {RunReport.Write(r.Output, $"sharpen train {name}", [], lines, metrics)}");
        return 0;
    }
}
