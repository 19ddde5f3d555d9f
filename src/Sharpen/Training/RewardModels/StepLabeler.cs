using System.Diagnostics;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Tasks;
using Sharpen.Rewards;

namespace Sharpen.Training.RewardModels;

/// <summary>Settings of Monte-Carlo step labelling.</summary>
public sealed record StepLabelOptions
{
    /// <summary>Solutions sampled per problem (M) when none are given.</summary>
    public int SamplesPerProblem { get; init; } = 4;
    /// <summary>Continuations sampled from every step prefix (N; Math-Shepherd uses 8).</summary>
    public int Rollouts { get; init; } = 8;
    /// <summary>Write hard labels (any continuation correct) instead of soft ones (the fraction correct).</summary>
    public bool Hard { get; init; }
    /// <summary>Sampling temperature of solutions and continuations.</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Most new tokens per solution or continuation.</summary>
    public int MaxNewTokens { get; init; } = 64;
    /// <summary>Most sequences per batched forward pass.</summary>
    public int MaxBatchSequences { get; init; } = 256;
    /// <summary>Sampling seed.</summary>
    public long Seed { get; init; } = 1;

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad option.</summary>
    public StepLabelOptions Validate()
    {
        if (SamplesPerProblem < 1) throw new ArgumentException($"samples-per-problem must be ≥ 1, got {SamplesPerProblem}");
        if (Rollouts < 1) throw new ArgumentException($"rollouts must be ≥ 1, got {Rollouts}");
        if (!(Temperature >= 0) || double.IsInfinity(Temperature)) throw new ArgumentException($"temperature must be ≥ 0, got {Temperature}");
        if (MaxNewTokens < 1) throw new ArgumentException($"max-new-tokens must be ≥ 1, got {MaxNewTokens}");
        if (MaxBatchSequences < 1) throw new ArgumentException($"max-batch-sequences must be ≥ 1, got {MaxBatchSequences}");
        return this;
    }
}

/// <summary>What a labelling run produced.</summary>
/// <param name="Rows">One step-labelled row per solution that had at least one step.</param>
/// <param name="Steps">Steps labelled.</param>
/// <param name="Rollouts">Continuations generated from step prefixes.</param>
/// <param name="SolutionTokens">Tokens generated for the solutions themselves (0 when they were given).</param>
/// <param name="RolloutTokens">Tokens generated for the continuations: the labelling compute.</param>
/// <param name="Seconds">Wall-clock time.</param>
public sealed record StepLabelResult(IReadOnlyList<StepLabelledExample> Rows, int Steps, int Rollouts, long SolutionTokens, long RolloutTokens, double Seconds)
{
    /// <summary>All generated tokens.</summary>
    public long GeneratedTokens => SolutionTokens + RolloutTokens;
}

/// <summary>
/// Monte-Carlo step labels (Wang et al. 2024, Math-Shepherd; as used by AlphaMath and ReST-MCTS*): every solution is split
/// into steps with a <see cref="StepSplitter"/>; from the prefix ending after each step but the last, the policy samples
/// N continuations, and the task's verifier checks prefix + continuation. Soft label = fraction correct, hard label = any
/// correct. The last step's prefix is the whole solution, so its label is the solution's own verdict (no rollouts).
/// All prefixes × N go to <see cref="RolloutEngine.Generate(IReadOnlyList{IReadOnlyList{int}}, SamplingOptions)"/> in one
/// call (the engine chunks it by <see cref="StepLabelOptions.MaxBatchSequences"/>). Prefixes are token ids: the prompt
/// encoded once plus each step encoded on its own (<see cref="StepEncoding"/>), the layout PRMs train on.
/// Each row keeps the problem's fields plus <c>soft_labels</c> (a JSON list), <c>correct</c> (the solution's verdict) and
/// <c>rollouts</c> (N).
/// </summary>
public sealed class StepLabeler(RolloutEngine engine, IVerifiableTask task, StepSplitter splitter, StepLabelOptions options)
{
    readonly StepLabelOptions _o = options.Validate();

    /// <summary>Samples M solutions per problem, then labels their steps.</summary>
    public StepLabelResult Label(IReadOnlyList<Problem> problems)
    {
        var sw = Stopwatch.StartNew();
        var sampling = Sampling(_o.SamplesPerProblem, _o.Seed);
        var solutions = engine.Generate(problems.Select(p => p.Prompt).ToList(), sampling);
        long tokens = solutions.Sum(r => (long)r.CompletionIds.Length);
        var result = LabelCompletions(solutions.Select(r => (problems[r.PromptIndex], r.CompletionText)).ToList());
        return result with { SolutionTokens = tokens, Seconds = sw.Elapsed.TotalSeconds };
    }

    /// <summary>Labels the steps of given (problem, completion) solutions.</summary>
    public StepLabelResult LabelCompletions(IReadOnlyList<(Problem Problem, string Completion)> solutions)
    {
        var sw = Stopwatch.StartNew();
        var tok = engine.Tokenizer;
        var items = new List<(Problem Problem, IReadOnlyList<string> Steps, bool Correct)>();
        var prefixes = new List<IReadOnlyList<int>>();
        var prefixOwner = new List<(int Item, int Step)>();
        foreach (var (problem, completion) in solutions)
        {
            var steps = splitter.Split(completion);
            if (steps.Count == 0) continue;
            int item = items.Count;
            items.Add((problem, steps, task.Verify(problem, completion).Correct));
            var enc = StepEncoding.Encode(tok, problem.Prompt, steps);
            for (int t = 0; t < steps.Count - 1; t++)
            {
                prefixes.Add(enc.Prompt.Concat(enc.Completion.Take(enc.StepEnds[t] + 1)).ToArray());
                prefixOwner.Add((item, t));
            }
        }

        var correct = items.Select(it => new int[it.Steps.Count]).ToArray();
        long rolloutTokens = 0;
        int rollouts = 0;
        if (prefixes.Count > 0)
        {
            var outs = engine.Generate(prefixes, Sampling(_o.Rollouts, _o.Seed + 1));
            foreach (var r in outs)
            {
                var (item, step) = prefixOwner[r.PromptIndex];
                var it = items[item];
                var text = string.Concat(it.Steps.Take(step + 1)) + r.CompletionText;
                if (task.Verify(it.Problem, text).Correct) correct[item][step]++;
                rolloutTokens += r.CompletionIds.Length;
                rollouts++;
            }
        }

        var rows = new List<StepLabelledExample>(items.Count);
        for (int i = 0; i < items.Count; i++)
        {
            var (problem, steps, ok) = items[i];
            var soft = new double[steps.Count];
            for (int t = 0; t < steps.Count - 1; t++) soft[t] = (double)correct[i][t] / _o.Rollouts;
            soft[^1] = ok ? 1 : 0;
            var labels = _o.Hard ? soft.Select(s => s > 0 ? 1.0 : 0.0).ToArray() : soft;
            var fields = new Dictionary<string, string> { ["id"] = problem.Id, ["answer"] = problem.Answer };
            foreach (var (k, v) in problem.Fields) fields[k] = v;
            fields["soft_labels"] = StepLabelledExample.JsonList(soft);
            fields["correct"] = ok ? "true" : "false";
            fields["rollouts"] = _o.Rollouts.ToString(System.Globalization.CultureInfo.InvariantCulture);
            rows.Add(new StepLabelledExample(problem.Prompt, steps, labels, fields));
        }
        return new StepLabelResult(rows, items.Sum(it => it.Steps.Count), rollouts, 0, rolloutTokens, sw.Elapsed.TotalSeconds);
    }

    SamplingOptions Sampling(int samples, long seed) => new()
    {
        Temperature = _o.Temperature, MaxNewTokens = _o.MaxNewTokens, SamplesPerPrompt = samples, Seed = seed,
        MaxBatchSequences = Math.Max(_o.MaxBatchSequences, samples),
    };
}
