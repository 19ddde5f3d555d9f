using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tokenizers;
using Sharpen.Training;
using static TorchSharp.torch;
using Sharpen.Training.Preference;
using Sharpen.Training.Sft;
using Sharpen.Torch;

namespace Sharpen.Bench;

/// <summary>Sizes and coefficients of <c>sharpen bench preferences</c> (see <see cref="PreferenceBench"/>).</summary>
public sealed record PreferenceBenchOptions
{
    /// <summary>Label-flip rates ε to measure.</summary>
    public IReadOnlyList<double> Epsilons { get; init; } = [0.0, 0.1, 0.2, 0.3, 0.4];
    /// <summary>Seeds (each: its own reference model, pairs and evaluation samples).</summary>
    public int Seeds { get; init; } = 3;
    /// <summary>Hidden size of the policy.</summary>
    public int Hidden { get; init; } = 48;
    /// <summary>Decoder layers.</summary>
    public int Layers { get; init; } = 2;
    /// <summary>Attention heads.</summary>
    public int Heads { get; init; } = 4;
    /// <summary>SFT steps that make the reference policy (uniform random word sequences).</summary>
    public int ReferenceSteps { get; init; } = 300;
    /// <summary>SFT batch size of the reference.</summary>
    public int ReferenceBatch { get; init; } = 64;
    /// <summary>SFT learning rate of the reference.</summary>
    public double ReferenceLearningRate { get; init; } = 3e-3;
    /// <summary>Training prompt ids 0..TrainPrompts-1; held-out ids follow them (disjoint).</summary>
    public int TrainPrompts { get; init; } = 512;
    /// <summary>Held-out prompts used for evaluation.</summary>
    public int HeldOutPrompts { get; init; } = 64;
    /// <summary>Samples per held-out prompt at evaluation (T = 1).</summary>
    public int EvalSamples { get; init; } = 4;
    /// <summary>Labelled pairs every method gets (offline: drawn once from the reference; online: drawn over iterations).</summary>
    public int Pairs { get; init; } = 512;
    /// <summary>Optimizer steps of every method.</summary>
    public int Steps { get; init; } = 64;
    /// <summary>Pairs (or SFT examples) per step; online DPO labels this many pairs per iteration.</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>Constant AdamW learning rate of every method.</summary>
    public double LearningRate { get; init; } = 5e-4;
    /// <summary>Bradley–Terry scale s of the labeller.</summary>
    public double Scale { get; init; } = 6.0;
    /// <summary>β of dpo, cdpo, rdpo and online DPO.</summary>
    public double Beta { get; init; } = 0.1;
    /// <summary>IPO's τ.</summary>
    public double Tau { get; init; } = 0.1;
    /// <summary>SimPO's β (its paper's range is 2–2.5).</summary>
    public double SimPoBeta { get; init; } = 2.0;
    /// <summary>SimPO's γ.</summary>
    public double SimPoGamma { get; init; } = 1.0;
    /// <summary>Completion length cap in tokens (6 words of at most 6 letters and 5 spaces fit in 41).</summary>
    public int MaxNewTokens { get; init; } = 48;
    /// <summary>The methods to run (null = <see cref="PreferenceBench.Methods"/>, the label-noise table);
    /// <see cref="PreferenceBench.FourWayMethods"/> is Tajwar et al.'s on-policy × negative-gradient comparison.</summary>
    public IReadOnlyList<string>? Methods { get; init; }
    /// <summary>Whether this run is the four-way comparison (<c>--four-way</c>): its own results file and claims.</summary>
    public bool FourWay => Methods is { } m && m.SequenceEqual(PreferenceBench.FourWayMethods);

    /// <summary>Tiny sizes for a smoke test (seconds, not minutes): 2 ε values, 2 seeds.</summary>
    public static PreferenceBenchOptions Quick => new()
    {
        Epsilons = [0.0, 0.2], Seeds = 2, Hidden = 16, Layers = 1, Heads = 2, ReferenceSteps = 4, ReferenceBatch = 8,
        TrainPrompts = 16, HeldOutPrompts = 4, EvalSamples = 2, Pairs = 16, Steps = 2, BatchSize = 8,
    };

    /// <summary>Parses "0,0.1,0.2" (invariant culture); a bad item throws naming it.</summary>
    public static IReadOnlyList<double> ParseEpsilons(string text) => text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
        .Select(t => double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v
            : throw new ArgumentException($"--epsilons: '{t}' is not a number (expected e.g. 0,0.1,0.2)")).ToList();

    /// <summary>Online DPO iterations: Pairs / BatchSize, so each iteration labels one batch.</summary>
    public int OnlineIterations => Pairs / BatchSize;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field.</summary>
    public PreferenceBenchOptions Validate()
    {
        void Positive(double v, string key) { if (!(v > 0) || double.IsInfinity(v)) throw new ArgumentException($"preferences.{key} must be positive, got {v}"); }
        if (Epsilons is null || Epsilons.Count == 0 || Epsilons.Any(e => !(e >= 0 && e < 0.5)))
            throw new ArgumentException("preferences.epsilons must be a non-empty list of rates in [0, 0.5)");
        if (Seeds < 2) throw new ArgumentException($"preferences.seeds must be at least 2, got {Seeds}");
        Positive(Hidden, "hidden"); Positive(Layers, "layers"); Positive(Heads, "heads"); Positive(ReferenceSteps, "reference_steps");
        Positive(ReferenceBatch, "reference_batch"); Positive(ReferenceLearningRate, "reference_learning_rate");
        Positive(TrainPrompts, "train_prompts"); Positive(HeldOutPrompts, "held_out_prompts"); Positive(EvalSamples, "eval_samples");
        Positive(Pairs, "pairs"); Positive(Steps, "steps"); Positive(BatchSize, "batch_size"); Positive(LearningRate, "learning_rate");
        Positive(Scale, "scale"); Positive(Beta, "beta"); Positive(Tau, "tau"); Positive(SimPoBeta, "simpo_beta"); Positive(MaxNewTokens, "max_new_tokens");
        if (SimPoGamma < 0) throw new ArgumentException($"preferences.simpo_gamma must be ≥ 0, got {SimPoGamma}");
        if (Hidden % Heads != 0 || (Hidden / Heads) % 2 != 0) throw new ArgumentException($"preferences.heads must divide hidden into an even head size, got {Hidden}/{Heads}");
        if (Pairs % BatchSize != 0) throw new ArgumentException($"preferences.pairs ({Pairs}) must be a multiple of batch_size ({BatchSize}) so online DPO labels whole batches");
        if (Methods is { } ms && ms.FirstOrDefault(m => !PreferenceBench.Methods.Concat(PreferenceBench.FourWayMethods).Contains(m)) is { } bad)
            throw new ArgumentException($"preferences.methods: unknown '{bad}'");
        if (Steps % OnlineIterations != 0) throw new ArgumentException($"preferences.steps ({Steps}) must be a multiple of pairs/batch_size ({OnlineIterations}) so online DPO runs the same steps");
        return this;
    }
}

/// <summary>
/// Preference optimisation under label noise on the synthetic lexicon task (<see cref="LexiconTask"/>). Per seed: SFT a
/// tiny reference on uniform random word sequences (near-uniform over words, true reward ≈ 0); sample two completions
/// from it for each of Pairs training prompts; label them with <see cref="NoisyBradleyTerry"/> at every ε (the label and
/// flip draws are shared across ε, so the flipped sets are nested); train SFT-on-chosen, dpo, cdpo (smoothing ε), ipo,
/// rdpo (flip rate ε), simpo from the reference with the same steps, batch and constant learning rate; train online DPO
/// with the same number of labelled pairs, drawn on-policy (Pairs/BatchSize iterations × BatchSize prompts × 2 samples,
/// the same noisy labeller) and the same steps. Every policy is evaluated on held-out prompts only: mean true reward of
/// EvalSamples samples per prompt at T = 1, and KL(π‖π_ref) ≈ mean over those samples of Σ_t (log π − log π_ref).
/// </summary>
public static class PreferenceBench
{
    /// <summary>The methods in report order.</summary>
    public static readonly string[] Methods = ["sft", "dpo", "cdpo", "ipo", "rdpo", "simpo", "online_dpo"];

    /// <summary>
    /// The four-way comparison of Tajwar et al. 2024 (arXiv:2404.14367), offline vs on-policy × without vs with a negative
    /// gradient, at equal labelled pairs and steps: sft (offline BC on the chosen), dpo (offline), online_filtered_bc
    /// (on-policy filtered BC / ReST: the same on-policy samples and labels as online DPO, BC on the chosen one only) and
    /// online_dpo.
    /// </summary>
    public static readonly string[] FourWayMethods = ["sft", "dpo", "online_filtered_bc", "online_dpo"];

    /// <summary>Runs everything; per-run folders, metrics.jsonl and summary.json go under <paramref name="workDir"/>.</summary>
    public static JsonObject Run(Action<string> log, string workDir, PreferenceBenchOptions options)
    {
        Sharpen.Torch.TorchRuntime.EnsureLoaded();
        var o = options.Validate();
        var total = Stopwatch.StartNew();
        Directory.CreateDirectory(workDir);
        var runLog = new RunLog(workDir);
        var tok = LexiconTask.Tokenizer();
        var config = new ModelConfig
        {
            ModelType = "llama", VocabSize = tok.VocabSize, HiddenSize = o.Hidden, IntermediateSize = o.Hidden * 8 / 3, NumHiddenLayers = o.Layers,
            NumAttentionHeads = o.Heads, NumKeyValueHeads = o.Heads, MaxPositionEmbeddings = 128, EosTokenIds = [CharTokenizer.EosId],
            PadTokenId = CharTokenizer.PadId, BosTokenId = CharTokenizer.BosId,
        };
        var heldOut = Enumerable.Range(o.TrainPrompts, o.HeldOutPrompts).Select(LexiconTask.Prompt).ToList();
        var rows = new JsonArray();
        var references = new JsonArray();
        var methods = o.Methods ?? Methods;
        for (int seed = 1; seed <= o.Seeds; seed++)
        {
            var seedDir = Path.Combine(workDir, $"seed{seed}");
            using var reference = TrainReference(o, config, tok, seed, Path.Combine(seedDir, "reference"), log);
            var (refReward, _) = Evaluate(reference, reference, tok, heldOut, o, seed);
            references.Add(new JsonObject { ["seed"] = seed, ["true_reward"] = R(refReward) });
            log($"seed {seed}: reference held-out true reward {refReward:F3}");

            var (pairPrompts, first, second, u) = DrawOfflinePairs(reference, tok, o, seed);
            foreach (var eps in o.Epsilons)
            {
                var oracle = new NoisyBradleyTerry(o.Scale, eps);
                var pairs = new List<PreferenceExample>(pairPrompts.Count);
                int flipped = 0;
                for (int i = 0; i < pairPrompts.Count; i++)
                {
                    bool firstChosen = oracle.FirstChosen(LexiconTask.Reward(first[i]), LexiconTask.Reward(second[i]), u[i].Label, u[i].Flip);
                    if (u[i].Flip < eps) flipped++;
                    pairs.Add(firstChosen ? new PreferenceExample(pairPrompts[i], first[i], second[i]) : new PreferenceExample(pairPrompts[i], second[i], first[i]));
                }
                foreach (var method in methods)
                {
                    var dir = Path.Combine(seedDir, $"eps{eps.ToString("0.0#", CultureInfo.InvariantCulture)}", method);
                    if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
                    using var policy = reference.Copy(trainable: true);
                    var sw = Stopwatch.StartNew();
                    int labelled = Train(method, policy, tok, o, eps, seed, pairs, dir);
                    double seconds = sw.Elapsed.TotalSeconds;
                    var (reward, kl) = Evaluate(policy, reference, tok, heldOut, o, seed);
                    var row = new JsonObject
                    {
                        ["method"] = method, ["epsilon"] = eps, ["seed"] = seed, ["true_reward"] = R(reward), ["kl"] = R(kl),
                        ["pairs"] = labelled, ["flipped_offline_pairs"] = flipped, ["steps"] = o.Steps, ["seconds"] = Math.Round(seconds, 2),
                    };
                    rows.Add(row);
                    runLog.Metrics(row.DeepClone().AsObject());
                    log($"seed {seed} ε={eps:0.0} {method,-10} true reward {reward,7:F3}  KL {kl,7:F2}  ({seconds:F1} s)");
                }
            }
        }

        var aggregates = Aggregate(rows, o, methods);
        var result = new JsonObject
        {
            ["benchmark"] = o.FourWay ? "preferences-four-way" : "preferences",
            ["config"] = Config(o, config),
            ["reference"] = references,
            ["rows"] = rows,
            ["aggregates"] = aggregates,
            ["claims"] = o.FourWay ? FourWayClaims(rows, o) : Claims(rows, o),
            ["total_seconds"] = Math.Round(total.Elapsed.TotalSeconds, 1),
        };
        runLog.Summary(new JsonObject
        {
            ["benchmark"] = "preferences", ["configurations"] = rows.Count, ["aggregates"] = aggregates.DeepClone(),
            ["seconds"] = Math.Round(total.Elapsed.TotalSeconds, 1),
        });
        return result;
    }

    /// <summary>SFT of a fresh model on uniform random word sequences: the near-uniform reference policy.</summary>
    static CausalLM TrainReference(PreferenceBenchOptions o, ModelConfig config, CharTokenizer tok, int seed, string dir, Action<string> log)
    {
        var model = new CausalLM(config, seed: 1000 + seed);
        var rng = new Random(10_000 + seed);
        var data = LexiconTask.UniformSft(Enumerable.Range(0, o.TrainPrompts), Math.Max(1, o.ReferenceSteps * o.ReferenceBatch / o.TrainPrompts), rng);
        var sft = new SftOptions
        {
            MaxSteps = o.ReferenceSteps, BatchSize = o.ReferenceBatch, LearningRate = o.ReferenceLearningRate, WarmupSteps = Math.Min(20, o.ReferenceSteps / 5),
            EvalEvery = 0, CheckpointEvery = 0, LogEvery = Math.Max(1, o.ReferenceSteps / 5), MaxSequenceLength = 96, Seed = seed,
        };
        var result = new SftTrainer(model, tok, sft).Run(data, [], dir);
        log($"seed {seed}: reference SFT {result.Steps} steps, final loss {result.FinalLoss:F3} ({result.Seconds:F1} s)");
        return model;
    }

    /// <summary>Two reference samples (T = 1) for each of Pairs training prompts, and the pair's two uniform draws (label, flip).</summary>
    static (List<string> Prompts, List<string> First, List<string> Second, List<(double Label, double Flip)> U) DrawOfflinePairs(
        CausalLM reference, CharTokenizer tok, PreferenceBenchOptions o, int seed)
    {
        var prompts = Enumerable.Range(0, o.Pairs).Select(i => LexiconTask.Prompt(i % o.TrainPrompts)).ToList();
        var rollouts = new RolloutEngine(reference, tok).Generate(prompts, new SamplingOptions
        {
            SamplesPerPrompt = 2, Temperature = 1.0, MaxNewTokens = o.MaxNewTokens, Seed = 20_000 + seed, MaxBatchSequences = 512,
        });
        var first = rollouts.Where(r => r.SampleIndex == 0).OrderBy(r => r.PromptIndex).Select(r => r.CompletionText).ToList();
        var second = rollouts.Where(r => r.SampleIndex == 1).OrderBy(r => r.PromptIndex).Select(r => r.CompletionText).ToList();
        var rng = new Random(30_000 + seed);
        var u = prompts.Select(_ => (rng.NextDouble(), rng.NextDouble())).ToList();
        return (prompts, first, second, u);
    }

    /// <summary>Trains <paramref name="method"/> in place; returns the number of labelled pairs it consumed.</summary>
    static int Train(string method, CausalLM policy, CharTokenizer tok, PreferenceBenchOptions o, double eps, int seed,
        List<PreferenceExample> pairs, string dir)
    {
        switch (method)
        {
            case "sft":
            {
                var data = pairs.Select(p => new SftExample(p.Prompt, p.Chosen, new Dictionary<string, string>())).ToList();
                var sft = new SftOptions
                {
                    MaxSteps = o.Steps, BatchSize = o.BatchSize, LearningRate = o.LearningRate, WarmupSteps = 0, MinLrRatio = 1.0,
                    WeightDecay = 0.0, EvalEvery = 0, CheckpointEvery = 0, LogEvery = Math.Max(1, o.Steps / 4), MaxSequenceLength = 96, Seed = seed,
                };
                new SftTrainer(policy, tok, sft).Run(data, [], dir);
                return pairs.Count;
            }
            case "online_dpo" or "online_filtered_bc":
            {
                var online = new OnlineDpoOptions
                {
                    Iterations = o.OnlineIterations, PromptsPerIteration = o.BatchSize, SamplesPerPrompt = 2, Temperature = 1.0,
                    MaxNewTokens = o.MaxNewTokens, Loss = method == "online_dpo" ? "dpo" : "filtered_bc", Beta = o.Beta, LearningRate = o.LearningRate,
                    UpdatesPerIteration = o.Steps / o.OnlineIterations, Seed = seed,
                };
                var prompts = Enumerable.Range(0, o.TrainPrompts).Select(i => new RlPrompt(LexiconTask.Prompt(i), new Dictionary<string, string>())).ToList();
                IReadOnlyList<WeightedReward> rewards = [new(new DelegateReward("lexicon", c => LexiconTask.Reward(c.Completion)))];
                var result = new OnlineDpoTrainer(policy, tok, online, rewards) { PairOracle = new NoisyBradleyTerry(o.Scale, eps).Label }
                    .Run(prompts, dir);
                return result.TotalPairs;
            }
            default:
            {
                var po = new PreferenceOptions
                {
                    Loss = method, Beta = method == "simpo" ? o.SimPoBeta : o.Beta, Gamma = o.SimPoGamma, Tau = o.Tau,
                    LabelSmoothing = method == "cdpo" ? eps : 0.0, FlipRate = method == "rdpo" ? eps : 0.0,
                    MaxSteps = o.Steps, BatchSize = o.BatchSize, LearningRate = o.LearningRate, WarmupSteps = 0, MinLrRatio = 1.0,
                    LogEvery = Math.Max(1, o.Steps / 4), Seed = seed,
                };
                new PreferenceTrainer(policy, tok, po).Run(pairs, dir);
                return pairs.Count;
            }
        }
    }

    /// <summary>
    /// Held-out evaluation: EvalSamples samples per prompt from <paramref name="policy"/> at T = 1 (same sampling seed for
    /// every method of a seed); mean true reward, and KL ≈ mean of Σ_t (log π − log π_ref) over the samples (teacher-forced).
    /// </summary>
    public static (double Reward, double Kl) Evaluate(CausalLM policy, CausalLM reference, ITokenizer tok, IReadOnlyList<string> prompts,
        PreferenceBenchOptions o, int seed)
    {
        var rollouts = new RolloutEngine(policy, tok).Generate(prompts, new SamplingOptions
        {
            SamplesPerPrompt = o.EvalSamples, Temperature = 1.0, MaxNewTokens = o.MaxNewTokens, Seed = 40_000 + seed, MaxBatchSequences = 512,
        });
        double reward = rollouts.Average(r => LexiconTask.Reward(r.CompletionText));
        var ps = rollouts.Select(r => (IReadOnlyList<int>)r.PromptIds).ToList();
        var cs = rollouts.Select(r => (IReadOnlyList<int>)r.CompletionIds).ToList();
        int pad = tok.PadTokenId ?? 0;
        policy.eval();
        var lp = Scoring.Score(policy, ps, cs, pad, microBatch: 256);
        var lr = Scoring.Score(reference, ps, cs, pad, microBatch: 256);
        double kl = Enumerable.Range(0, lp.Length).Average(i => lp[i].Sum(x => (double)x) - lr[i].Sum(x => (double)x));
        return (reward, kl);
    }

    /// <summary>Per method × ε over seeds: mean and half-range of the true reward and of the KL.</summary>
    static JsonArray Aggregate(JsonArray rows, PreferenceBenchOptions o, IReadOnlyList<string> methods)
    {
        var result = new JsonArray();
        foreach (var method in methods)
            foreach (var eps in o.Epsilons)
            {
                var sel = rows.Where(r => r!["method"]!.GetValue<string>() == method && r["epsilon"]!.GetValue<double>() == eps).ToList();
                var rw = sel.Select(r => r!["true_reward"]!.GetValue<double>()).ToList();
                var kl = sel.Select(r => r!["kl"]!.GetValue<double>()).ToList();
                result.Add(new JsonObject
                {
                    ["method"] = method, ["epsilon"] = eps, ["seeds"] = sel.Count,
                    ["true_reward_mean"] = R(rw.Average()), ["true_reward_half_range"] = R((rw.Max() - rw.Min()) / 2),
                    ["kl_mean"] = R(kl.Average()), ["kl_half_range"] = R((kl.Max() - kl.Min()) / 2),
                });
            }
        return result;
    }

    /// <summary>
    /// The two claims as numbers. rDPO vs DPO: per seed, the drop of true reward from the smallest to the largest ε, and
    /// the least-squares slope of reward against ε. On-policy vs offline: per seed and ε, online DPO minus offline DPO.
    /// </summary>
    static JsonObject Claims(JsonArray rows, PreferenceBenchOptions o)
    {
        double Get(string m, double e, int s) => rows.First(r => r!["method"]!.GetValue<string>() == m && r["epsilon"]!.GetValue<double>() == e
            && r["seed"]!.GetValue<int>() == s)!["true_reward"]!.GetValue<double>();
        var seeds = Enumerable.Range(1, o.Seeds).ToList();
        double lo = o.Epsilons.Min(), hi = o.Epsilons.Max();
        JsonObject Degradation(string m)
        {
            var drops = seeds.Select(s => Get(m, lo, s) - Get(m, hi, s)).ToList();
            var slopes = seeds.Select(s => Slope(o.Epsilons, o.Epsilons.Select(e => Get(m, e, s)).ToList())).ToList();
            return new JsonObject
            {
                ["drop_mean"] = R(drops.Average()), ["drop_per_seed"] = new JsonArray(drops.Select(d => (JsonNode)R(d)).ToArray()),
                ["slope_mean"] = R(slopes.Average()), ["slope_per_seed"] = new JsonArray(slopes.Select(d => (JsonNode)R(d)).ToArray()),
            };
        }
        var diffs = o.Epsilons.Select(e => seeds.Select(s => Get("online_dpo", e, s) - Get("dpo", e, s)).ToList()).ToList();
        var all = diffs.SelectMany(d => d).ToList();
        return new JsonObject
        {
            ["rdpo_vs_dpo"] = new JsonObject
            {
                ["epsilon_from"] = lo, ["epsilon_to"] = hi, ["dpo"] = Degradation("dpo"), ["rdpo"] = Degradation("rdpo"),
                ["cdpo"] = Degradation("cdpo"),
            },
            ["online_vs_offline_dpo"] = new JsonObject
            {
                ["mean_difference"] = R(all.Average()),
                ["positive_fraction"] = R(all.Count(d => d > 0) / (double)all.Count),
                ["per_epsilon"] = new JsonArray(o.Epsilons.Select((e, i) => (JsonNode)new JsonObject
                {
                    ["epsilon"] = e, ["mean_difference"] = R(diffs[i].Average()),
                    ["per_seed"] = new JsonArray(diffs[i].Select(d => (JsonNode)R(d)).ToArray()),
                }).ToArray()),
            },
        };
    }

    /// <summary>
    /// The four-way claims as per-seed differences of held-out true reward, per ε: on-policy minus offline with the negative
    /// gradient (online_dpo − dpo) and without it (online_filtered_bc − sft), and the negative gradient's effect on-policy
    /// (online_dpo − online_filtered_bc) and offline (dpo − sft).
    /// </summary>
    static JsonObject FourWayClaims(JsonArray rows, PreferenceBenchOptions o)
    {
        double Get(string m, double e, int s) => rows.First(r => r!["method"]!.GetValue<string>() == m && r["epsilon"]!.GetValue<double>() == e
            && r["seed"]!.GetValue<int>() == s)!["true_reward"]!.GetValue<double>();
        var seeds = Enumerable.Range(1, o.Seeds).ToList();
        JsonObject Diff(string a, string b) => new()
        {
            ["minuend"] = a, ["subtrahend"] = b,
            ["per_epsilon"] = new JsonArray(o.Epsilons.Select(e =>
            {
                var d = seeds.Select(s => Get(a, e, s) - Get(b, e, s)).ToList();
                return (JsonNode)new JsonObject
                {
                    ["epsilon"] = e, ["mean_difference"] = R(d.Average()), ["positive_seeds"] = d.Count(x => x > 0),
                    ["per_seed"] = new JsonArray(d.Select(x => (JsonNode)R(x)).ToArray()),
                };
            }).ToArray()),
        };
        return new JsonObject
        {
            ["on_policy_minus_offline_with_negative_gradient"] = Diff("online_dpo", "dpo"),
            ["on_policy_minus_offline_without_negative_gradient"] = Diff("online_filtered_bc", "sft"),
            ["negative_gradient_on_policy"] = Diff("online_dpo", "online_filtered_bc"),
            ["negative_gradient_offline"] = Diff("dpo", "sft"),
        };
    }

    /// <summary>Least-squares slope of y on x (0 when x has no spread).</summary>
    public static double Slope(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        double mx = x.Average(), my = y.Average(), sxx = 0, sxy = 0;
        for (int i = 0; i < x.Count; i++) { sxx += (x[i] - mx) * (x[i] - mx); sxy += (x[i] - mx) * (y[i] - my); }
        return sxx > 0 ? sxy / sxx : 0;
    }

    static JsonObject Config(PreferenceBenchOptions o, ModelConfig c) => new()
    {
        ["task"] = $"lexicon: {LexiconTask.Length} words from {LexiconTask.Words.Length} ({LexiconTask.Positive.Length} positive, {LexiconTask.Negative.Length} negative, {LexiconTask.Neutral.Length} neutral); r = (#pos - #neg)/{LexiconTask.Length}",
        ["epsilons"] = new JsonArray(o.Epsilons.Select(e => (JsonNode)e).ToArray()),
        ["seeds"] = o.Seeds, ["hidden"] = o.Hidden, ["layers"] = o.Layers, ["heads"] = o.Heads, ["vocab"] = c.VocabSize,
        ["reference_sft_steps"] = o.ReferenceSteps, ["reference_sft_batch"] = o.ReferenceBatch,
        ["train_prompts"] = o.TrainPrompts, ["held_out_prompts"] = o.HeldOutPrompts, ["eval_samples_per_prompt"] = o.EvalSamples,
        ["pairs"] = o.Pairs, ["steps"] = o.Steps, ["batch_size"] = o.BatchSize, ["learning_rate"] = o.LearningRate,
        ["online_iterations"] = o.OnlineIterations, ["online_updates_per_iteration"] = o.Steps / o.OnlineIterations,
        ["bradley_terry_scale"] = o.Scale, ["beta"] = o.Beta, ["ipo_tau"] = o.Tau, ["simpo_beta"] = o.SimPoBeta, ["simpo_gamma"] = o.SimPoGamma,
        ["cdpo_label_smoothing"] = "epsilon", ["rdpo_flip_rate"] = "epsilon", ["max_new_tokens"] = o.MaxNewTokens,
        ["methods"] = new JsonArray((o.Methods ?? PreferenceBench.Methods).Select(m => (JsonNode)m).ToArray()),
    };

    static double R(double x) => Math.Round(x, 4);
}
