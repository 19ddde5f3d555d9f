using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Checkpoints;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tokenizers;
using static TorchSharp.torch;
using Sharpen.Evaluation;

namespace Sharpen.Training.Preference;

/// <summary>How online DPO forms preference pairs from a prompt's scored candidates (its samples, plus the data's answer).</summary>
public enum PairSelection
{
    /// <summary>One pair: the highest-reward candidate (first one on ties) against the lowest-reward one (first one on ties).</summary>
    BestVsWorst,
    /// <summary>One pair: two distinct candidates drawn at random; the better one is chosen.</summary>
    Random,
    /// <summary>
    /// Every (positive, negative) of the candidates whose rewards pass the rule: positive ≥ MinPositiveScore, positive −
    /// negative ≥ the margin (StudentMargin when the positive is a policy sample) and &gt; 0. DNO-Prct's pairs (Rosset et al.
    /// 2024, arXiv:2404.03715, §5.1): all large-margin pairs among the samples and the gold answer, not one per prompt.
    /// </summary>
    AllMargin,
}

/// <summary>Which policy the preference loss compares against.</summary>
public enum ReferenceUpdate
{
    /// <summary>The policy at the start of the run, frozen (online DPO).</summary>
    Initial,
    /// <summary>The policy at the start of each iteration, π_t (DNO's and SPIN's reference: the previous iterate).</summary>
    PreviousIterate,
    /// <summary>SePPO (arXiv:2410.05255): each iteration's reference is a checkpoint drawn uniformly from the pool of iterates
    /// π_0 … π_t (the last <see cref="OnlineDpoOptions.CheckpointPool"/> of them), kept on disk under <c>checkpoint_pool/</c>.</summary>
    RandomCheckpoint,
}

/// <summary>Which distribution an online preference iteration samples its candidates from.</summary>
public enum SamplingSource
{
    /// <summary>The current policy π_t.</summary>
    Policy,
    /// <summary>The geometric mixture π_t^(1−β)·π_ref^β, token by token (Nash-MD; with the IPO loss this is IPO-MD).</summary>
    Mixture,
    /// <summary>The loss's reference model itself (SePPO: the chosen past checkpoint draws the "reference samples").</summary>
    Reference,
}

/// <summary>Where an iteration's preference pairs come from.</summary>
public enum PairSource
{
    /// <summary>Both sides are scored candidates of the prompt (the policy's samples, plus the data's completion with
    /// <see cref="OnlineDpoOptions.IncludeDataCompletion"/>), picked by <see cref="OnlineDpoOptions.PairSelection"/>.</summary>
    Samples,
    /// <summary>SPIN: chosen = the data's completion (the "real" answer), rejected = each of the policy's samples.</summary>
    DataVsSample,
    /// <summary>
    /// CREAM (arXiv:2410.12735): the rewards are not used; each prompt's samples are ranked by the policy's own implicit
    /// reward β·log π_t/π_ref, the best and the worst form the pair, and the pair's weight is the consistency
    /// C = (τ + 1)/2 (Kendall's τ) of that ranking with the previous iterate's β·log π_{t−1}/π_ref of the same samples;
    /// C = 1 in the first iteration, which has no previous iterate. The "cream" loss reads C as a soft label.
    /// </summary>
    SelfRewarded,
}

/// <summary>
/// Online (iterative) preference-optimisation settings, shared by online DPO, DNO and SPIN (the <c>online_dpo</c>,
/// <c>dno</c> and <c>spin</c> recipe sections): sample from the current policy, form pairs (judged by the rewards, or
/// against the data's answer), train a preference loss on them. The loss is one of <see cref="PreferenceLosses.Names"/>
/// or <c>spin</c>; β is its reward scale (τ for ipo, λ for spin); the other coefficients take the defaults of
/// <see cref="PreferenceOptions"/>. The presets <see cref="Dno"/> and <see cref="Spin"/> carry those papers' settings.
/// </summary>
public sealed record OnlineDpoOptions
{
    /// <summary>Name written to summary.json: online_dpo, dno or spin (set by the presets).</summary>
    public string Algorithm { get; init; } = "online_dpo";
    /// <summary>Sample–judge–update rounds.</summary>
    public int Iterations { get; init; } = 100;
    /// <summary>Prompts sampled per iteration.</summary>
    public int PromptsPerIteration { get; init; } = 16;
    /// <summary>Completions sampled per prompt (≥ 2 for sample-vs-sample pairs, ≥ 1 for SPIN).</summary>
    public int SamplesPerPrompt { get; init; } = 4;
    /// <summary>Sampling temperature (&gt; 0).</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Nucleus (top-p) mass of the samples, in (0, 1]; 1 = off.</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Completion length cap in tokens.</summary>
    public int MaxNewTokens { get; init; } = 256;
    /// <summary>Preference loss name: dpo, cdpo, ipo (online IPO), rdpo, orpo, simpo, cpo, cpo_simpo, spin or inpo.</summary>
    public string Loss { get; init; } = "dpo";
    /// <summary>β of the loss (τ for ipo and inpo, λ for spin).</summary>
    public double Beta { get; init; } = 0.1;
    /// <summary>INPO's η, the online-mirror-descent step (its target margin is 1/(2η)); must be ≥ τ = <see cref="Beta"/>.</summary>
    public double Eta { get; init; } = 0.1;
    /// <summary>Where the samples come from: the current policy, or (<see cref="SamplingSource.Mixture"/>, Nash-MD / IPO-MD) the
    /// token-wise geometric mixture π^(1−β)·π_ref^β of the policy and the loss's reference, β = <see cref="MixtureBeta"/>.</summary>
    public SamplingSource Sampling { get; init; } = SamplingSource.Policy;
    /// <summary>The reference's weight β in the mixture (<see cref="SamplingSource.Mixture"/>), in [0, 1].</summary>
    public double MixtureBeta { get; init; } = 0.125;
    /// <summary>AdamW learning rate (constant, no weight decay).</summary>
    public double LearningRate { get; init; } = 5e-6;
    /// <summary>Clip the global gradient norm to this (0 = off).</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Passes (epochs) over each iteration's pairs.</summary>
    public int UpdatesPerIteration { get; init; } = 1;
    /// <summary>Pairs per optimizer step within a pass (0 = all of the iteration's pairs in one step).</summary>
    public int MiniBatchSize { get; init; }
    /// <summary>How a prompt's pairs are picked from its scored candidates: one best-vs-worst or random pair, or all
    /// pairs that pass the margin rule (all_margin, DNO's).</summary>
    public PairSelection PairSelection { get; init; } = PairSelection.BestVsWorst;
    /// <summary>Pairs whose reward margin is below this are dropped (the default drops ties); DNO's margin filter.</summary>
    public double MinMargin { get; init; } = 1e-9;
    /// <summary>Pairs whose chosen side scores below this are dropped (DNO keeps only positives its judge rates highly);
    /// null = no floor.</summary>
    public double? MinPositiveScore { get; init; }
    /// <summary>The margin threshold when the chosen side is one of the policy's samples rather than the data's answer (DNO
    /// uses a smaller one for student positives); null = <see cref="MinMargin"/>.</summary>
    public double? StudentMargin { get; init; }
    /// <summary>The loss's reference: the initial policy, or the previous iterate π_t (DNO, SPIN).</summary>
    public ReferenceUpdate ReferenceUpdate { get; init; } = ReferenceUpdate.Initial;
    /// <summary>Sample-vs-sample pairs, or SPIN's data-vs-sample pairs.</summary>
    public PairSource PairSource { get; init; } = PairSource.Samples;
    /// <summary>SePPO's pool (<see cref="ReferenceUpdate.RandomCheckpoint"/>): how many of the latest iterates the reference is
    /// drawn from (0 = every iterate since the start, as the paper).</summary>
    public int CheckpointPool { get; init; }
    /// <summary>A checkpoint folder (same architecture) whose weights are the loss's reference instead of the starting policy;
    /// null = the starting policy. CREAM needs one: its policy M_1 starts DPO-trained and its reference is the SFT model M_0,
    /// since a reference equal to the policy gives every sample the implicit reward 0.</summary>
    public string? ReferenceCheckpoint { get; init; }
    /// <summary>Add the data's completion (a gold or teacher answer) to each prompt's scored candidates (DNO-Prct).</summary>
    public bool IncludeDataCompletion { get; init; }
    /// <summary>Checkpoint every N iterations (0 = only the final model); a checkpoint can be resumed.</summary>
    public int CheckpointEvery { get; init; }
    /// <summary>Checkpoints kept.</summary>
    public int KeepCheckpoints { get; init; } = 2;
    /// <summary>Seed of the prompt order, the sampling and random pair selection.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>
    /// DNO-Prct's choice of the best iterate (0 = off, the last iterate is the result): the last this many prompts are held
    /// out of training; after every iteration the greedy completions of those prompts are scored with the rewards, the
    /// iterate with the highest mean (the earlier on ties) is kept in <c>best/</c>, and the run ends with it as its policy
    /// and <c>final/</c>.
    /// </summary>
    public int ValidationPrompts { get; init; }

    /// <summary>Whether the loss compares against a reference policy (every loss but orpo and simpo).</summary>
    public bool NeedsReference => PreferenceLosses.Registry.Get(Loss).NeedsReference;

    /// <summary>The recipe kinds (and presets) these options serve.</summary>
    public static IReadOnlyList<string> Kinds { get; } = ["online_dpo", "dno", "spin"];

    /// <summary>The preset of <paramref name="kind"/>: online_dpo (the defaults), dno or spin.</summary>
    public static OnlineDpoOptions For(string kind) => kind switch
    {
        "online_dpo" => new(),
        "dno" => Dno(),
        "spin" => Spin(),
        _ => throw new ArgumentException($"unknown online preference method '{kind}'; known: {string.Join(", ", Kinds)}"),
    };

    /// <summary>
    /// DNO-Prct (Rosset et al. 2024, arXiv:2404.03715, Algorithm 2 and §5.1): per iteration K = 5 samples per prompt from
    /// π_t (temperature 0.7, top-p 0.95) plus the data's gold answer, scored by the oracle; every (positive, negative) pair
    /// among them whose margin clears the threshold is kept (all_margin); DPO (β = 0.1) against the reference π_t, one
    /// epoch over the pairs in batches of 64 at learning rate 5e-5 (the paper lowers it in later iterations; Sharpen keeps
    /// it constant). Departure: the paper's thresholds live on its judge's 6-point scale (positive ≥ 5, margin 2, margin 1
    /// for a student positive); Sharpen's margin 0.5 is for rewards in [0, 1], and the positive floor and the student margin
    /// are left to the recipe (null: no floor, the same margin), since how a judge's scale maps onto a reward is the recipe's.
    /// </summary>
    public static OnlineDpoOptions Dno() => new()
    {
        Algorithm = "dno", SamplesPerPrompt = 5, IncludeDataCompletion = true, PairSelection = PairSelection.AllMargin,
        MinMargin = 0.5, Loss = "dpo", Beta = 0.1, ReferenceUpdate = ReferenceUpdate.PreviousIterate, LearningRate = 5e-5,
        Temperature = 0.7, TopP = 0.95, UpdatesPerIteration = 1, MiniBatchSize = 64,
    };

    /// <summary>
    /// SPIN (Chen et al. 2024, arXiv:2401.01335): the opponent π_t answers each SFT prompt once; pairs are (the data's
    /// answer, the opponent's); the logistic loss with λ = 0.1 against π_t, 2 epochs per iteration, learning rate 5e-7.
    /// </summary>
    public static OnlineDpoOptions Spin() => new()
    {
        Algorithm = "spin", SamplesPerPrompt = 1, PairSource = PairSource.DataVsSample, Loss = "spin", Beta = 0.1,
        ReferenceUpdate = ReferenceUpdate.PreviousIterate, LearningRate = 5e-7, UpdatesPerIteration = 2, Iterations = 4,
    };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field as <c>&lt;algorithm&gt;.&lt;key&gt;</c>.</summary>
    public OnlineDpoOptions Validate()
    {
        var k = Kinds.Contains(Algorithm) ? Algorithm : "online_dpo";
        void Positive(double v, string key) => OptionChecks.Positive(k, v, key);
        void NonNegative(double v, string key) => OptionChecks.NonNegative(k, v, key);
        if (!Kinds.Contains(Algorithm)) throw new ArgumentException($"{k}.algorithm: unknown '{Algorithm}'; known: {string.Join(", ", Kinds)}");
        if (Loss is null || !PreferenceLosses.Registry.Contains(Loss))
            throw new ArgumentException($"{k}.loss: unknown loss '{Loss}'. Known: {string.Join(", ", PreferenceLosses.Registry.Names)}.");
        if (PreferenceLosses.Registry.Get(Loss).PairWeightField is { } field && !(PairSource == PairSource.SelfRewarded && field == "consistency"))
            throw new ArgumentException($"{k}.loss: '{Loss}' reads a per-pair '{field}' column of a preference dataset; use it in an offline 'preference' recipe");
        if (PreferenceLosses.Registry.Get(Loss).Listwise)
            throw new ArgumentException($"{k}.loss: '{Loss}' is listwise (ranked lists of a preference dataset); use it in an offline 'preference' recipe");
        Positive(Iterations, "iterations"); Positive(PromptsPerIteration, "prompts_per_iteration");
        if (!Enum.IsDefined(PairSource)) throw new ArgumentException($"{k}.pair_source: unknown value {PairSource}");
        int minSamples = PairSource == PairSource.DataVsSample || IncludeDataCompletion ? 1 : 2;
        if (PairSource == PairSource.SelfRewarded)
        {
            if (!NeedsReference) throw new ArgumentException($"{k}.pair_source: self_rewarded ranks samples by β·log π/π_ref, and loss '{Loss}' has no reference");
            if (ReferenceUpdate != ReferenceUpdate.Initial) throw new ArgumentException($"{k}.pair_source: self_rewarded needs reference_update: initial (a reference that follows the policy gives every sample the implicit reward 0)");
            if (IncludeDataCompletion) throw new ArgumentException($"{k}.include_data_completion: self_rewarded pairs are the policy's own samples");
        }
        if (Loss == "seppo" && PairSource != PairSource.DataVsSample)
            throw new ArgumentException($"{k}.loss: seppo's winner is the data's answer; it needs pair_source: data_vs_sample (kind: spin)");
        if (ReferenceUpdate == ReferenceUpdate.RandomCheckpoint && !NeedsReference)
            throw new ArgumentException($"{k}.reference_update: random_checkpoint draws the loss's reference, and loss '{Loss}' has none");
        if (Sampling == SamplingSource.Reference && !NeedsReference)
            throw new ArgumentException($"{k}.sampling: reference samples from the loss's reference, and loss '{Loss}' has none");
        NonNegative(CheckpointPool, "checkpoint_pool");
        if (SamplesPerPrompt < minSamples) throw new ArgumentException($"{k}.samples_per_prompt must be ≥ {minSamples} to form a pair, got {SamplesPerPrompt}");
        Positive(Temperature, "temperature");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"{k}.top_p must be in (0, 1], got {TopP}");
        Positive(MaxNewTokens, "max_new_tokens"); Positive(Beta, "beta");
        Positive(LearningRate, "learning_rate"); NonNegative(MaxGradNorm, "max_grad_norm"); Positive(UpdatesPerIteration, "updates_per_iteration");
        NonNegative(MiniBatchSize, "mini_batch_size");
        if (!Enum.IsDefined(PairSelection)) throw new ArgumentException($"{k}.pair_selection: unknown value {PairSelection}");
        if (!Enum.IsDefined(ReferenceUpdate)) throw new ArgumentException($"{k}.reference_update: unknown value {ReferenceUpdate}");
        NonNegative(MinMargin, "min_margin");
        if (StudentMargin is { } sm) NonNegative(sm, "student_margin");
        if (MinPositiveScore is { } floor && !double.IsFinite(floor)) throw new ArgumentException($"{k}.min_positive_score must be a finite number or null, got {floor}");
        NonNegative(CheckpointEvery, "checkpoint_every"); Positive(KeepCheckpoints, "keep_checkpoints");
        NonNegative(ValidationPrompts, "validation_prompts");
        Positive(Eta, "eta");
        if (PreferenceLosses.Registry.Get(Loss).NeedsPrevious && Beta > Eta)
            throw new ArgumentException($"{k}.beta (INPO's τ = {Beta}) must be ≤ {k}.eta (η = {Eta})");
        if (!Enum.IsDefined(Sampling)) throw new ArgumentException($"{k}.sampling: unknown value {Sampling}");
        if (!(MixtureBeta >= 0 && MixtureBeta <= 1)) throw new ArgumentException($"{k}.mixture_beta must be in [0, 1], got {MixtureBeta}");
        if (Sampling == SamplingSource.Mixture && !NeedsReference)
            throw new ArgumentException($"{k}.sampling: mixture mixes the policy with the loss's reference, and loss '{Loss}' has none");
        return this;
    }
}

/// <summary>What an online preference run produced.</summary>
public sealed record OnlineDpoResult(int Iterations, double FinalLoss, double FinalRewardMean, int TotalPairs, string FinalCheckpoint, double Seconds);

/// <summary>
/// Online / iterative preference optimisation: online DPO (Xu et al. 2023; Guo et al. 2024), DNO-Prct (Rosset et al.
/// 2024) and SPIN (Chen et al. 2024) are settings of this one loop (see <see cref="OnlineDpoOptions"/>). One iteration
/// top to bottom: take PromptsPerIteration prompts in a seeded order → sample SamplesPerPrompt completions each from the
/// current policy π_t (seed from (Seed, iteration)) → score them with the rewards (the judge or oracle) → KL(π_t ‖ ref)
/// estimate on the samples → with <see cref="ReferenceUpdate.PreviousIterate"/> the reference becomes a copy of π_t →
/// pairs (one per prompt from its scored candidates, or every pair that passes the margin rule with all_margin, or
/// SPIN's data-vs-sample pairs) → summed reference log-probs (no_grad) → UpdatesPerIteration passes of AdamW steps of the
/// preference loss over the pairs → π_{t+1} → metrics row → maybe a checkpoint.
/// </summary>
public sealed class OnlineDpoTrainer(CausalLM policy, ITokenizer tokenizer, OnlineDpoOptions options, IReadOnlyList<WeightedReward> rewards)
{
    /// <summary>The prompt field that carries the data's completion (SPIN's real answer, DNO's gold answer).</summary>
    public const string DataCompletionField = "completion";

    /// <summary>Human-readable progress lines.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>The engine that samples the candidates; null = the built-in torch engine over the policy. It is told to sync
    /// weights after each update (the pair losses recompute their own log-probs, so the engine's are not used).</summary>
    public IRolloutEngine? Engine { get; init; }

    /// <summary>Called after each iteration's update with (iteration 1-based, the policy, the reference it used or null).</summary>
    public Action<int, CausalLM, CausalLM?>? AfterIteration { get; init; }

    /// <summary>
    /// Optional pair oracle: given one prompt's candidate rewards and the iteration's seeded generator, returns the
    /// (chosen, rejected) candidate indices or null to drop the prompt. Null (the default) uses <see cref="SelectPairs"/>
    /// with the options' pair rule. A stochastic labeller (e.g. Bradley–Terry with label flips) goes here.
    /// </summary>
    public Func<IReadOnlyList<double>, Random, (int Chosen, int Rejected)?>? PairOracle { get; init; }

    /// <summary>
    /// Optional general preference oracle (INPO's and Nash-MD's setting: a pairwise judge, not a reward model; it need not be
    /// transitive): (prompt, first completion, second completion) → P(first ≻ second) in [0, 1]. When set, each prompt's
    /// samples are judged in consecutive pairs (0 vs 1, 2 vs 3, ...); P &gt; ½ makes the first the chosen one, P &lt; ½ the
    /// second, P = ½ gives no pair; max(P, 1 − P) is the pair's preference strength, which the "osp" loss reads. The rewards are then only logged. Calls are counted in <c>judge_calls</c>.
    /// </summary>
    public Func<string, string, string, double>? PairwiseJudge { get; init; }

    readonly OnlineDpoOptions _o = options.Validate();

    /// <summary>
    /// The pair of one prompt's candidates by <paramref name="selection"/> (best_vs_worst or random), or null when its
    /// reward margin is below <paramref name="minMargin"/> (or fewer than two candidates). Random selection draws from
    /// <paramref name="rng"/>. For all_margin, which gives several pairs, use <see cref="SelectPairs"/>.
    /// </summary>
    public static (int Chosen, int Rejected)? SelectPair(IReadOnlyList<double> rewards, PairSelection selection, double minMargin = 1e-9, Random? rng = null)
    {
        if (selection == PairSelection.AllMargin)
            throw new ArgumentException("SelectPair picks one pair; all_margin gives several: use SelectPairs", nameof(selection));
        return SelectPairs(rewards, selection, minMargin, rng: rng) is [var pair] ? pair : null;
    }

    /// <summary>
    /// The preference pairs of one prompt, as (chosen, rejected) indices into <paramref name="rewards"/>, the candidates'
    /// rewards (K) or (K + 1) (NaN never forms a pair). The candidates <c>[0, students)</c> are the policy's samples, the
    /// rest (the data's gold or teacher answer, last) are not; null <paramref name="students"/> = all are samples. A pair is
    /// kept when chosen ≠ rejected, the chosen reward is ≥ <paramref name="minPositiveScore"/> (if given) and the margin
    /// is ≥ <paramref name="minMargin"/>, or ≥ <paramref name="studentMargin"/> (if given) when the chosen side is a
    /// sample. best_vs_worst and random give at most one pair (random draws from <paramref name="rng"/>); all_margin gives
    /// every pair that passes with a positive margin, ordered by the chosen index, then by the rejected index.
    /// </summary>
    public static IReadOnlyList<(int Chosen, int Rejected)> SelectPairs(IReadOnlyList<double> rewards, PairSelection selection,
        double minMargin = 1e-9, double? minPositiveScore = null, double? studentMargin = null, int? students = null, Random? rng = null)
    {
        int k = students ?? rewards.Count;
        bool Keeps(int c, int r) =>
            c != r
            && !(rewards[c] < (minPositiveScore ?? double.NegativeInfinity))   // NaN fails the margin below
            && rewards[c] - rewards[r] >= (c < k ? studentMargin ?? minMargin : minMargin);
        if (rewards.Count < 2) return [];
        int chosen, rejected;
        switch (selection)
        {
            case PairSelection.AllMargin:
                var pairs = new List<(int, int)>();
                for (int c = 0; c < rewards.Count; c++)
                    for (int r = 0; r < rewards.Count; r++)
                        if (rewards[c] > rewards[r] && Keeps(c, r)) pairs.Add((c, r));
                return pairs;
            case PairSelection.BestVsWorst:
                chosen = 0; rejected = 0;
                for (int i = 1; i < rewards.Count; i++)
                {
                    if (rewards[i] > rewards[chosen]) chosen = i;
                    if (rewards[i] < rewards[rejected]) rejected = i;
                }
                break;
            case PairSelection.Random:
                rng ??= new Random(0);
                int a = rng.Next(rewards.Count);
                int b = rng.Next(rewards.Count - 1);
                if (b >= a) b++;
                (chosen, rejected) = rewards[b] > rewards[a] ? (b, a) : (a, b);
                break;
            default:
                throw new UnreachableException();
        }
        return Keeps(chosen, rejected) ? [(chosen, rejected)] : [];
    }

    /// <summary>
    /// Runs the iterations; writes metrics.jsonl, summary.json, checkpoints/ (every CheckpointEvery iterations) and final/
    /// into <paramref name="outDir"/>. With <paramref name="resume"/> it continues from the newest checkpoint there:
    /// prompt order, sampling seeds and pair choices depend only on (Seed, iteration), so the resumed run trains on what
    /// the uninterrupted run would have.
    /// </summary>
    public OnlineDpoResult Run(IReadOnlyList<RlPrompt> prompts, string outDir, bool resume = false, CancellationToken cancel = default)
    {
        if (prompts.Count == 0) throw new ArgumentException("no prompts");
        if (_o.ValidationPrompts > 0 && _o.ValidationPrompts >= prompts.Count)
            throw new ArgumentException($"{_o.Algorithm}.validation_prompts ({_o.ValidationPrompts}) leaves none of the {prompts.Count} prompts for training");
        if (_o.ValidationPrompts > 0 && rewards.Count == 0)
            throw new ArgumentException($"{_o.Algorithm}.validation_prompts needs rewards to score the held-out prompts");
        IReadOnlyList<RlPrompt> validation = [.. prompts.TakeLast(_o.ValidationPrompts)];
        prompts = [.. prompts.SkipLast(_o.ValidationPrompts)];
        if (_o.PairSource == PairSource.DataVsSample && prompts.FirstOrDefault(p => !p.Fields.ContainsKey(DataCompletionField)) is { } bad)
            throw new ArgumentException($"{_o.Algorithm}: every prompt needs its data completion (the real answer); '{bad.Prompt}' has none");
        using var session = new Session(this, prompts, validation, outDir, cancel);
        var loop = new IterationLoop(outDir, _o.Iterations, _o.CheckpointEvery, _o.KeepCheckpoints) { Log = Log };
        var (_, finalDir, seconds) = loop.Run(session, resume, cancel);
        return new OnlineDpoResult(_o.Iterations, session.LastLoss, session.LastReward, session.TotalPairs, finalDir, seconds);
    }

    /// <summary>One run's state (reference, optimizer, data position, best iterate) and the body of an iteration.</summary>
    sealed class Session : IIterationTrainer, IDisposable
    {
        readonly OnlineDpoTrainer _t;
        readonly OnlineDpoOptions _o;
        readonly IReadOnlyList<RlPrompt> _prompts, _validation;
        readonly string _outDir;
        readonly CancellationToken _cancel;
        readonly CausalLM? _reference;
        readonly CausalLM? _previous;   // π_t, refreshed at the start of every iteration (INPO)
        readonly CausalLM? _lastIterate;   // π_{t−1}, whose ranking CREAM's consistency compares against
        readonly optim.Optimizer _opt;
        readonly IRolloutEngine _engine;
        readonly RolloutEngine _torchEngine;    // held-out validation: the policy itself
        readonly IRolloutEngine _sampler;       // _engine, or the geometric mixture of the policy with the reference
        readonly NonFiniteGuard _guard;
        readonly Stopwatch _total = Stopwatch.StartNew();
        DataCursor _cursor;
        (int Iteration, double Reward) _best = (0, double.NegativeInfinity);
        int _iteration;

        public int TotalPairs { get; private set; }
        public int JudgeCalls { get; private set; }
        public double LastLoss { get; private set; } = double.NaN;
        public double LastReward { get; private set; } = double.NaN;
        public CausalLM Policy => _t.Policy;
        public ITokenizer Tokenizer => _t.Tokenizer;
        public optim.Optimizer Optimizer => _opt;

        public Session(OnlineDpoTrainer t, IReadOnlyList<RlPrompt> prompts, IReadOnlyList<RlPrompt> validation, string outDir, CancellationToken cancel)
        {
            (_t, _o, _prompts, _validation, _outDir, _cancel) = (t, t._o, prompts, validation, outDir, cancel);
            _reference = _o.NeedsReference ? Policy.Copy(trainable: false) : null;
            if (_o.ReferenceCheckpoint is { } refDir)
            {
                if (_reference is null) throw new ArgumentException($"{_o.Algorithm}.reference_checkpoint: loss '{_o.Loss}' has no reference");
                if (!Directory.Exists(refDir)) throw new ArgumentException($"{_o.Algorithm}.reference_checkpoint: no folder '{refDir}'");
                HfCheckpoint.LoadWeightsInto(_reference, refDir);
            }
            _lastIterate = _o.PairSource == PairSource.SelfRewarded ? Policy.Copy(trainable: false) : null;
            _previous = PreferenceLosses.Registry.Get(_o.Loss).NeedsPrevious ? Policy.Copy(trainable: false) : null;
            _opt = optim.AdamW(Policy.TrainableParameters(), lr: _o.LearningRate, weight_decay: 0.0);
            _torchEngine = new RolloutEngine(Policy, Tokenizer);
            _engine = t.Engine ?? _torchEngine;
            _sampler = _o.Sampling switch
            {
                SamplingSource.Mixture => new GeometricMixtureEngine(Policy, _reference!, Tokenizer, _o.MixtureBeta),
                SamplingSource.Reference => new RolloutEngine(_reference!, Tokenizer),
                _ => _engine,
            };
            _guard = new NonFiniteGuard(_o.Algorithm);
            _cursor = new DataCursor(prompts.Count, _o.Seed);
        }

        public IterationReport Iterate(int it)
        {
            _iteration = it;
            int padId = Tokenizer.PadTokenId ?? 0;
            int eos = CompletionTokens.EosId(Tokenizer, Policy.Config);
            var phase = Stopwatch.StartNew();
            // ---- sample and score
            var batch = _cursor.Next(_o.PromptsPerIteration).Select(i => _prompts[i]).ToList();
            long seed = (long)_o.Seed * 1_000_003 + it;
            Policy.eval();
            if (_previous is not null) CopyWeights(Policy, _previous, dispose: false);   // π_t for INPO's loss
            int? referenceIteration = _o.ReferenceUpdate == ReferenceUpdate.RandomCheckpoint ? DrawReference(it, seed) : null;   // SePPO
            var rollouts = _sampler.Generate(batch.Select(p => p.Prompt).ToList(), new SamplingOptions
            {
                SamplesPerPrompt = _o.SamplesPerPrompt, Temperature = _o.Temperature, TopP = _o.TopP, MaxNewTokens = _o.MaxNewTokens,
                Seed = seed, MaxBatchSequences = 512,
            });
            // The data's completions (gold answers) as scored candidates: DNO scores them with the samples.
            var gold = batch.Select(p => p.Fields.TryGetValue(DataCompletionField, out var c) ? c : null).ToList();
            bool withGold = _o.IncludeDataCompletion && _o.PairSource == PairSource.Samples;
            var contexts = RlPrompt.Contexts(batch, rollouts);
            var goldRows = withGold ? Enumerable.Range(0, batch.Count).Where(p => gold[p] is not null).ToList() : [];
            var goldIds = gold.Select(g => g is null ? null : CompletionTokens.Ids(Tokenizer, eos, g)).ToList();
            contexts.AddRange(goldRows.Select(p => new RewardContext(batch[p].Prompt, gold[p]!, batch[p].Fields, goldIds[p]!.Length)));
            double[] all = _t.Rewards.Count > 0
                ? RewardCombiner.ScoreAsync(_t.Rewards, contexts, _cancel).AsTask().GetAwaiter().GetResult().Total
                : Enumerable.Repeat(double.NaN, contexts.Count).ToArray();
            double[] scores = all[..rollouts.Count];
            double generateSeconds = phase.Elapsed.TotalSeconds;
            phase.Restart();

            // ---- KL(π_t ‖ reference) on π_t's own samples (k1, summed per sequence); then DNO/SPIN move the reference to π_t
            double klRef = double.NaN;
            if (_reference is not null && _o.Sampling != SamplingSource.Reference)
            {
                var refLp = Scoring.Score(_reference, rollouts.Select(r => (IReadOnlyList<int>)r.PromptIds).ToList(),
                    rollouts.Select(r => (IReadOnlyList<int>)r.CompletionIds).ToList(), padId);
                klRef = rollouts.Select((r, i) => r.LogProbs.Sum(x => (double)x) - refLp[i].Sum(x => (double)x)).Average();
            }
            if (_reference is not null && _o.ReferenceUpdate == ReferenceUpdate.PreviousIterate) CopyWeights(Policy, _reference, dispose: false);

            // ---- pairs
            double consistency = double.NaN;
            var (pairs, withoutPairs) = _o.PairSource == PairSource.SelfRewarded
                ? SelfRewardedPairs(batch.Count, rollouts, it, padId, out consistency)
                : Pairs(batch, rollouts, scores, all, goldRows, goldIds, new Random(unchecked((int)(seed & int.MaxValue))));
            TotalPairs += pairs.Count;

            // ---- updates: UpdatesPerIteration passes over the pairs in minibatches
            var (loss, accuracy, margin) = Update(pairs, it, padId);
            double updateSeconds = phase.Elapsed.TotalSeconds;
            _t.AfterIteration?.Invoke(it + 1, Policy, _reference);
            double? validationReward = _validation.Count > 0 ? Validate(it) : null;
            double rewardMean = scores.Length > 0 && _t.Rewards.Count > 0 ? scores.Average() : double.NaN;
            LastReward = rewardMean;
            if (!double.IsNaN(loss)) LastLoss = loss;

            var row = new JsonObject
            {
                ["step"] = it + 1, ["reward_mean"] = Round(rewardMean), ["pairs"] = pairs.Count, ["prompts_without_pairs"] = withoutPairs,
                ["loss"] = Round(loss), ["accuracy"] = Round(accuracy), ["margin"] = Round(margin), ["kl_ref"] = Round(klRef),
                ["completion_length"] = Round(rollouts.Average(r => r.CompletionIds.Length)),
                ["timing/generate"] = Math.Round(generateSeconds, 4), ["timing/update"] = Math.Round(updateSeconds, 4),
                ["seconds"] = Math.Round(_total.Elapsed.TotalSeconds, 3), ["validation_reward"] = validationReward is { } vr ? Round(vr) : null,
            };
            if (_guard.Skipped > 0) row["skipped_nonfinite_steps"] = _guard.Skipped;
            if (referenceIteration is { } ri) row["reference_iteration"] = ri;
            if (_o.PairSource == PairSource.SelfRewarded) row["consistency"] = Round(consistency);
            if (_t.PairwiseJudge is not null) row["judge_calls"] = JudgeCalls;
            _t.Log?.Invoke($"iter {it + 1}/{_o.Iterations}  reward {rewardMean:F4}  pairs {pairs.Count} ({withoutPairs} prompts without one)  {_o.Loss} {loss:F4}  acc {accuracy:P0}  kl_ref {klRef:F4}");
            return new IterationReport(row);
        }

        /// <summary>
        /// SePPO's reference: saves π_t (the policy at the start of iteration <paramref name="it"/>) into the pool, drops the
        /// iterates older than the last CheckpointPool, draws one of the pool uniformly (<see cref="DrawCheckpoint"/>) and
        /// loads it as the reference. Returns the drawn iterate's number. The pool lives on disk, so a resumed run draws
        /// from the same pool.
        /// </summary>
        int DrawReference(int it, long seed)
        {
            var poolDir = Path.Combine(_outDir, PoolFolder);
            HfCheckpoint.SaveAtomically(Path.Combine(poolDir, $"iter-{it:D6}"), Policy);
            var pool = Directory.GetDirectories(poolDir, "iter-*")
                .Select(d => Path.GetFileName(d)[5..]).Where(n => n.Length == 6 && n.All(char.IsAsciiDigit)).Select(int.Parse)
                .Where(i => i <= it).Order().ToList();
            if (_o.CheckpointPool > 0)
                foreach (var old in pool.Take(Math.Max(0, pool.Count - _o.CheckpointPool)).ToList())
                {
                    Directory.Delete(Path.Combine(poolDir, $"iter-{old:D6}"), recursive: true);
                    pool.Remove(old);
                }
            int drawn = DrawCheckpoint(pool, seed);
            HfCheckpoint.LoadWeightsInto(_reference!, Path.Combine(poolDir, $"iter-{drawn:D6}"));
            return drawn;
        }

        /// <summary>
        /// CREAM's pairs: per prompt, the samples' implicit rewards β·(log π_t − log π_ref) (summed over tokens, teacher-forced)
        /// pick best vs worst (<see cref="ReliablePairLosses.SelfRewardedPairs"/>; a prompt whose samples all tie gives none),
        /// and the pair's weight is <see cref="ReliablePairLosses.ConsistencyRates"/> against π_{t−1}'s implicit rewards
        /// (1 at the first iteration). Afterwards π_t becomes the next iteration's π_{t−1}. Returns the mean consistency.
        /// </summary>
        (List<PreferenceTrainer.Pair> Pairs, int WithoutPairs) SelfRewardedPairs(int prompts, IReadOnlyList<Rollout> rollouts, int it, int padId, out double meanConsistency)
        {
            var promptIds = rollouts.Select(r => (IReadOnlyList<int>)r.PromptIds).ToList();
            var completionIds = rollouts.Select(r => (IReadOnlyList<int>)r.CompletionIds).ToList();
            double[] Summed(CausalLM m) => [.. Scoring.Score(m, promptIds, completionIds, padId).Select(lp => lp.Sum(x => (double)x))];
            var reference = Summed(_reference!);
            var current = Summed(Policy).Select((v, i) => _o.Beta * (v - reference[i])).ToArray();
            var previous = it > 0 ? Summed(_lastIterate!).Select((v, i) => _o.Beta * (v - reference[i])).ToArray() : null;
            CopyWeights(Policy, _lastIterate!, dispose: false);
            var pairs = CreamPairs(current, previous, _o.SamplesPerPrompt)
                .Select(q => new PreferenceTrainer.Pair(rollouts[q.Chosen].PromptIds, rollouts[q.Chosen].CompletionIds, rollouts[q.Rejected].CompletionIds, Weight: q.Consistency))
                .ToList();
            meanConsistency = pairs.Count > 0 ? pairs.Average(q => q.Weight) : double.NaN;
            return (pairs, prompts - pairs.Count);
        }

        /// <summary>The iteration's pairs: per prompt from its scored candidates by the pair rule (or the oracle), or SPIN's data-vs-sample pairs.</summary>
        (List<PreferenceTrainer.Pair> Pairs, int WithoutPairs) Pairs(List<RlPrompt> batch, IReadOnlyList<Rollout> rollouts, double[] scores, double[] all,
            List<int> goldRows, List<int[]?> goldIds, Random rng)
        {
            var pairs = new List<PreferenceTrainer.Pair>();
            int withoutPairs = 0;   // prompts that gave no pair: ties, margins or positives below the thresholds, or the oracle said no
            for (int p = 0; p < batch.Count; p++)
            {
                var group = Enumerable.Range(0, rollouts.Count).Where(i => rollouts[i].PromptIndex == p).ToList();
                if (_o.PairSource == PairSource.DataVsSample)
                {
                    foreach (var i in group) pairs.Add(new PreferenceTrainer.Pair(rollouts[i].PromptIds, goldIds[p]!, rollouts[i].CompletionIds));
                    continue;
                }
                if (_t.PairwiseJudge is { } judge)
                {
                    int before = pairs.Count;
                    for (int a = 0; a + 1 < group.Count; a += 2)
                    {
                        var (x, y) = (rollouts[group[a]], rollouts[group[a + 1]]);
                        double pref = judge(batch[p].Prompt, x.CompletionText, y.CompletionText);
                        JudgeCalls++;
                        if (!(pref >= 0 && pref <= 1)) throw new InvalidOperationException($"the pairwise judge returned {pref}; a preference probability must be in [0, 1]");
                        if (pref > 0.5) pairs.Add(new PreferenceTrainer.Pair(x.PromptIds, x.CompletionIds, y.CompletionIds, Strength: pref));
                        else if (pref < 0.5) pairs.Add(new PreferenceTrainer.Pair(x.PromptIds, y.CompletionIds, x.CompletionIds, Strength: 1 - pref));
                    }
                    if (pairs.Count == before) withoutPairs++;
                    continue;
                }
                var ids = group.Select(i => rollouts[i].CompletionIds).ToList();
                var cand = group.Select(i => scores[i]).ToList();
                int g = goldRows.IndexOf(p);
                if (g >= 0) { ids.Add(goldIds[p]!); cand.Add(all[rollouts.Count + g]); }
                IReadOnlyList<(int Chosen, int Rejected)> picks = _t.PairOracle is null
                    ? SelectPairs(cand, _o.PairSelection, _o.MinMargin, _o.MinPositiveScore, _o.StudentMargin, students: group.Count, rng)
                    : _t.PairOracle(cand, rng) is { } one ? [one] : [];
                if (picks.Count == 0) withoutPairs++;
                foreach (var (c, r) in picks) pairs.Add(new PreferenceTrainer.Pair(rollouts[group[0]].PromptIds, ids[c], ids[r]));
            }
            return (pairs, withoutPairs);
        }

        /// <summary>UpdatesPerIteration passes of minibatch steps over the pairs; returns the first pass's loss, accuracy and margin.</summary>
        (double Loss, double Accuracy, double Margin) Update(List<PreferenceTrainer.Pair> pairs, int it, int padId)
        {
            double loss = double.NaN, accuracy = double.NaN, margin = double.NaN;
            if (pairs.Count == 0) return (loss, accuracy, margin);
            Policy.train();
            float[]? refC = null, refR = null, prevC = null, prevR = null;
            if (_reference is not null) (refC, refR) = PreferenceTrainer.SummedLogProbs(_reference, pairs, padId);
            if (_previous is not null) (prevC, prevR) = PreferenceTrainer.SummedLogProbs(_previous, pairs, padId);
            int size = _o.MiniBatchSize > 0 ? _o.MiniBatchSize : pairs.Count;
            for (int u = 0; u < _o.UpdatesPerIteration; u++)
            {
                var perm = u == 0 && size >= pairs.Count ? Enumerable.Range(0, pairs.Count).ToArray() : DataOrder.Permutation(pairs.Count, _o.Seed + it, u);
                double sl = 0, sa = 0, sm = 0;
                for (int s0 = 0; s0 < perm.Length; s0 += size)
                {
                    var rows = perm[s0..Math.Min(perm.Length, s0 + size)];
                    float[]? Pick(float[]? xs) => xs is null ? null : rows.Select(i => xs[i]).ToArray();
                    var (l, m) = Step(rows.Select(i => pairs[i]).ToList(), Pick(refC), Pick(refR), Pick(prevC), Pick(prevR), padId);
                    double w = rows.Length / (double)perm.Length;
                    sl += l * w; sa += m.Accuracy * w; sm += m.Margin * w;
                }
                if (u == 0) { loss = sl; accuracy = sa; margin = sm; }   // the first pass: before most of this iteration's updates
            }
            Policy.eval();
            _engine.SyncWeights(Policy);
            return (loss, accuracy, margin);
        }

        (double Loss, PreferenceMetrics Metrics) Step(List<PreferenceTrainer.Pair> pairs, float[]? refC, float[]? refR, float[]? prevC, float[]? prevR, int padId)
        {
            using var scope = NewDisposeScope();
            _opt.zero_grad();
            // The online trainer exposes β (and INPO's η) only: the other losses keep PreferenceOptions' defaults; IPO's and
            // INPO's τ and SPIN's λ are β.
            var c = new PreferenceOptions { Loss = _o.Loss, Beta = _o.Beta, Tau = _o.Beta }.Coefficients with { Eta = _o.Eta };
            Tensor? T(float[]? xs) => xs is null ? null : tensor(xs);
            var (loss, metrics) = PreferenceTrainer.PairLoss(Policy, _o.Loss, c, pairs, T(refC), T(refR), padId, T(prevC), T(prevR));
            double value = loss.item<float>();
            loss.backward();
            _guard.Step(_opt, Policy.TrainableParameters(), _o.MaxGradNorm, value, step: _iteration + 1);
            return (value, metrics);
        }

        /// <summary>Greedy reward on the held-out prompts; the best iterate so far is kept in best/.</summary>
        double Validate(int it)
        {
            double validationReward = Evaluator.GreedyReward(_torchEngine, _validation, _t.Rewards, _o.MaxNewTokens, _cancel);
            if (validationReward > _best.Reward)
            {
                _best = (it + 1, validationReward);
                HfCheckpoint.SaveAtomically(Path.Combine(_outDir, BestFolder), Policy, Tokenizer);
                AtomicFile.WriteAllText(Path.Combine(_outDir, BestFile),
                    new JsonObject { ["iteration"] = _best.Iteration, ["validation_reward"] = _best.Reward }.ToJsonString());
            }
            _t.Log?.Invoke($"iteration {it + 1}: validation reward {validationReward:F4} on {_validation.Count} held-out prompts (best {_best.Reward:F4} at iteration {_best.Iteration})");
            return validationReward;
        }

        public JsonObject CheckpointState() => new()
        {
            ["position"] = _cursor.Position, ["epoch"] = _cursor.Epoch, ["pairs"] = TotalPairs, ["judge_calls"] = JudgeCalls, ["seed"] = _o.Seed, ["algorithm"] = _o.Algorithm,
        };

        public void SaveExtra(string tmp)
        {
            if (_reference is not null) HfCheckpoint.Save(Path.Combine(tmp, "reference"), _reference);
            if (_lastIterate is not null) HfCheckpoint.Save(Path.Combine(tmp, "last_iterate"), _lastIterate);
        }

        public void Restore(string latest, JsonObject st)
        {
            int start = st["step"]!.GetValue<int>();
            _cursor = new DataCursor(_prompts.Count, _o.Seed, st["epoch"]!.GetValue<int>(), st["position"]!.GetValue<int>());
            TotalPairs = st["pairs"]!.GetValue<int>();
            JudgeCalls = st["judge_calls"]?.GetValue<int>() ?? 0;
            if (_reference is not null) HfCheckpoint.LoadWeightsInto(_reference, Path.Combine(latest, "reference"));
            if (_lastIterate is not null) HfCheckpoint.LoadWeightsInto(_lastIterate, Path.Combine(latest, "last_iterate"));
            _engine.SyncWeights(Policy);
            if (File.Exists(Path.Combine(_outDir, BestFile)))
            {
                var b = JsonNode.Parse(File.ReadAllText(Path.Combine(_outDir, BestFile)))!;
                if (b["iteration"]!.GetValue<int>() <= start) _best = (b["iteration"]!.GetValue<int>(), b["validation_reward"]!.GetValue<double>());
            }
        }

        public void Finish(int completed)
        {
            if (_validation.Count == 0 || _best.Iteration <= 0 || _best.Iteration >= _o.Iterations) return;
            // End with the best iterate: its adapters (LoRA) or its weights.
            var bestDir = Path.Combine(_outDir, BestFolder);
            if (Policy.Lora is not null) HfCheckpoint.LoadAdapter(Path.Combine(bestDir, HfCheckpoint.AdapterFolder), Policy);
            else HfCheckpoint.LoadWeightsInto(Policy, bestDir);
            _t.Log?.Invoke($"best iterate: {_best.Iteration} of {_o.Iterations} (validation reward {_best.Reward:F4})");
        }

        public JsonObject Summary(int completed, double seconds, string finalDir)
        {
            var summary = new JsonObject
            {
                ["best_iteration"] = _validation.Count > 0 ? _best.Iteration : null,
                ["best_validation_reward"] = _validation.Count > 0 ? Round(_best.Reward) : null,
                ["validation_prompts"] = _validation.Count,
                ["algorithm"] = _o.Algorithm, ["loss_name"] = _o.Loss, ["iterations"] = _o.Iterations, ["final_loss"] = Round(LastLoss),
                ["final_reward_mean"] = Round(LastReward), ["pairs"] = TotalPairs, ["pair_selection"] = _o.PairSelection.ToString(),
                ["pair_source"] = _o.PairSource.ToString(), ["reference_update"] = _o.ReferenceUpdate.ToString(),
                ["sampling"] = _o.Sampling == SamplingSource.Mixture ? $"mixture(beta={_o.MixtureBeta})" : "policy",
                ["seconds"] = Math.Round(seconds, 2), ["final_checkpoint"] = finalDir,
            };
            if (_guard.Skipped > 0) summary["skipped_nonfinite_steps"] = _guard.Skipped;
            return summary;
        }

        public void Dispose() { _reference?.Dispose(); _previous?.Dispose(); _lastIterate?.Dispose(); _opt.Dispose(); }
    }

    CausalLM Policy => policy;
    ITokenizer Tokenizer => tokenizer;
    IReadOnlyList<WeightedReward> Rewards => rewards;

    /// <summary>
    /// CREAM's self-rewarded pairs (arXiv:2410.12735) from the implicit rewards β·log π_t/π_ref of consecutive groups of
    /// <paramref name="samplesPerPrompt"/> samples (<paramref name="current"/>, one prompt's samples together): per prompt the
    /// highest against the lowest (first on ties; a prompt whose samples all tie gives no pair), as indices into the flat
    /// list, weighted by the consistency C = (τ + 1)/2 of Kendall's τ between the prompt's <paramref name="current"/> and
    /// <paramref name="previous"/> (π_{t−1}'s) implicit rewards; C = 1 when <paramref name="previous"/> is null.
    /// </summary>
    public static IReadOnlyList<(int Chosen, int Rejected, double Consistency)> CreamPairs(IReadOnlyList<double> current, IReadOnlyList<double>? previous, int samplesPerPrompt)
    {
        ArgumentNullException.ThrowIfNull(current);
        int n = samplesPerPrompt;
        if (n < 2 || current.Count % n != 0) throw new ArgumentException($"need groups of samplesPerPrompt ≥ 2, got {current.Count} rewards in groups of {n}");
        if (previous is not null && previous.Count != current.Count) throw new ArgumentException($"previous has {previous.Count} rewards, current {current.Count}");
        int prompts = current.Count / n;
        using var scope = NewDisposeScope();
        var cur = tensor(current.ToArray()).view(prompts, n);                                                      // (B, N)
        var picks = ReliablePairLosses.SelfRewardedPairs(cur);
        var rates = previous is null ? Enumerable.Repeat(1.0, prompts).ToArray()
            : ReliablePairLosses.ConsistencyRates(cur, tensor(previous.ToArray()).view(prompts, n));              // (B)
        var pairs = new List<(int, int, double)>();
        for (int p = 0; p < prompts; p++)
        {
            var (c, r) = picks[p];
            if (current[p * n + c] > current[p * n + r]) pairs.Add((p * n + c, p * n + r, rates[p]));
        }
        return pairs;
    }

    /// <summary>Folder of SePPO's checkpoint pool (<see cref="ReferenceUpdate.RandomCheckpoint"/>): one <c>iter-NNNNNN</c> per iterate.</summary>
    public const string PoolFolder = "checkpoint_pool";

    /// <summary>
    /// SePPO's reference-model selection: one iterate drawn uniformly from <paramref name="pool"/> (the iterate numbers on
    /// disk, ascending) by a generator seeded with the iteration's seed, so a resumed run draws the same one.
    /// </summary>
    public static int DrawCheckpoint(IReadOnlyList<int> pool, long seed)
    {
        ArgumentNullException.ThrowIfNull(pool);
        if (pool.Count == 0) throw new ArgumentException("the checkpoint pool is empty", nameof(pool));
        return pool[new Random(unchecked((int)((seed * 7919 + 17) & int.MaxValue))).Next(pool.Count)];
    }

    /// <summary>Folder of the best iterate so far (with <see cref="OnlineDpoOptions.ValidationPrompts"/>).</summary>
    public const string BestFolder = "best";
    const string BestFile = "best.json";


    /// <summary>Copies every weight of <paramref name="from"/> into <paramref name="to"/> (same architecture).</summary>
    static void CopyWeights(CausalLM from, CausalLM to, bool dispose)
    {
        try { using (NewDisposeScope()) to.LoadWeights(from.Weights().ToDictionary(w => w.Name, w => w.Tensor), "policy"); }
        finally { if (dispose) from.Dispose(); }
    }

    static double Round(double x) => StepLoop.Round(x);
}
