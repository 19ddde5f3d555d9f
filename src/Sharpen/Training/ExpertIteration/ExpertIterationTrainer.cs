using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tasks;
using Sharpen.Tokenizers;
using Sharpen.Evaluation;
using Sharpen.Training.Sft;

namespace Sharpen.Training.ExpertIteration;

/// <summary>What one expert-iteration round measured: one row of the run's <c>metrics.jsonl</c>.</summary>
/// <param name="Iteration">1-based iteration number.</param>
/// <param name="Accuracy">Held-out greedy accuracy of the iteration's model (null without held-out problems).</param>
/// <param name="PassRate">Correct candidates / all candidates of the sample stage.</param>
/// <param name="Problems">Training problems sampled on.</param>
/// <param name="ProblemsSolved">Training problems with at least one correct candidate.</param>
/// <param name="Candidates">Candidates the sample stage returned.</param>
/// <param name="ExamplesKept">Rows of the iteration's <c>data.jsonl</c> (what SFT trained on).</param>
/// <param name="SftLoss">Final SFT loss (null when nothing was kept and SFT was skipped).</param>
/// <param name="SftSteps">SFT optimizer steps run.</param>
/// <param name="GeneratedTokens">Tokens the sample stage generated.</param>
/// <param name="Seconds">Wall-clock time of the iteration.</param>
public sealed record ExpertIterationStats(int Iteration, double? Accuracy, double PassRate, int Problems, int ProblemsSolved, int Candidates,
    int ExamplesKept, double? SftLoss, int SftSteps, long GeneratedTokens, double Seconds)
{
    /// <summary>Further columns a sampler reported (<see cref="IReportingExpertSampler"/>, e.g. ReST-MCTS*'s value targets written).</summary>
    public JsonObject? Extra { get; init; }

    /// <summary>The metrics.jsonl row.</summary>
    public JsonObject ToJson()
    {
        var row = new JsonObject
        {
            ["iteration"] = Iteration, ["accuracy"] = Accuracy, ["pass_rate"] = PassRate, ["problems"] = Problems,
            ["problems_solved"] = ProblemsSolved, ["candidates"] = Candidates, ["examples_kept"] = ExamplesKept,
            ["sft_loss"] = SftLoss is { } l && double.IsFinite(l) ? Math.Round(l, 6) : null, ["sft_steps"] = SftSteps,
            ["generated_tokens"] = GeneratedTokens, ["seconds"] = Math.Round(Seconds, 2),
        };
        foreach (var (k, v) in Extra ?? []) if (!row.ContainsKey(k)) row[k] = v?.DeepClone();
        return row;
    }

    static readonly HashSet<string> OwnKeys = ["iteration", "accuracy", "pass_rate", "problems", "problems_solved", "candidates",
        "examples_kept", "sft_loss", "sft_steps", "generated_tokens", "seconds"];

    /// <summary>Reads a row written by <see cref="ToJson"/>; <paramref name="source"/> names the file in errors.</summary>
    public static ExpertIterationStats FromJson(JsonObject o, string source)
    {
        try
        {
            return new ExpertIterationStats(o["iteration"]!.GetValue<int>(), o["accuracy"]?.GetValue<double>(), o["pass_rate"]!.GetValue<double>(),
                o["problems"]!.GetValue<int>(), o["problems_solved"]!.GetValue<int>(), o["candidates"]!.GetValue<int>(),
                o["examples_kept"]!.GetValue<int>(), o["sft_loss"]?.GetValue<double>(), o["sft_steps"]!.GetValue<int>(),
                o["generated_tokens"]!.GetValue<long>(), o["seconds"]!.GetValue<double>())
            {
                Extra = o.Any(kv => !OwnKeys.Contains(kv.Key))
                    ? new JsonObject(o.Where(kv => !OwnKeys.Contains(kv.Key)).Select(kv => KeyValuePair.Create(kv.Key, kv.Value?.DeepClone())))
                    : null,
            };
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{source}: not an expert-iteration record (expected the keys iteration, accuracy, pass_rate, ...): {e.Message}");
        }
    }
}

/// <summary>What an expert-iteration run produced.</summary>
/// <param name="Iterations">One entry per iteration, in order (including those restored on resume).</param>
/// <param name="BaseAccuracy">Held-out greedy accuracy of the base model (null without held-out problems).</param>
/// <param name="FinalCheckpoint">The last iteration's model, copied to <c>final/</c>.</param>
/// <param name="Seconds">Wall-clock time of this call.</param>
public sealed record ExpertIterationResult(IReadOnlyList<ExpertIterationStats> Iterations, double? BaseAccuracy, string FinalCheckpoint, double Seconds);

/// <summary>
/// Expert iteration (ReST-EM, STaR), top to bottom. Per iteration k: the current policy (the base for k = 1)
/// samples candidates for every training problem through <see cref="Sampler"/>; the verified-correct ones are kept
/// (identical completions once, at most MaxKeptPerProblem per problem) and written to <c>iter-k/data.jsonl</c>; the
/// policy is reset to the base (RestartFromBase) or kept, fine-tuned on that data by <see cref="SftTrainer"/> into
/// <c>iter-k/</c>, evaluated greedily on held-out problems, and one metrics row is appended. <c>iter-k/iteration.json</c>
/// is written last: a folder without it is an interrupted iteration, which a resumed run deletes and runs again.
/// </summary>
public sealed class ExpertIterationTrainer(CausalLM policy, ITokenizer tokenizer, IVerifiableTask task, ExpertIterationOptions options)
{
    /// <summary>Receives human-readable progress lines.</summary>
    public Action<string>? Log { get; init; }
    /// <summary>The sample stage (default: plain sampling from the policy).</summary>
    public IExpertSampler Sampler { get; init; } = new PlainExpertSampler();
    /// <summary>Stop strings for the held-out evaluation.</summary>
    public IReadOnlyList<string> EvalStopStrings { get; init; } = [];
    /// <summary>Called with (iteration, policy) just before each SFT stage, after the reset to the base when RestartFromBase.</summary>
    public Action<int, CausalLM>? BeforeSft { get; init; }

    readonly ExpertIterationOptions _o = options.Validate();

    /// <summary>The folder of iteration <paramref name="k"/>: <c>outDir/iter-k</c>.</summary>
    public static string IterationDir(string outDir, int k) => Path.Combine(outDir, $"iter-{k}");

    /// <summary>
    /// Runs the iterations into <paramref name="outDir"/> (metrics.jsonl, summary.json, base_eval.json, iter-k/, final/).
    /// The policy passed to the constructor is the base; on return it holds the last iterate. With
    /// <paramref name="resume"/>, completed iterations are read back and the run continues after the last one.
    /// </summary>
    public ExpertIterationResult Run(IReadOnlyList<Problem> train, IReadOnlyList<Problem> heldOut, string outDir, bool resume = false,
        CancellationToken cancel = default)
    {
        if (train.Count == 0) throw new ArgumentException("expert iteration needs at least one training problem");
        var sw = Stopwatch.StartNew();
        Directory.CreateDirectory(outDir);
        using var baseModel = policy.Copy(trainable: false);
        var baseWeights = baseModel.Weights().ToDictionary(w => w.Name, w => w.Tensor);

        // Completed iterations (resume) are kept; anything else from an earlier run in this folder is removed.
        var stats = new List<ExpertIterationStats>();
        if (resume)
        {
            for (int k = 1; File.Exists(Path.Combine(IterationDir(outDir, k), "iteration.json")); k++)
            {
                var path = Path.Combine(IterationDir(outDir, k), "iteration.json");
                stats.Add(ExpertIterationStats.FromJson(JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                    ?? throw new InvalidDataException($"{path}: expected a JSON object"), path));
            }
            if (stats.Count == 0) Log?.Invoke($"no completed iteration under {outDir}; starting from the base");
        }
        foreach (var stale in Directory.EnumerateDirectories(outDir, "iter-*"))
            if (!int.TryParse(Path.GetFileName(stale)["iter-".Length..], out var n) || n > stats.Count) Directory.Delete(stale, recursive: true);
        var runLog = new RunLog(outDir);
        foreach (var s in stats) runLog.Metrics(s.ToJson());

        var evalProblems = heldOut.Take(_o.EvalProblems).ToList();
        double? baseAccuracy = BaseAccuracy(outDir, evalProblems, reuse: resume);
        if (stats.Count > 0)
        {
            HfCheckpoint.LoadWeightsInto(policy, Path.Combine(IterationDir(outDir, stats.Count), "final"));
            Log?.Invoke($"resumed after iteration {stats.Count}");
        }

        for (int k = stats.Count + 1; k <= _o.Iterations; k++)
        {
            cancel.ThrowIfCancellationRequested();
            var iterSw = Stopwatch.StartNew();
            var dir = IterationDir(outDir, k);
            Directory.CreateDirectory(dir);

            // 1. Sample with the current policy (the previous iterate) and verify.
            var candidates = Sampler.Sample(new ExpertSampleRequest(policy, tokenizer, task, train, k, SampleSeed(k), _o));
            if (candidates.Count != train.Count)
                throw new InvalidOperationException($"the sampler returned candidates for {candidates.Count} problems, expected {train.Count}");
            int total = candidates.Sum(c => c.Count), correct = candidates.Sum(c => c.Count(x => x.Correct));
            int solved = candidates.Count(c => c.Any(x => x.Correct));
            var report = (Sampler as IReportingExpertSampler)?.LastReport;
            long tokens = report?.GeneratedTokens ?? candidates.Sum(c => c.Sum(x => (long)x.Tokens));

            // 2. Keep the verified-correct completions (deduped, capped) and write them down.
            var prior = _o.Accumulate && k > 1 ? JsonlDataset.LoadSft(Path.Combine(IterationDir(outDir, k - 1), "data.jsonl")).Items : [];
            var kept = Keep(train, candidates, _o.MaxKeptPerProblem, _o.Dedupe, k, prior);
            DatasetWriter.WriteSft(Path.Combine(dir, "data.jsonl"), kept);
            Log?.Invoke($"iteration {k}/{_o.Iterations}: {correct}/{total} candidates correct, {solved}/{train.Count} problems solved, {kept.Count} examples kept");

            // 3. Fine-tune: from the base (ReST-EM, STaR) or from the current policy.
            cancel.ThrowIfCancellationRequested();
            if (_o.RestartFromBase) policy.LoadWeights(baseWeights, "base model");
            BeforeSft?.Invoke(k, policy);
            int steps = 0;
            double? sftLoss = null;
            if (kept.Count > 0)
            {
                var sft = new SftTrainer(policy, tokenizer, _o.Sft with { MaxSteps = _o.SftStepsAt(k), CheckpointEvery = 0 })
                    { Log = Log is null ? null : line => Log($"  iter {k} sft: {line}") }
                    .Run(kept, [], dir, cancel: cancel);
                steps = sft.Steps;
                sftLoss = sft.FinalLoss;
            }
            else
            {
                Log?.Invoke($"iteration {k}: nothing to train on; the model stays as it was");
                HfCheckpoint.SaveAtomically(Path.Combine(dir, "final"), policy, tokenizer);
            }

            // 4. Held-out greedy accuracy, then the record that marks the iteration complete.
            double? accuracy = evalProblems.Count > 0 ? Evaluate(evalProblems) : null;
            var row = new ExpertIterationStats(k, accuracy, total == 0 ? 0 : (double)correct / total, train.Count, solved, total,
                kept.Count, sftLoss, steps, tokens, iterSw.Elapsed.TotalSeconds) { Extra = report?.Metrics };
            AtomicFile.WriteAllText(Path.Combine(dir, "iteration.json"), row.ToJson().ToJsonString());
            runLog.Metrics(row.ToJson());
            stats.Add(row);
            Log?.Invoke($"iteration {k}/{_o.Iterations}: held-out accuracy {(accuracy is { } a ? a.ToString("P1") : "n/a")}, pass rate {row.PassRate:P1}, {iterSw.Elapsed.TotalSeconds:F0} s");
        }

        var finalDir = Path.Combine(outDir, "final");
        HfCheckpoint.SaveAtomically(finalDir, policy, tokenizer);
        var best = stats.Where(s => s.Accuracy is not null).OrderByDescending(s => s.Accuracy).ThenBy(s => s.Iteration).FirstOrDefault();
        runLog.Summary(new JsonObject
        {
            ["method"] = _o.Method, ["iterations"] = stats.Count, ["base_accuracy"] = baseAccuracy,
            ["final_accuracy"] = stats.Count > 0 ? stats[^1].Accuracy : baseAccuracy,
            ["best_accuracy"] = best?.Accuracy, ["best_iteration"] = best?.Iteration,
            ["examples_kept"] = new JsonArray(stats.Select(s => (JsonNode)s.ExamplesKept).ToArray()),
            ["generated_tokens"] = stats.Sum(s => s.GeneratedTokens), ["final_checkpoint"] = finalDir,
            ["seconds"] = Math.Round(stats.Sum(s => s.Seconds), 2),
        });
        return new ExpertIterationResult(stats, baseAccuracy, finalDir, sw.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// The training data of an iteration. Per problem (grouped by <see cref="Problem.Id"/>): the examples of
    /// <paramref name="prior"/> first (when accumulating), then the correct candidates in the order the sampler returned
    /// them; with <paramref name="dedupe"/> a completion already kept for that problem is skipped; at most
    /// <paramref name="maxPerProblem"/> per problem. Rows carry the problem's <c>id</c>, <c>answer</c> and fields, the
    /// candidate's fields, and the <c>iteration</c> that produced them.
    /// </summary>
    public static List<SftExample> Keep(IReadOnlyList<Problem> problems, IReadOnlyList<IReadOnlyList<ExpertCandidate>> candidates,
        int maxPerProblem, bool dedupe, int iteration, IReadOnlyList<SftExample>? prior = null)
    {
        var byProblem = new Dictionary<string, List<SftExample>>(StringComparer.Ordinal);
        var order = new List<string>();
        bool TryAdd(string id, SftExample e)
        {
            if (!byProblem.TryGetValue(id, out var list)) { byProblem[id] = list = []; order.Add(id); }
            if (list.Count >= maxPerProblem) return false;
            if (dedupe && list.Any(x => string.Equals(x.Completion, e.Completion, StringComparison.Ordinal))) return false;
            list.Add(e);
            return true;
        }
        foreach (var e in prior ?? [])
            TryAdd(e.Fields.GetValueOrDefault("id") ?? e.Prompt, e);
        for (int i = 0; i < problems.Count; i++)
        {
            var p = problems[i];
            foreach (var c in candidates[i])
            {
                if (!c.Correct) continue;
                var fields = new Dictionary<string, string> { ["id"] = p.Id, ["answer"] = p.Answer };
                foreach (var (key, v) in p.Fields) fields[key] = v;
                foreach (var (key, v) in c.Fields) fields[key] = v;
                fields["iteration"] = iteration.ToString(System.Globalization.CultureInfo.InvariantCulture);
                TryAdd(p.Id, new SftExample(p.Prompt, c.Completion, fields));
            }
        }
        return order.SelectMany(id => byProblem[id]).ToList();
    }

    long SampleSeed(int iteration) => (long)_o.Seed * 1_000_003 + iteration;

    double Evaluate(IReadOnlyList<Problem> problems) =>
        Evaluator.Run(new RolloutEngine(policy, tokenizer), task, problems, maxNewTokens: _o.MaxNewTokens, stopStrings: EvalStopStrings).Accuracy;

    /// <summary>The base model's held-out accuracy: read from base_eval.json when resuming, otherwise measured and written there.</summary>
    double? BaseAccuracy(string outDir, IReadOnlyList<Problem> evalProblems, bool reuse)
    {
        if (evalProblems.Count == 0) return null;
        var path = Path.Combine(outDir, "base_eval.json");
        if (reuse && File.Exists(path) && JsonNode.Parse(File.ReadAllText(path))?["accuracy"] is JsonValue v && v.TryGetValue(out double stored))
            return stored;
        double accuracy = Evaluate(evalProblems);
        AtomicFile.WriteAllText(path, new JsonObject { ["accuracy"] = accuracy, ["n"] = evalProblems.Count }.ToJsonString());
        Log?.Invoke($"base model: held-out greedy accuracy {accuracy:P1} (n={evalProblems.Count})");
        return accuracy;
    }

}
