using Sharpen.Environments;
using Sharpen.Tasks;

namespace Sharpen.Training.Ranking;

/// <summary>Options of the ranking-policy trainers (<see cref="RankingTrainer"/>): REINFORCE on a Plackett–Luce policy.</summary>
public sealed record RankingOptions
{
    /// <summary>What is ranked: <c>retrieval</c> (the built-in <see cref="RetrievalTask"/>, reward nDCG@K; Neural PG-RANK) or
    /// <c>prompt_selection</c> (in-context examples of the recipe's task for <see cref="Frozen"/>, reward ±1 for its answer;
    /// PromptPG). Default <c>retrieval</c>.</summary>
    public string Task { get; init; } = "retrieval";
    /// <summary>Retrieval only: the generated corpus (<c>topics</c>, <c>words_per_topic</c>, <c>query_words</c>,
    /// <c>document_words</c>, <c>candidates</c>).</summary>
    public RetrievalOptions Retrieval { get; init; } = new();
    /// <summary>Prompt selection only: the frozen model that answers (<c>checkpoint</c> or <c>url</c> + <c>model</c>).</summary>
    public FrozenModelSpec? Frozen { get; init; }
    /// <summary>Prompt selection only: problems in the example pool the candidates are drawn from. Default 40.</summary>
    public int PoolSize { get; init; } = 40;

    /// <summary>Optimizer steps. Default 200.</summary>
    public int Steps { get; init; } = 200;
    /// <summary>Queries (questions) per step. Default 16.</summary>
    public int QueriesPerStep { get; init; } = 16;
    /// <summary>Rankings sampled per query; their leave-one-out mean reward is each one's baseline (≥ 2). Default 4.</summary>
    public int SamplesPerQuery { get; init; } = 4;
    /// <summary>Positions drawn: the nDCG depth for retrieval, the number of in-context examples for prompt selection. Default 5.</summary>
    public int TopK { get; init; } = 5;
    /// <summary>Candidates per question drawn from the example pool (prompt selection only). Default 8.</summary>
    public int Candidates { get; init; } = 8;
    /// <summary>Adam learning rate of the bilinear scorer. Default 0.05.</summary>
    public double LearningRate { get; init; } = 0.05;
    /// <summary>Training queries generated (retrieval) or drawn from the task (prompt selection). Default 2000.</summary>
    public int TrainQueries { get; init; } = 2000;
    /// <summary>Held-out queries for the greedy evaluation. Default 200.</summary>
    public int EvalQueries { get; init; } = 200;
    /// <summary>Evaluate every this many steps (0 = only before and after). Default 50.</summary>
    public int EvalEvery { get; init; } = 50;
    /// <summary>Seed of data, sampling and candidate draws.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the key for a value out of range.</summary>
    public RankingOptions Validate()
    {
        if (Task is not ("retrieval" or "prompt_selection")) throw new ArgumentException($"ranking.task must be retrieval or prompt_selection, got '{Task}'");
        ArgumentNullException.ThrowIfNull(Retrieval);
        Retrieval.Validate();
        Frozen?.Validate();
        Positive(PoolSize, "pool_size");
        Positive(Steps, "steps");
        Positive(QueriesPerStep, "queries_per_step");
        if (SamplesPerQuery < 2) throw new ArgumentOutOfRangeException(nameof(SamplesPerQuery), $"ranking.samples_per_query must be 2 or more (the baseline leaves one out), got {SamplesPerQuery}");
        Positive(TopK, "top_k");
        Positive(Candidates, "candidates");
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate)) throw new ArgumentOutOfRangeException(nameof(LearningRate), $"ranking.learning_rate must be a positive number, got {LearningRate}");
        Positive(TrainQueries, "train_queries");
        Positive(EvalQueries, "eval_queries");
        if (EvalEvery < 0) throw new ArgumentOutOfRangeException(nameof(EvalEvery), $"ranking.eval_every must be 0 or more, got {EvalEvery}");
        return this;
    }

    static void Positive(int v, string key)
    {
        if (v <= 0) throw new ArgumentOutOfRangeException(key, $"ranking.{key} must be positive, got {v}");
    }
}
