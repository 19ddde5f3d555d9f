using System.Text.Json.Serialization;
using Sharpen.Rewards;
using Sharpen.Search;
using Sharpen.Training.RewardModels;
using Sharpen.Data;

namespace Sharpen.Training.ExpertIteration;

/// <summary>
/// The search stage of ReST-MCTS* (Zhang et al. 2024): the <c>expert_iteration.mcts</c> section of a recipe. Each training
/// problem is searched by <see cref="MctsSearch"/> with the current policy and value model; defaults are ours (sized for small
/// CPU models), not the paper's, unless a field says otherwise.
/// </summary>
public sealed record RestMctsOptions
{
    /// <summary><c>budget_tokens</c>: generated tokens per problem per iteration (every token, kept or cut off).</summary>
    public int BudgetTokens { get; init; } = 512;
    /// <summary><c>expansions</c>: next steps sampled per expansion (k).</summary>
    public int Expansions { get; init; } = 3;
    /// <summary><c>max_steps</c>: deepest step count before a path is cut off (counts as finished and is verified).</summary>
    public int MaxSteps { get; init; } = 8;
    /// <summary><c>max_step_tokens</c>: most tokens of one step.</summary>
    public int MaxStepTokens { get; init; } = 24;
    /// <summary><c>step_splitter</c>: how completions are cut into steps (<c>countdown</c>, <c>newline</c>, <c>delimiter:X</c>, <c>regex:P</c>).</summary>
    public string StepSplitter { get; init; } = "countdown";
    /// <summary><c>c</c>: exploration constant of the selection rule.</summary>
    public double C { get; init; } = 1.25;
    /// <summary><c>selection</c>: <c>puct</c> or <c>uct</c>.</summary>
    public string Selection { get; init; } = "puct";
    /// <summary><c>lambda</c>: leaf value = (1 − λ)·value model + λ·verified rollout, once a value model exists. Without one
    /// (iteration 1, or <c>value_model: none</c>) λ = 1: rollouts alone.</summary>
    public double Lambda { get; init; } = 0.5;
    /// <summary><c>simulations</c>: most simulations per problem (0 = until the budget is spent or the tree is exhausted).</summary>
    public int Simulations { get; init; }
    /// <summary><c>value_model</c>: how the value model is refitted to each iteration's targets: <c>prm</c> (a process reward
    /// model, <see cref="PrmValueModelTrainer"/>: backbone + scalar head trained on the soft step targets, continued from the
    /// previous iteration's), <c>table</c> (mean target per exact (prompt, prefix), 0.5 elsewhere: a lookup that does not
    /// generalise, for tests and tiny runs) or <c>none</c> (every iteration searches with rollouts alone).</summary>
    public string ValueModel { get; init; } = "prm";

    /// <summary><c>value_steps</c>: PRM optimizer steps per iteration (<c>value_model: prm</c>).</summary>
    public int ValueSteps { get; init; } = 100;

    /// <summary><c>value_learning_rate</c>: PRM learning rate (<c>value_model: prm</c>).</summary>
    public double ValueLearningRate { get; init; } = 2e-4;

    /// <summary><c>value_targets</c>: how the tree gives each step its value target: <c>rest_mcts</c> (ReST-MCTS*'s
    /// recurrence from the distance to the nearest verified-correct answer, Zhang et al. 2024) or <c>alphamath</c> (the
    /// Q-value MCTS backed up into the step, finished steps their verified 0/1 reward; Chen et al. 2024, arXiv:2405.03553).</summary>
    public string ValueTargets { get; init; } = "rest_mcts";

    /// <summary>Known <see cref="ValueModel"/> names.</summary>
    public static IReadOnlyList<string> ValueModels { get; } = ["prm", "table", "none"];

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad key (<c>expert_iteration.mcts.KEY</c>).</summary>
    public RestMctsOptions Validate()
    {
        const string p = "expert_iteration.mcts.";
        if (BudgetTokens < 1) throw new ArgumentException($"{p}budget_tokens must be ≥ 1, got {BudgetTokens}");
        if (Expansions < 1) throw new ArgumentException($"{p}expansions must be ≥ 1, got {Expansions}");
        if (MaxSteps < 1) throw new ArgumentException($"{p}max_steps must be ≥ 1, got {MaxSteps}");
        if (MaxStepTokens < 1) throw new ArgumentException($"{p}max_step_tokens must be ≥ 1, got {MaxStepTokens}");
        try { _ = Splitter; }
        catch (ArgumentException e) { throw new ArgumentException($"{p}step_splitter: {e.Message}"); }
        if (!(C >= 0) || double.IsInfinity(C)) throw new ArgumentException($"{p}c must be ≥ 0, got {C}");
        if (Selection is not ("puct" or "uct")) throw new ArgumentException($"{p}selection is '{Selection}'; expected puct or uct");
        if (!(Lambda >= 0 && Lambda <= 1)) throw new ArgumentException($"{p}lambda must be in [0, 1], got {Lambda}");
        if (Simulations < 0) throw new ArgumentException($"{p}simulations must be ≥ 0, got {Simulations}");
        if (ValueSteps < 1) throw new ArgumentException($"{p}value_steps must be ≥ 1, got {ValueSteps}");
        if (!(ValueLearningRate > 0) || double.IsInfinity(ValueLearningRate)) throw new ArgumentException($"{p}value_learning_rate must be positive, got {ValueLearningRate}");
        if (ValueTargets is not ("rest_mcts" or "alphamath")) throw new ArgumentException($"{p}value_targets is '{ValueTargets}'; expected rest_mcts or alphamath");
        if (!ValueModels.Contains(ValueModel)) throw new ArgumentException($"{p}value_model is '{ValueModel}'; known: {string.Join(", ", ValueModels)}");
        return this;
    }

    /// <summary>The PRM settings of <c>value_model: prm</c>.</summary>
    public PrmOptions ValuePrmOptions(int seed) => new()
    {
        MaxSteps = ValueSteps, LearningRate = ValueLearningRate, BatchSize = 16, WarmupSteps = Math.Min(10, ValueSteps / 10),
        StepSplitter = StepSplitter, LogEvery = Math.Max(1, ValueSteps / 5), Seed = seed,
    };

    /// <summary>The step splitter <see cref="StepSplitter"/> names.</summary>
    [JsonIgnore] public Data.StepSplitter Splitter => Data.StepSplitter.Parse(StepSplitter);

    /// <summary>The search options of one problem: λ = 1 without a value model, <see cref="Lambda"/> with one; the answer is
    /// the best finished node (the verifier scores finished nodes, so a correct one wins when found).</summary>
    public SearchOptions ToSearchOptions(bool haveValueModel, long seed) => new SearchOptions
    {
        BudgetTokens = BudgetTokens, Seed = seed, Expansions = Expansions, MaxSteps = MaxSteps, MctsC = C, MctsSelection = Selection,
        MctsLambda = haveValueModel ? Lambda : 1.0, MctsSimulations = Simulations, MctsPick = "best-terminal",
        StepAggregation = StepAggregation.Last,
    }.Validate();
}
