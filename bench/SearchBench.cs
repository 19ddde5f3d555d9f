using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Search;
using Sharpen.Tasks;
using Sharpen.Training;
using Sharpen.Evaluation;
using Sharpen.Recipes;
using Sharpen.Training.RewardModels;

namespace Sharpen.Bench;

/// <summary>Settings of <c>sharpen bench search</c>.</summary>
public sealed record SearchBenchSettings
{
    /// <summary>The policy folder; null = <c>runs/quickstart/rl/final</c>, else <c>runs/quickstart/sft/final</c>, else the quickstart's SFT stage trained into <see cref="WorkDir"/>.</summary>
    public string? Policy { get; init; }
    /// <summary>Scratch folder (labels, PRMs, an SFT policy when none is found).</summary>
    public string WorkDir { get; init; } = "runs/bench-search";
    /// <summary>Most held-out problems searched (fewer when <see cref="MaxMinutes"/> runs out first).</summary>
    public int Problems { get; init; } = 200;
    /// <summary>A tiny smoke run.</summary>
    public bool Quick { get; init; }
    /// <summary>Wall-clock target of the whole run; the search phase stops taking new problems when it is reached.</summary>
    public double MaxMinutes { get; init; } = 25;

    /// <summary>Throws naming the bad option.</summary>
    public SearchBenchSettings Validate()
    {
        if (Problems < 1) throw new ArgumentException($"--problems must be ≥ 1, got {Problems}");
        if (!(MaxMinutes > 0)) throw new ArgumentException($"--max-minutes must be > 0, got {MaxMinutes}");
        return this;
    }
}

/// <summary>
/// Accuracy against test-time compute on held-out Countdown with one policy: greedy, best-of-N (verifier as an oracle,
/// Monte-Carlo PRM, implicit PRM), majority and PRM-weighted vote, PRM-guided beam search and MCTS, each at several
/// generated-token budgets per problem; the PRMs themselves trained here at equal labelling compute (generated tokens),
/// with first-wrong-step F1 and best-of-8 accuracy; and the best strategy per budget and difficulty bucket.
/// </summary>
public static class SearchBench
{
    const double Temperature = 0.7;
    const int MaxNewTokens = 48, MaxStepTokens = 16, DifficultySamples = 8;

    /// <summary>The strategy × scorer configurations searched (scorer null = none).</summary>
    public static readonly (string Label, string Strategy, string? Scorer)[] Configs =
    [
        ("greedy", "greedy", null), ("bon+verifier (oracle)", "bon", "verifier"), ("bon+prm", "bon", "prm"),
        ("bon+implicit-prm", "bon", "implicit-prm"), ("vote", "vote", null), ("weighted-vote+prm", "weighted-vote", "prm"),
        ("beam+prm", "beam", "prm"), ("mcts+prm", "mcts", "prm"),
    ];

    /// <summary>Runs the benchmark. <paramref name="sftRecipe"/> is the quickstart's SFT stage (its task defines the problems; trained when no policy is found).</summary>
    public static JsonObject Run(Action<string> log, SearchBenchSettings s, Recipe sftRecipe)
    {
        s.Validate();
        var total = Stopwatch.StartNew();
        var deadline = TimeSpan.FromMinutes(s.MaxMinutes);
        bool q = s.Quick;
        int[] budgets = q ? [48, 96] : [48, 96, 192, 384, 768];
        double[] fractions = q ? [1.0] : [0.125, 0.25, 0.5, 1.0];
        int labelProblems = q ? 2 : 256, heldOutLabelled = q ? 2 : 100, prmSteps = q ? 2 : 300;
        Directory.CreateDirectory(s.WorkDir);
        var task = sftRecipe.Task!.Build("bench");

        // 1. The policy.
        var (policyDir, policySource) = ResolvePolicy(s, sftRecipe, log);
        log($"policy: {policyDir} ({policySource})");
        var loaded = HfCheckpoint.Load(policyDir, requireTokenizer: true);
        using var model = loaded.Model;
        var engine = new RolloutEngine(model, loaded.Tokenizer!);

        // 2. Problems: held out = the policy's SFT test split when found; PRM training problems disjoint from it (and from SFT training).
        var root = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(policyDir)))!;
        var (trainFile, testFile) = DatasetWriter.SplitPaths(Path.Combine(root, "sft", "data", "countdown.jsonl"));
        List<Problem> heldOut;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        string heldOutSource;
        if (File.Exists(testFile))
        {
            heldOut = JsonlDataset.LoadSft(testFile).Items.Select(SftPipeline.ToProblem).ToList();
            heldOutSource = $"{testFile} (the policy's SFT held-out split)";
            if (File.Exists(trainFile)) foreach (var e in JsonlDataset.LoadSft(trainFile).Items) seen.Add(e.Fields.GetValueOrDefault("id") ?? e.Prompt);
        }
        else
        {
            heldOut = task.Generate(Math.Max(s.Problems, heldOutLabelled), seed: 101).ToList();
            heldOutSource = "freshly generated (seed 101); no SFT data found next to the policy, so overlap with its training data is not checked";
        }
        heldOut = heldOut.Take(q ? Math.Min(s.Problems, 3) : s.Problems).ToList();
        foreach (var p in heldOut) seen.Add(p.Id);
        var pool = task.Generate(labelProblems * 40 + 200, seed: 7).Where(p => seen.Add(p.Id)).ToList();
        log($"problems: {heldOut.Count} held out ({heldOutSource}); {pool.Count} fresh problems for PRM data");

        // 3. Difficulty: the policy's own pass rate over DifficultySamples samples per held-out problem; the same samples give best-of-8 per PRM.
        var diffSamples = engine.Generate(heldOut.Select(p => p.Prompt).ToList(),
            new SamplingOptions { Temperature = Temperature, MaxNewTokens = MaxNewTokens, SamplesPerPrompt = DifficultySamples, Seed = 11 });
        var groups = heldOut.Select(_ => new List<(string Text, bool Correct)>()).ToList();
        foreach (var r in diffSamples) groups[r.PromptIndex].Add((r.CompletionText, task.Verify(heldOut[r.PromptIndex], r.CompletionText).Correct));
        var bucketOf = groups.Select(g => Bucket(g.Count(x => x.Correct))).ToArray();
        log($"difficulty: {string.Join(", ", BucketNames.Select(b => $"{b} {bucketOf.Count(x => x == b)}"))}");

        // 4. Labelling compute. Monte-Carlo labels in chunks (so each fraction's compute is measured), held-out MC labels for F1.
        var splitter = StepSplitter.Countdown;
        var labelOptions = new StepLabelOptions { SamplesPerProblem = 4, Rollouts = 4, Temperature = Temperature, MaxNewTokens = MaxNewTokens };
        var mcChunks = new List<(List<StepLabelledExample> Rows, long Tokens)>();
        var labelSet = pool.Take(labelProblems).ToList();
        int chunks = (int)Math.Round(1 / fractions.Min());
        for (int c = 0; c < chunks; c++)
        {
            var part = labelSet.Skip(c * labelProblems / chunks).Take((c + 1) * labelProblems / chunks - c * labelProblems / chunks).ToList();
            var res = new StepLabeler(engine, task, splitter, labelOptions with { Seed = 100 + c }).Label(part);
            mcChunks.Add((res.Rows.ToList(), res.GeneratedTokens));
            log($"mc labels chunk {c + 1}/{chunks}: {res.Rows.Count} solutions, {res.Steps} steps, {res.GeneratedTokens} generated tokens ({res.Seconds:F0} s)");
        }
        long mcTotal = mcChunks.Sum(c => c.Tokens);
        var heldOutRows = new StepLabeler(engine, task, splitter, labelOptions with { SamplesPerProblem = 2, Rollouts = 8, Seed = 999 })
            .Label(heldOut.Take(heldOutLabelled).ToList()).Rows;
        log($"held-out mc labels: {heldOutRows.Count} solutions (8 rollouts per prefix)");

        // Implicit-PRM data: outcome-labelled solutions (4 per problem) sampled until they cost as many generated tokens as all MC labelling.
        var outcomes = new List<(OutcomeExample Example, long Tokens)>();
        long implicitTokens = 0;
        for (int start = 0; implicitTokens < mcTotal && start < pool.Count; start += 64)
        {
            var part = pool.Skip(start).Take(64).ToList();
            var outs = engine.Generate(part.Select(p => p.Prompt).ToList(),
                new SamplingOptions { Temperature = Temperature, MaxNewTokens = MaxNewTokens, SamplesPerPrompt = 4, Seed = 500 + start });
            foreach (var r in outs)
            {
                if (implicitTokens >= mcTotal) break;
                var p = part[r.PromptIndex];
                implicitTokens += r.CompletionIds.Length;
                outcomes.Add((new OutcomeExample(p.Prompt, r.CompletionText, task.Verify(p, r.CompletionText).Correct ? 1 : 0,
                    new Dictionary<string, string> { ["id"] = p.Id }), implicitTokens));
            }
        }
        log($"implicit-prm data: {outcomes.Count} outcome-labelled solutions, {implicitTokens} generated tokens (MC: {mcTotal})");

        // 5. PRMs at each fraction of the labelling compute, same optimizer steps; F1 on held-out MC rows and best-of-8.
        var prmRows = new JsonArray();
        string? mcDir = null, implicitDir = null;
        foreach (var f in fractions)
        {
            int usedChunks = (int)Math.Round(f * chunks);
            var mcRows = mcChunks.Take(usedChunks).SelectMany(c => c.Rows).ToList();
            long mcTokens = mcChunks.Take(usedChunks).Sum(c => c.Tokens);
            var tag = $"{f:0.###}".Replace('.', '_');
            var dir = Path.Combine(s.WorkDir, $"prm-mc-{tag}");
            var sw = Stopwatch.StartNew();
            TrainMcPrm(policyDir, mcRows, dir, prmSteps);
            prmRows.Add(PrmRow("mc", f, mcTokens, mcRows.Count, mcRows.Sum(r => r.Steps.Count), sw.Elapsed.TotalSeconds, Path.Combine(dir, "final"),
                task, splitter, heldOut, heldOutRows, groups, log));
            if (f == 1.0) mcDir = Path.Combine(dir, "final");

            var imp = outcomes.TakeWhile(o => o.Tokens <= mcTokens).Select(o => o.Example).ToList();
            long impTokens = outcomes.TakeWhile(o => o.Tokens <= mcTokens).Select(o => o.Tokens).LastOrDefault();
            dir = Path.Combine(s.WorkDir, $"prm-implicit-{tag}");
            sw.Restart();
            TrainImplicitPrm(policyDir, imp, dir, prmSteps);
            prmRows.Add(PrmRow("implicit", f, impTokens, imp.Count, imp.Sum(o => splitter.Split(o.Completion).Count), sw.Elapsed.TotalSeconds,
                Path.Combine(dir, "final"), task, splitter, heldOut, heldOutRows, groups, log));
            if (f == 1.0) implicitDir = Path.Combine(dir, "final");
        }

        // 6. Strategies × budgets, problem by problem (so all strategies see the same problems when time runs out).
        var specs = new Dictionary<string, string> { ["verifier"] = "verifier", ["prm"] = $"prm:{mcDir}", ["implicit-prm"] = $"implicit-prm:{implicitDir}" };
        var scorers = specs.ToDictionary(kv => kv.Key, kv => SearchScorerRegistry.Create(kv.Value, task, splitter, StepAggregation.Last));
        try
        {
            var shared = new SharedSamplePolicy(new LmSearchPolicy(engine, splitter, Temperature, MaxStepTokens, MaxNewTokens));
            var runs = new List<(int Config, int Budget)>();
            for (int c = 0; c < Configs.Length; c++)
                foreach (var b in Configs[c].Strategy == "greedy" ? [budgets[0]] : budgets) runs.Add((c, b));
            var results = runs.ToDictionary(r => r, _ => new List<SearchEvalRow>());
            var replayed = runs.ToDictionary(r => r, _ => 0.0);
            int searched = 0;
            for (int i = 0; i < heldOut.Count; i++)
            {
                if (total.Elapsed > deadline && searched > 0) { log($"time limit: searched {searched} of {heldOut.Count} problems"); break; }
                var problem = SearchProblem.From(heldOut[i], task);
                shared.Clear();
                foreach (var (c, b) in runs)
                {
                    var (_, strategy, scorerName) = Configs[c];
                    var sc = scorerName is null ? null : scorers[scorerName];
                    var context = new SearchContext(shared, new SearchOptions { BudgetTokens = b, Seed = 1 }, sc?.Outcome, sc?.StepsFor);
                    double before = shared.ReplayedSeconds;
                    var result = SearchStrategies.Create(strategy).Search(problem, context, SearchStrategies.Derive(1, i));
                    replayed[(c, b)] += shared.ReplayedSeconds - before;
                    results[(c, b)].Add(new SearchEvalRow(heldOut[i], result, task.Verify(heldOut[i], result.Completion)));
                }
                searched++;
                if (searched % 10 == 0 || q) log($"searched {searched} problems ({total.Elapsed.TotalMinutes:F1} min)");
            }

            var rows = new JsonArray();
            foreach (var (c, b) in runs)
            {
                var r = new SearchEvalResult(Configs[c].Strategy, b, results[(c, b)]);
                var o = r.ToJson();
                o.Remove("verdicts");
                o["label"] = Configs[c].Label;
                o["scorer"] = Configs[c].Scorer;
                double p = r.Accuracy;
                o["accuracy"] = Math.Round(p, 4);
                o["stderr"] = Math.Round(Math.Sqrt(p * (1 - p) / r.Rows.Count), 4);
                // Shared samples: bon/vote/weighted-vote draw identical samples (same seed); the generation time is counted for each.
                o["mean_seconds"] = Math.Round(r.Rows.Average(x => x.Result.Cost.Seconds) + replayed[(c, b)] / r.Rows.Count, 4);
                var byBucket = new JsonObject();
                foreach (var name in BucketNames)
                {
                    var inB = r.Rows.Select((x, k) => (x, k)).Where(t => bucketOf[t.k] == name).ToList();
                    if (inB.Count > 0) byBucket[name] = Math.Round(inB.Count(t => t.x.Verdict.Correct) / (double)inB.Count, 4);
                }
                o["accuracy_by_difficulty"] = byBucket;
                rows.Add(o);
                log($"{Configs[c].Label} @ {b}: accuracy {p:P1} ± {Math.Sqrt(p * (1 - p) / r.Rows.Count):P1}, {r.Rows.Average(x => (double)x.Result.Cost.GeneratedTokens):F0} tokens");
            }

            var best = new JsonArray();
            foreach (var b in budgets)
                foreach (var name in BucketNames.Prepend("all"))
                {
                    string? bestLabel = null; double bestAcc = -1;
                    foreach (var row in rows)
                    {
                        var label = row!["label"]!.GetValue<string>();
                        if (label.Contains("oracle")) continue;
                        int rb = row["budget_tokens"]!.GetValue<int>();
                        if (rb != b && label != "greedy") continue;
                        double? acc = name == "all" ? row["accuracy"]!.GetValue<double>() : row["accuracy_by_difficulty"]![name]?.GetValue<double>();
                        if (acc is { } a && a > bestAcc) (bestAcc, bestLabel) = (a, label);
                    }
                    if (bestLabel is not null)
                        best.Add(new JsonObject { ["budget_tokens"] = b, ["difficulty"] = name, ["strategy"] = bestLabel, ["accuracy"] = bestAcc });
                }

            int solvedEasy = bucketOf.Take(searched).Count(x => x == "easy"), med = bucketOf.Take(searched).Count(x => x == "medium"), hard = bucketOf.Take(searched).Count(x => x == "hard");
            return new JsonObject
            {
                ["benchmark"] = "search",
                ["quick"] = q,
                ["policy"] = new JsonObject { ["path"] = policyDir, ["source"] = policySource, ["parameters"] = model.ParameterCount() },
                ["held_out"] = new JsonObject { ["source"] = heldOutSource, ["problems_searched"] = searched },
                ["settings"] = new JsonObject
                {
                    ["temperature"] = Temperature, ["max_new_tokens"] = MaxNewTokens, ["max_step_tokens"] = MaxStepTokens, ["step_splitter"] = "countdown",
                    ["budgets"] = new JsonArray(budgets.Select(b => (JsonNode)b).ToArray()), ["beam_width"] = 4, ["expansions"] = 4,
                    ["mcts"] = "puct c=1.25, no rollouts (lambda 0), best-terminal pick", ["step_aggregation"] = "last",
                    ["prm_training"] = "AdamW, batch 16, lr 2e-4 (MC PRM, soft labels) and 1e-4 (implicit PRM, ce loss, beta 0.5)",
                    ["prm_steps"] = prmSteps, ["mc_label_problems"] = labelProblems, ["mc_samples_per_problem"] = 4, ["mc_rollouts"] = 4,
                },
                ["difficulty"] = new JsonObject
                {
                    ["definition"] = $"the policy's pass rate over {DifficultySamples} samples at temperature {Temperature}: easy ≥ 6/8, medium 3–5/8, hard ≤ 2/8",
                    ["easy"] = solvedEasy, ["medium"] = med, ["hard"] = hard,
                },
                ["prms"] = prmRows,
                ["rows"] = rows,
                ["best"] = best,
                ["seconds"] = Math.Round(total.Elapsed.TotalSeconds, 1),
            };
        }
        finally
        {
            foreach (var sc in scorers.Values) sc.Dispose();
        }
    }

    /// <summary>The difficulty bucket names, easiest first.</summary>
    public static readonly string[] BucketNames = ["easy", "medium", "hard"];

    static string Bucket(int correctOf8) => correctOf8 >= 6 ? "easy" : correctOf8 >= 3 ? "medium" : "hard";

    static (string Dir, string Source) ResolvePolicy(SearchBenchSettings s, Recipe sftRecipe, Action<string> log)
    {
        if (s.Policy is { } p)
        {
            if (!File.Exists(Path.Combine(p, "config.json"))) throw new ArgumentException($"--policy {p}: no config.json; expected a model folder");
            return (p, "given with --policy");
        }
        foreach (var (dir, what) in new[] { ("runs/quickstart/rl/final", "the quickstart's RL checkpoint"), ("runs/quickstart/sft/final", "the quickstart's SFT checkpoint") })
            if (File.Exists(Path.Combine(dir, "model.safetensors"))) return (dir, what);
        var recipe = sftRecipe with { Output = Path.Combine(s.WorkDir, "quickstart", "sft") };
        var final = Path.Combine(recipe.Output, "final");
        if (!File.Exists(Path.Combine(final, "model.safetensors")))
        {
            log($"no quickstart checkpoint found; training the quickstart's SFT stage into {recipe.Output}");
            SftPipeline.Run(recipe, log);
        }
        return (final, "the quickstart's SFT stage, trained by this benchmark with the quickstart's settings");
    }

    static void TrainMcPrm(string policyDir, List<StepLabelledExample> rows, string outDir, int steps)
    {
        if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
        var loaded = HfCheckpoint.Load(policyDir, requireTokenizer: true);
        using var backbone = loaded.Model;
        using var head = new ScalarHead(backbone.Config.HiddenSize);
        var o = new PrmOptions { MaxSteps = steps, BatchSize = 16, LearningRate = 2e-4, WarmupSteps = Math.Min(10, steps / 4), StepSplitter = "countdown", LogEvery = 50 };
        new PrmTrainer(backbone, head, loaded.Tokenizer!, o).Run(rows, [], outDir);
    }

    static void TrainImplicitPrm(string policyDir, List<OutcomeExample> rows, string outDir, int steps)
    {
        if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
        var loaded = HfCheckpoint.Load(policyDir, requireTokenizer: true);
        using var policy = loaded.Model;
        var o = new ImplicitPrmOptions { Beta = 0.5, MaxSteps = steps, BatchSize = 16, LearningRate = 1e-4, WarmupSteps = Math.Min(10, steps / 4), StepSplitter = "countdown", LogEvery = 20 };
        new ImplicitPrmTrainer(policy, loaded.Tokenizer!, o).Run(rows, outDir);
    }

    // One PRM's held-out first-wrong-step F1 (scores below 0.5 = wrong) and best-of-8 accuracy, loaded through the scorer registry.
    static JsonObject PrmRow(string kind, double fraction, long tokens, int solutions, int steps, double seconds, string dir, IVerifiableTask task,
        StepSplitter splitter, List<Problem> heldOut, IReadOnlyList<StepLabelledExample> labelled, List<List<(string Text, bool Correct)>> groups, Action<string> log)
    {
        using var sc = SearchScorerRegistry.Create((kind == "mc" ? "prm:" : "implicit-prm:") + dir, task, splitter, StepAggregation.Last);
        var stepScorer = sc.StepsFor(SearchProblem.From(heldOut[0], task));
        var scores = stepScorer.ScoreSteps(labelled.Select(r => (r.Prompt, r.Steps)).ToList());
        var f1 = PrmMetrics.FirstError(labelled.Select(r => r.Labels).ToList(), scores.Select(x => (IReadOnlyList<double>)x).ToList());
        var bonScores = heldOut.Select((p, i) => (IReadOnlyList<double>)sc.Outcome.Score(SearchProblem.From(p, task), groups[i].Select(g => (g.Text, 0)).ToList())).ToList();
        double bon = PrmMetrics.BestOfN(groups.Select(g => (IReadOnlyList<bool>)g.Select(x => x.Correct).ToList()).ToList(), bonScores);
        double first = groups.Average(g => g.Count > 0 && g[0].Correct ? 1.0 : 0.0), oracle = groups.Average(g => g.Any(x => x.Correct) ? 1.0 : 0.0);
        log($"{kind} prm @ {fraction:P0} compute ({tokens} tokens, {solutions} solutions): F1 {f1.F1:F3}, best-of-{DifficultySamples} {bon:P1} (first sample {first:P1}, pass@{DifficultySamples} {oracle:P1})");
        return new JsonObject
        {
            ["kind"] = kind, ["fraction"] = fraction, ["generated_tokens"] = tokens, ["solutions"] = solutions, ["steps"] = steps,
            ["train_seconds"] = Math.Round(seconds, 1), ["first_error_f1"] = Num(f1.F1), ["erroneous_accuracy"] = Num(f1.ErroneousAccuracy),
            ["correct_accuracy"] = Num(f1.CorrectAccuracy), ["held_out_labelled_solutions"] = labelled.Count,
            [$"best_of_{DifficultySamples}_accuracy"] = Num(bon), ["first_sample_accuracy"] = Num(first), [$"pass_at_{DifficultySamples}"] = Num(oracle),
        };
    }

    static JsonNode? Num(double x) => double.IsFinite(x) ? JsonValue.Create(Math.Round(x, 4)) : null;
}

/// <summary>
/// A policy decorator that replays identical requests: the first <see cref="Sample"/> of a (requests, seed) pair runs the
/// inner policy; a repeat returns the same continuations and charges the meter the same tokens and forward passes. The
/// sampling strategies (bon, vote, weighted-vote) draw identical samples for one problem, seed and budget, so they are
/// generated once; the generation time of replays is summed in <see cref="ReplayedSeconds"/>.
/// </summary>
public sealed class SharedSamplePolicy(ISearchPolicy inner) : ISearchPolicy
{
    readonly Dictionary<string, (IReadOnlyList<IReadOnlyList<Continuation>> Result, long Tokens, long Passes, double Seconds)> _cache = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public int MaxStepTokens => inner.MaxStepTokens;
    /// <inheritdoc />
    public int MaxTotalTokens => inner.MaxTotalTokens;
    /// <summary>Generation seconds saved by replays (what they would have cost).</summary>
    public double ReplayedSeconds { get; private set; }

    /// <summary>Forgets the cached samples (call between problems).</summary>
    public void Clear() => _cache.Clear();

    /// <inheritdoc />
    public IReadOnlyList<IReadOnlyList<Continuation>> Sample(IReadOnlyList<ContinuationRequest> requests, long seed, SearchMeter meter)
    {
        var key = seed + "|" + string.Join("|", requests.Select(r => $"{r.Prompt}\u0001{r.Prefix}\u0001{r.Count}\u0001{r.OneStep}\u0001{r.MaxTokens}\u0001{r.Temperature}"));
        if (_cache.TryGetValue(key, out var hit))
        {
            meter.AddGeneration(hit.Tokens, hit.Passes);
            ReplayedSeconds += hit.Seconds;
            return hit.Result;
        }
        var probe = new SearchMeter(new SearchBudget(int.MaxValue));
        var sw = Stopwatch.StartNew();
        var result = inner.Sample(requests, seed, probe);
        _cache[key] = (result, probe.GeneratedTokens, probe.ForwardPasses, sw.Elapsed.TotalSeconds);
        meter.AddGeneration(probe.GeneratedTokens, probe.ForwardPasses);
        return result;
    }
}
