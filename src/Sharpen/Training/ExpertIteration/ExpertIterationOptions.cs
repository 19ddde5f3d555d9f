using System.Text.Json.Serialization;
using Sharpen.Training.Sft;

namespace Sharpen.Training.ExpertIteration;

/// <summary>
/// Expert-iteration settings (the <c>expert_iteration</c> section of a recipe): sample with the current
/// policy, keep the verified-correct completions, fine-tune, repeat. <see cref="For"/> gives the presets
/// <c>rest_em</c> (Singh et al. 2023, "Beyond Human Data"), <c>star</c> (Zelikman et al. 2022) and <c>rest_mcts</c> (Zhang et al. 2024,
/// ReST-MCTS*: the sample stage is a value-guided tree search, see <see cref="MctsExpertSampler"/>); a recipe
/// overrides fields on top of the preset. The defaults of the record are ReST-EM's.
/// </summary>
public sealed record ExpertIterationOptions
{
    /// <summary>Preset name: <c>rest_em</c>, <c>star</c>, <c>rest_mcts</c> or <c>sharpening</c>.</summary>
    public string Method { get; init; } = "rest_em";
    /// <summary>Method <c>sharpening</c>: select by the per-token mean of log π(y | x) (true) or by its sum (false).</summary>
    public bool SelfLikelihoodNormalize { get; init; } = true;
    /// <summary>Iterations K (each: sample → verify → keep → SFT → evaluate). ReST-EM ran about three on MATH.</summary>
    public int Iterations { get; init; } = 3;
    /// <summary>Completions sampled per training problem (ReST-EM: 32 on MATH; STaR: one rationale per problem).</summary>
    public int SamplesPerProblem { get; init; } = 32;
    /// <summary>Sampling temperature (0 = greedy).</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Top-k truncation of sampling (0 = off). 40 as in ReST-EM's sampling setup as we recall it (temperature 1, top-k 40; not rechecked against the paper).</summary>
    public int TopK { get; init; } = 40;
    /// <summary>Most new tokens per completion (sampling and held-out evaluation).</summary>
    public int MaxNewTokens { get; init; } = 64;
    /// <summary>Most correct completions kept per problem, so easy problems do not dominate the data (ReST-EM: 10 on MATH).</summary>
    public int MaxKeptPerProblem { get; init; } = 10;
    /// <summary>Keep a completion only once per problem (identical text, compared ordinally).</summary>
    public bool Dedupe { get; init; } = true;
    /// <summary>Fine-tune each iteration from the base model (ReST-EM and STaR) rather than continue from the previous iterate.</summary>
    public bool RestartFromBase { get; init; } = true;
    /// <summary>Train on the kept data of all iterations so far (per problem, deduped and capped), not only the latest one.</summary>
    public bool Accumulate { get; init; }
    /// <summary>Multiply the SFT step count by this each iteration (STaR: 1.2, "20% more steps per outer loop").</summary>
    public double SftStepsGrowth { get; init; } = 1.0;
    /// <summary>Held-out problems evaluated greedily after each iteration (at most the held-out set).</summary>
    public int EvalProblems { get; init; } = 200;
    /// <summary>Most sequences (problems × samples) generated in one batch.</summary>
    public int MaxBatchSequences { get; init; } = 256;
    /// <summary>Seed of sampling (each iteration samples with a seed derived from this and its number).</summary>
    public int Seed { get; init; } = 1;
    /// <summary>ReST-MCTS*'s search stage (read only when <see cref="Method"/> is <c>rest_mcts</c>; the <c>mcts</c> key of a recipe).</summary>
    public RestMctsOptions Mcts { get; init; } = new();
    /// <summary>The SFT stage of every iteration. In a recipe these come from the top-level <c>sft</c> section.</summary>
    [JsonIgnore] public SftOptions Sft { get; init; } = new();

    /// <summary>
    /// STaR's rationalization (<c>rationalize</c>): problems no sample solved are asked again with their answer as a hint
    /// (<see cref="RationalizationHint"/>); correct hinted completions are kept and trained on under the prompt WITHOUT the
    /// hint (<see cref="RationalizingExpertSampler"/>). Default false.
    /// </summary>
    public bool Rationalize { get; init; }
    /// <summary><c>rationalization_hint</c>: the hinted prompt, with <c>{answer}</c> and <c>{prompt}</c> (its characters must be
    /// ones the tokenizer knows; the default fits Countdown's alphabet).</summary>
    public string RationalizationHint { get; init; } = "answer {answer}. {prompt}";

    /// <summary>The preset of a method: <c>rest_em</c>, <c>star</c> or <c>rest_mcts</c>.</summary>
    public static ExpertIterationOptions For(string method) => method switch
    {
        "rest_em" => new ExpertIterationOptions(),
        // STaR: one rationale per problem, keep it when its answer is right, fine-tune the original model with
        // 20% more steps each outer loop. Rationalization (re-asking with the answer as a hint) is not implemented.
        "star" => new ExpertIterationOptions
        {
            Method = "star", Iterations = 5, SamplesPerProblem = 1, Temperature = 0, TopK = 0, MaxKeptPerProblem = 1, SftStepsGrowth = 1.2,
        },
        // ReST-MCTS*: MCTS guided by the value model (rollouts alone before one exists) replaces sampling; its verified-correct
        // traces are the SFT data and every finished path gets per-step value targets for the value model (see MctsExpertSampler).
        // Temperature 1 for the expansions; top_k and samples_per_problem are not used by the search.
        "rest_mcts" => new ExpertIterationOptions { Method = "rest_mcts", Iterations = 2, SamplesPerProblem = 1, TopK = 0, MaxKeptPerProblem = 4 },
        // SFT-Sharpening (Huang et al. 2024): best-of-N by the policy's own log-likelihood, one kept per problem, one round.
        "sharpening" => new ExpertIterationOptions { Method = "sharpening", Iterations = 1, SamplesPerProblem = 8, MaxKeptPerProblem = 1 },
        _ => throw new ArgumentException($"unknown expert-iteration method '{method}'; known: rest_em, star, rest_mcts, sharpening"),
    };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field (recipe key in snake_case).</summary>
    public ExpertIterationOptions Validate()
    {
        static void Positive(double v, string key) => OptionChecks.Positive("expert_iteration", v, key);
        if (Method is not ("rest_em" or "star" or "rest_mcts" or "sharpening")) throw new ArgumentException($"expert_iteration.method is '{Method}'; known: rest_em, star, rest_mcts, sharpening");
        Positive(Iterations, "iterations"); Positive(SamplesPerProblem, "samples_per_problem"); Positive(MaxNewTokens, "max_new_tokens");
        Positive(MaxKeptPerProblem, "max_kept_per_problem"); Positive(MaxBatchSequences, "max_batch_sequences");
        if (!(Temperature >= 0) || double.IsInfinity(Temperature)) throw new ArgumentException($"expert_iteration.temperature must be ≥ 0, got {Temperature}");
        if (TopK < 0) throw new ArgumentException($"expert_iteration.top_k must be ≥ 0, got {TopK}");
        if (!(SftStepsGrowth >= 1) || double.IsInfinity(SftStepsGrowth)) throw new ArgumentException($"expert_iteration.sft_steps_growth must be ≥ 1, got {SftStepsGrowth}");
        if (EvalProblems < 0) throw new ArgumentException($"expert_iteration.eval_problems must be ≥ 0, got {EvalProblems}");
        if (Rationalize && Method is "rest_mcts") throw new ArgumentException("expert_iteration.rationalize works with sampling methods (rest_em, star, sharpening), not rest_mcts");
        if (Rationalize) RationalizingExpertSampler.HintedPrompt(new Tasks.Problem("", "", "", new Dictionary<string, string>()), RationalizationHint);
        Sft.Validate();
        Mcts.Validate();
        return this;
    }

    /// <summary>SFT steps of iteration <paramref name="iteration"/> (1-based): max_steps × growth^(iteration−1), rounded.</summary>
    public int SftStepsAt(int iteration) => (int)Math.Round(Sft.MaxSteps * Math.Pow(SftStepsGrowth, iteration - 1));
}
