using System.Diagnostics;
using Sharpen.Tasks;

namespace Sharpen.Search;

/// <summary>One problem to search on: the prompt, the row's ground-truth fields (for verifier scorers) and how a
/// completion's final answer is read (for voting and for spotting a finished solution).</summary>
/// <param name="Prompt">The text the policy sees.</param>
/// <param name="Fields">Fields of the dataset row (e.g. <c>numbers</c>, <c>target</c>), passed to reward functions.</param>
/// <param name="ExtractAnswer">The final answer of a (partial) completion, or null when it has none yet.</param>
public sealed record SearchProblem(string Prompt, IReadOnlyDictionary<string, string> Fields, Func<string, string?> ExtractAnswer)
{
    /// <summary>A task's problem, answers read by the task.</summary>
    public static SearchProblem From(Problem problem, IVerifiableTask task) =>
        new(problem.Prompt, WithId(problem), task.ExtractFinalAnswer);

    static IReadOnlyDictionary<string, string> WithId(Problem p)
    {
        var d = new Dictionary<string, string>(p.Fields, StringComparer.Ordinal);
        d.TryAdd("id", p.Id);
        d.TryAdd("answer", p.Answer);
        return d;
    }
}

/// <summary>What a search may spend on one problem.</summary>
/// <param name="MaxTokens">Most generated tokens (every token the policy generated, kept or not).</param>
/// <param name="MaxSeconds">Optional wall-clock limit; when set, results depend on machine speed.</param>
public sealed record SearchBudget(int MaxTokens, double? MaxSeconds = null)
{
    /// <summary>Throws naming the bad key.</summary>
    public SearchBudget Validate()
    {
        if (MaxTokens < 1) throw new ArgumentException($"budget_tokens must be ≥ 1, got {MaxTokens}");
        if (MaxSeconds is { } s && !(s > 0)) throw new ArgumentException($"budget_seconds must be > 0, got {s}");
        return this;
    }
}

/// <summary>What a search spent.</summary>
/// <param name="GeneratedTokens">Tokens the policy generated, including those cut off after a step boundary.</param>
/// <param name="ForwardPasses">Batched policy forward calls: per <c>Generate</c> chunk one prefill plus one per further
/// decode step (so a chunk whose longest completion has L tokens costs L passes).</param>
/// <param name="ScorerCalls">Batched calls to outcome or step scorers.</param>
/// <param name="ScoredSequences">Completions or prefixes those calls scored.</param>
/// <param name="Seconds">Wall time of the search.</param>
public sealed record SearchCost(long GeneratedTokens, long ForwardPasses, long ScorerCalls, long ScoredSequences, double Seconds);

/// <summary>Running account of a search's spending against its budget. Policies add tokens and forward passes,
/// strategies add scorer calls.</summary>
public sealed class SearchMeter
{
    readonly Stopwatch _clock = Stopwatch.StartNew();

    /// <summary>Starts the clock.</summary>
    public SearchMeter(SearchBudget budget) => Budget = budget.Validate();

    /// <summary>The limits.</summary>
    public SearchBudget Budget { get; }
    /// <summary>Tokens generated so far.</summary>
    public long GeneratedTokens { get; private set; }
    /// <summary>Policy forward passes so far.</summary>
    public long ForwardPasses { get; private set; }
    /// <summary>Scorer calls so far.</summary>
    public long ScorerCalls { get; private set; }
    /// <summary>Sequences scored so far.</summary>
    public long ScoredSequences { get; private set; }

    /// <summary>Tokens still allowed (0 once the time limit has passed).</summary>
    public int RemainingTokens =>
        Budget.MaxSeconds is { } s && _clock.Elapsed.TotalSeconds >= s ? 0 : (int)Math.Max(0, Budget.MaxTokens - GeneratedTokens);

    /// <summary>Records generation.</summary>
    public void AddGeneration(long tokens, long forwardPasses) { GeneratedTokens += tokens; ForwardPasses += forwardPasses; }

    /// <summary>Records one batched scorer call over <paramref name="sequences"/> items.</summary>
    public void AddScoring(int sequences) { if (sequences > 0) { ScorerCalls++; ScoredSequences += sequences; } }

    /// <summary>A snapshot.</summary>
    public SearchCost Cost => new(GeneratedTokens, ForwardPasses, ScorerCalls, ScoredSequences, _clock.Elapsed.TotalSeconds);
}

/// <summary>One node of a search trace: a sampled candidate (best-of-N, voting) or a tree/beam node (a step).</summary>
/// <param name="Id">Index in the trace.</param>
/// <param name="Parent">Index of the parent node, −1 for a child of the root (or a whole sampled completion).</param>
/// <param name="Text">The text this node added (a step, or a whole completion).</param>
/// <param name="Tokens">Tokens generated for it (including any cut-off part).</param>
/// <param name="LogProb">Sum of the policy's log-probabilities of the kept tokens.</param>
/// <param name="Score">Its score (outcome score, or the aggregated step value of the prefix); NaN when not scored.</param>
/// <param name="Visits">MCTS visit count (1 for other strategies).</param>
/// <param name="Value">MCTS mean backed-up value; the score for other strategies.</param>
/// <param name="Terminal">Whether the prefix up to this node is a finished solution.</param>
/// <param name="Answer">Its extracted final answer, when terminal.</param>
public sealed record SearchNode(int Id, int Parent, string Text, int Tokens, double LogProb, double Score, int Visits, double Value,
    bool Terminal, string? Answer);

/// <summary>The outcome of a search on one problem.</summary>
/// <param name="Strategy">Strategy name.</param>
/// <param name="Completion">The chosen completion (the text after the prompt).</param>
/// <param name="Answer">Its extracted final answer, or null.</param>
/// <param name="Cost">What the search spent.</param>
/// <param name="Trace">The candidates or nodes considered, in creation order.</param>
public sealed record SearchResult(string Strategy, string Completion, string? Answer, SearchCost Cost, IReadOnlyList<SearchNode> Trace);
