using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Recipes;
using Sharpen.Rewards;
using Sharpen.Search;
using Sharpen.Tasks;
using Sharpen.Tokenizers;

namespace Sharpen.Bench;

/// <summary>Settings of <c>sharpen bench search-sizes</c>.</summary>
public sealed record SearchSizesSettings
{
    /// <summary>Scratch folder: the two SFT policies are trained here once and reused by later runs.</summary>
    public string WorkDir { get; init; } = "runs/bench-search-sizes";
    /// <summary>Most held-out problems searched (fewer when <see cref="MaxMinutes"/> runs out first).</summary>
    public int Problems { get; init; } = 60;
    /// <summary>SFT steps of each policy (same data, batch and schedule for both).</summary>
    public int SftSteps { get; init; } = 300;
    /// <summary>Wall-clock target of the search phase; it stops taking new problems when reached.</summary>
    public double MaxMinutes { get; init; } = 10;
    /// <summary>A tiny smoke run.</summary>
    public bool Quick { get; init; }

    /// <summary>Throws naming the bad option.</summary>
    public SearchSizesSettings Validate()
    {
        if (Problems < 1) throw new ArgumentException($"--problems must be ≥ 1, got {Problems}");
        if (SftSteps < 1) throw new ArgumentException($"--sft-steps must be ≥ 1, got {SftSteps}");
        if (!(MaxMinutes > 0)) throw new ArgumentException($"--max-minutes must be > 0, got {MaxMinutes}");
        return this;
    }
}

/// <summary>
/// The policy-size axis of test-time scaling (Snell et al. 2024, arXiv:2408.03314 §7; issue 19 item 13): two policies of
/// different size, SFT-trained the same way on the quickstart's Countdown, searched at equal inference FLOPs. The FLOP budget
/// is set in generated tokens of the large policy (its k samples); the small policy gets N_large/N_small times as many tokens,
/// so both spend the same 2·N·tokens. Every row reports the FLOPs counted by <see cref="FlopCountingPolicy"/> (prompt and
/// prefix tokens included), not the nominal budget. Strategies: greedy, majority vote (no verifier), and with the task's
/// verifier as the scorer (an oracle: the ceiling of a perfect verifier) best-of-N, DVTS and compute-optimal. Difficulty
/// buckets are the large policy's pass rate over 8 samples, so both sizes are split on the same problems.
/// </summary>
public static class SearchSizesBench
{
    const double Temperature = 0.7;
    const int MaxNewTokens = 48, MaxStepTokens = 16, DifficultySamples = 8;

    /// <summary>The strategy × scorer configurations (scorer null = none).</summary>
    public static readonly (string Label, string Strategy, string? Scorer)[] Configs =
    [
        ("greedy", "greedy", null), ("vote", "vote", null), ("bon+verifier (oracle)", "bon", "verifier"),
        ("dvts+verifier (oracle)", "dvts", "verifier"), ("compute-optimal+verifier (oracle)", "compute-optimal", "verifier"),
    ];

    /// <summary>The two policy shapes: (name, hidden size, layers), about 6× apart in forward parameters (the quickstart's own 192 × 4 is too slow to train twice on a shared machine).</summary>
    public static readonly (string Name, int Hidden, int Layers)[] Sizes = [("small", 64, 2), ("large", 128, 3)];

    /// <summary>
    /// Generated-token budget of a policy with <paramref name="forwardParams"/> parameters for a FLOP budget
    /// <paramref name="flops"/>: ⌊flops / (2·N)⌋, at least 1.
    /// </summary>
    public static int TokenBudget(double flops, long forwardParams) => (int)Math.Max(1, Math.Floor(flops / (2.0 * forwardParams)));

    /// <summary>Runs the benchmark; <paramref name="baseSettings"/> is the quickstart's (task, data, SFT schedule).</summary>
    public static JsonObject Run(Action<string> log, SearchSizesSettings s, QuickstartSettings baseSettings)
    {
        s.Validate();
        var total = Stopwatch.StartNew();
        bool q = s.Quick;
        int[] largeSamples = q ? [1, 2] : [1, 2, 4];
        Directory.CreateDirectory(s.WorkDir);

        // 1. The two policies: same data (same seed), same steps and schedule; trained once into the work folder.
        var policies = new List<(string Name, string Dir, Sharpen.Models.CausalLM Model, ITokenizer Tok, long Params, long ForwardParams, double Seconds, double? SftAccuracy)>();
        Recipe? recipe = null;
        foreach (var (name, hidden, layers) in Sizes)
        {
            var qs = baseSettings with { HiddenSize = hidden, Layers = layers, SftSteps = q ? 4 : s.SftSteps, TrainProblems = q ? 200 : baseSettings.TrainProblems, TestProblems = q ? 20 : 200 };
            recipe = Quickstart.SftRecipe(qs, Path.Combine(s.WorkDir, name));
            recipe = recipe with { Sft = recipe.Sft with { EvalEvery = qs.SftSteps, EvalProblems = 50 } };   // one mid-run eval is enough here
            var final = Path.Combine(recipe.Output, "final");
            double seconds = 0;
            double? acc = null;
            if (!File.Exists(Path.Combine(final, "model.safetensors")))
            {
                log($"training the {name} policy (hidden {hidden}, {layers} layers, {qs.SftSteps} SFT steps) into {recipe.Output}");
                var sw = Stopwatch.StartNew();
                var r = SftPipeline.Run(recipe, log);
                seconds = sw.Elapsed.TotalSeconds;
                acc = r.Eval?.Accuracy;
            }
            var loaded = HfCheckpoint.Load(final, requireTokenizer: true);
            long fp = FlopCountingPolicy.ForwardParametersOf(loaded.Model.Config);
            policies.Add((name, final, loaded.Model, loaded.Tokenizer!, loaded.Model.ParameterCount(), fp, seconds, acc));
            log($"{name} policy: {loaded.Model.ParameterCount():N0} parameters, {fp:N0} multiplied per token");
        }
        var task = recipe!.Task!.Build("bench");
        try
        {
            // 2. Held-out problems: the SFT test split (identical for both, same seed); checked to be the same file content.
            var (_, testFile) = DatasetWriter.SplitPaths(Path.Combine(Path.GetDirectoryName(policies[1].Dir)!, "data", "countdown.jsonl"));
            var (_, smallTest) = DatasetWriter.SplitPaths(Path.Combine(Path.GetDirectoryName(policies[0].Dir)!, "data", "countdown.jsonl"));
            if (File.ReadAllText(testFile) != File.ReadAllText(smallTest)) throw new InvalidOperationException($"{testFile} and {smallTest} differ: the two policies were not trained on the same data");
            var heldOut = JsonlDataset.LoadSft(testFile).Items.Select(SftPipeline.ToProblem).Take(q ? 3 : s.Problems).ToList();

            // 3. Difficulty by the large policy's pass rate over 8 samples.
            var largeEngine = new RolloutEngine(policies[1].Model, policies[1].Tok);
            var diff = largeEngine.Generate(heldOut.Select(p => p.Prompt).ToList(),
                new SamplingOptions { Temperature = Temperature, MaxNewTokens = MaxNewTokens, SamplesPerPrompt = DifficultySamples, Seed = 11 });
            var correct = new int[heldOut.Count];
            foreach (var r in diff) if (task.Verify(heldOut[r.PromptIndex], r.CompletionText).Correct) correct[r.PromptIndex]++;
            var bucketOf = correct.Select(c => c >= 6 ? "easy" : c >= 3 ? "medium" : "hard").ToArray();
            log($"difficulty (large policy, {DifficultySamples} samples): easy {bucketOf.Count(b => b == "easy")}, medium {bucketOf.Count(b => b == "medium")}, hard {bucketOf.Count(b => b == "hard")}");

            // 4. FLOP budgets: k samples of the large policy at the full completion length.
            var flopBudgets = largeSamples.Select(k => 2.0 * policies[1].ForwardParams * MaxNewTokens * k).ToArray();
            var splitter = StepSplitter.Countdown;
            using var verifier = SearchScorerRegistry.Create("verifier", task, splitter, StepAggregation.Last);
            var runs = new List<(int Size, int Config, int Budget)>();
            for (int p = 0; p < policies.Count; p++)
                for (int c = 0; c < Configs.Length; c++)
                    foreach (var b in Configs[c].Strategy == "greedy" ? [0] : Enumerable.Range(0, flopBudgets.Length)) runs.Add((p, c, b));
            var rows = runs.ToDictionary(r => r, _ => new List<(bool Correct, long Generated, double Flops, double Seconds)>());
            var counters = policies.Select(p => new FlopCountingPolicy(
                new LmSearchPolicy(new RolloutEngine(p.Model, p.Tok), splitter, Temperature, MaxStepTokens, MaxNewTokens),
                text => p.Tok.Encode(text).Count, p.ForwardParams)).ToArray();
            var deadline = TimeSpan.FromMinutes(s.MaxMinutes);
            var searchClock = Stopwatch.StartNew();
            int searched = 0;
            for (int i = 0; i < heldOut.Count; i++)
            {
                if (searchClock.Elapsed > deadline && searched > 0) { log($"time limit: searched {searched} of {heldOut.Count} problems"); break; }
                var problem = SearchProblem.From(heldOut[i], task);
                foreach (var (p, c, b) in runs)
                {
                    var (_, strategy, scorerName) = Configs[c];
                    var sc = scorerName is null ? null : verifier;
                    var counter = counters[p];
                    counter.Reset();
                    var options = new SearchOptions { BudgetTokens = TokenBudget(flopBudgets[b], policies[p].ForwardParams), Seed = 1, BeamWidth = 8, Expansions = 2 };
                    var context = new SearchContext(counter, options, sc?.Outcome, sc?.StepsFor);
                    var result = SearchStrategies.Create(strategy).Search(problem, context, SearchStrategies.Derive(1, i));
                    rows[(p, c, b)].Add((task.Verify(heldOut[i], result.Completion).Correct, counter.GeneratedTokens, counter.Flops, result.Cost.Seconds));
                }
                searched++;
                if (searched % 10 == 0 || q) log($"searched {searched} problems ({total.Elapsed.TotalMinutes:F1} min)");
            }

            var table = new JsonArray();
            foreach (var (p, c, b) in runs)
            {
                var rs = rows[(p, c, b)];
                double acc = rs.Average(x => x.Correct ? 1.0 : 0.0);
                var byBucket = new JsonObject();
                foreach (var name in new[] { "easy", "medium", "hard" })
                {
                    var inB = rs.Where((_, k) => bucketOf[k] == name).ToList();
                    if (inB.Count > 0) byBucket[name] = Math.Round(inB.Average(x => x.Correct ? 1.0 : 0.0), 4);
                }
                bool greedy = Configs[c].Strategy == "greedy";
                table.Add(new JsonObject
                {
                    ["policy"] = policies[p].Name, ["label"] = Configs[c].Label, ["strategy"] = Configs[c].Strategy, ["scorer"] = Configs[c].Scorer,
                    ["flop_budget"] = greedy ? null : (JsonNode)flopBudgets[b], ["large_sample_equivalents"] = greedy ? null : (JsonNode)largeSamples[b],
                    ["budget_tokens"] = greedy ? null : (JsonNode)TokenBudget(flopBudgets[b], policies[p].ForwardParams),
                    ["accuracy"] = Math.Round(acc, 4), ["stderr"] = Math.Round(Math.Sqrt(acc * (1 - acc) / rs.Count), 4),
                    ["mean_generated_tokens"] = Math.Round(rs.Average(x => (double)x.Generated), 1),
                    ["mean_counted_flops"] = Math.Round(rs.Average(x => x.Flops)), ["mean_seconds"] = Math.Round(rs.Average(x => x.Seconds), 4),
                    ["accuracy_by_difficulty"] = byBucket, ["problems"] = rs.Count,
                });
                log($"{policies[p].Name} {Configs[c].Label}{(greedy ? "" : $" @ {largeSamples[b]} large-sample FLOPs")}: {acc:P1} ± {Math.Sqrt(acc * (1 - acc) / rs.Count):P1}, {rs.Average(x => x.Flops):E2} FLOPs counted");
            }

            return new JsonObject
            {
                ["benchmark"] = "search-sizes",
                ["quick"] = q,
                ["policies"] = new JsonArray(policies.Select(p => (JsonNode)new JsonObject
                {
                    ["name"] = p.Name, ["path"] = p.Dir, ["parameters"] = p.Params, ["forward_parameters"] = p.ForwardParams,
                    ["sft_seconds"] = Math.Round(p.Seconds, 1), ["sft_held_out_accuracy"] = p.SftAccuracy,
                }).ToArray()),
                ["flops"] = "2 · forward parameters · (context tokens per continuation + generated tokens), counted per problem by FlopCountingPolicy; forward parameters = all but the input embedding lookup",
                ["held_out"] = new JsonObject { ["source"] = testFile, ["problems_searched"] = searched },
                ["settings"] = new JsonObject
                {
                    ["temperature"] = Temperature, ["max_new_tokens"] = MaxNewTokens, ["max_step_tokens"] = MaxStepTokens, ["sft_steps"] = q ? 4 : s.SftSteps,
                    ["large_sample_equivalents"] = new JsonArray(largeSamples.Select(k => (JsonNode)k).ToArray()),
                    ["dvts"] = "N = 8 beams, M = 2 expansions (4 subtrees)", ["compute_optimal"] = "4 probe samples scored by the verifier, threshold 0.5, easy: weighted-vote, hard: beam (width 8, 2 expansions)",
                },
                ["difficulty"] = new JsonObject
                {
                    ["definition"] = $"the large policy's pass rate over {DifficultySamples} samples at temperature {Temperature}: easy ≥ 6/8, medium 3–5/8, hard ≤ 2/8",
                    ["easy"] = bucketOf.Take(searched).Count(b => b == "easy"), ["medium"] = bucketOf.Take(searched).Count(b => b == "medium"), ["hard"] = bucketOf.Take(searched).Count(b => b == "hard"),
                },
                ["rows"] = table,
                ["seconds"] = Math.Round(total.Elapsed.TotalSeconds, 1),
            };
        }
        finally
        {
            foreach (var p in policies) p.Model.Dispose();
        }
    }
}
