using System.Text.Json.Nodes;
using Sharpen.Generation;
using Sharpen.Tasks;
using Sharpen.Rewards;
using Sharpen.Search;
using Sharpen.Data;

namespace Sharpen.Evaluation;

/// <summary>What an evaluation measured. Field names match summary.json.</summary>
/// <param name="N">Problems evaluated.</param>
/// <param name="Samples">Samples per problem (k) for pass@k and maj@k.</param>
/// <param name="Accuracy">Greedy accuracy (one temperature-0 completion per problem).</param>
/// <param name="PassAtK">Unbiased pass@k over the k samples (equals accuracy when k = 1 and sampling is greedy).</param>
/// <param name="MajAtK">Accuracy of the majority-voted final answer over the k samples.</param>
/// <param name="MeanCompletionTokens">Mean greedy completion length in tokens.</param>
/// <param name="Verdicts">Count of each greedy verdict reason.</param>
public sealed record EvalResult(int N, int Samples, double Accuracy, double PassAtK, double MajAtK,
    double MeanCompletionTokens, IReadOnlyDictionary<string, int> Verdicts)
{
    /// <summary>Per problem: the greedy completion and its verdict, in problem order.</summary>
    public IReadOnlyList<(Rollout Completion, Verdict Verdict)> Greedy { get; init; } = [];

    /// <summary>pass@1 of the k samples (their mean correctness, averaged over problems); null without samples (k = 1).</summary>
    public double? PassAt1 { get; init; }

    /// <summary>The summary.json fields.</summary>
    public JsonObject ToJson()
    {
        var v = new JsonObject();
        foreach (var (k, c) in Verdicts.OrderBy(kv => kv.Key, StringComparer.Ordinal)) v[k] = c;
        var o = new JsonObject
        {
            ["accuracy"] = Accuracy, ["pass_at_k"] = PassAtK, ["maj_at_k"] = MajAtK, ["n"] = N, ["samples"] = Samples,
            ["mean_completion_tokens"] = MeanCompletionTokens, ["verdicts"] = v,
        };
        if (PassAt1 is { } p1) o["pass_at_1"] = p1;
        return o;
    }
}

/// <summary>Greedy accuracy, pass@k and maj@k of a policy on a verifiable task.</summary>
public static class Evaluator
{
    /// <summary>
    /// Adds a run's held-out evaluation to its summary.json: the numbers after training at the top level (as
    /// <see cref="EvalResult.ToJson"/>), <c>accuracy_before</c> beside them, the policy's parameter count and any
    /// <paramref name="extra"/> fields. Returns a one-line description for the log, or null without an evaluation.
    /// </summary>
    public static string? RecordBeforeAfter(string outDir, EvalResult? before, EvalResult? after, long parameters,
        IReadOnlyDictionary<string, JsonNode?>? extra = null)
    {
        var runLog = new RunLog(outDir, append: true);
        var summary = runLog.ReadSummary();
        string? line = null;
        if (after is not null)
        {
            foreach (var (k, v) in after.ToJson()) summary[k] = v?.DeepClone();
            if (before is not null) summary["accuracy_before"] = before.Accuracy;
            line = $"held-out greedy accuracy {after.Accuracy:P1}" + (before is not null ? $" (before {before.Accuracy:P1})" : "") +
                   $", pass@{after.Samples} {after.PassAtK:P1}, maj@{after.Samples} {after.MajAtK:P1}";
        }
        foreach (var (k, v) in extra ?? new Dictionary<string, JsonNode?>()) summary[k] = v?.DeepClone();
        summary["parameters"] = parameters;
        runLog.Summary(summary);
        return line;
    }

    /// <summary>The mean total reward (weighted sum, as the trainers combine it) of one greedy completion per prompt: the
    /// held-out measure when there is no task to verify answers.</summary>
    public static double GreedyReward(IRolloutEngine engine, IReadOnlyList<RlPrompt> prompts, IReadOnlyList<Rewards.WeightedReward> rewards,
        int maxNewTokens, CancellationToken cancel = default)
    {
        var rollouts = engine.Generate(prompts.Select(p => p.Prompt).ToList(), new SamplingOptions { Temperature = 0, MaxNewTokens = maxNewTokens });
        return Rewards.RewardCombiner.ScoreAsync(rewards, RlPrompt.Contexts(prompts, rollouts), cancel).AsTask().GetAwaiter().GetResult().Total.Average();
    }

    /// <summary>
    /// Unbiased pass@k from n samples of which c are correct: 1 − C(n−c, k) / C(n, k)
    /// (Chen et al. 2021, "Evaluating Large Language Models Trained on Code"), as a stable product.
    /// </summary>
    public static double PassAtK(int n, int c, int k)
    {
        if (k < 1 || k > n || c < 0 || c > n) throw new ArgumentException($"pass@k needs 1 ≤ k ≤ n and 0 ≤ c ≤ n (n={n}, c={c}, k={k})");
        if (n - c < k) return 1.0;
        double fail = 1.0;                                    // Π_{i=n−c+1}^{n} (1 − k/i)
        for (int i = n - c + 1; i <= n; i++) fail *= 1.0 - (double)k / i;
        return 1.0 - fail;
    }


    /// <summary>
    /// Evaluates: one greedy completion per problem for accuracy, and when <paramref name="samples"/> &gt; 1,
    /// that many sampled completions at <paramref name="temperature"/> for pass@k and maj@k.
    /// </summary>
    public static EvalResult Run(IRolloutEngine engine, IVerifiableTask task, IReadOnlyList<Problem> problems,
        int samples = 1, double temperature = 1.0, int maxNewTokens = 64, long seed = 0, IReadOnlyList<string>? stopStrings = null)
    {
        if (problems.Count == 0) throw new ArgumentException("no problems to evaluate");
        if (samples < 1) throw new ArgumentException($"samples must be ≥ 1, got {samples}");
        var prompts = problems.Select(p => p.Prompt).ToList();
        var greedy = engine.Generate(prompts, new SamplingOptions { Temperature = 0, MaxNewTokens = maxNewTokens, StopStrings = stopStrings ?? [] });
        var verdicts = new Dictionary<string, int>(StringComparer.Ordinal);
        var details = new List<(Rollout, Verdict)>(problems.Count);
        int correct = 0;
        for (int i = 0; i < problems.Count; i++)
        {
            var v = task.Verify(problems[i], greedy[i].CompletionText);
            details.Add((greedy[i], v));
            verdicts[v.Reason] = verdicts.GetValueOrDefault(v.Reason) + 1;
            if (v.Correct) correct++;
        }
        double accuracy = (double)correct / problems.Count;
        double meanLen = greedy.Average(r => r.CompletionIds.Length);

        double passAtK = accuracy, majAtK = accuracy;
        double? passAt1 = null;
        if (samples > 1)
        {
            var sampled = engine.Generate(prompts, new SamplingOptions
            {
                Temperature = temperature, MaxNewTokens = maxNewTokens, SamplesPerPrompt = samples, Seed = seed, StopStrings = stopStrings ?? [],
            });
            double passSum = 0, majSum = 0, oneSum = 0;
            for (int i = 0; i < problems.Count; i++)
            {
                var group = sampled.Skip(i * samples).Take(samples).ToList();
                var vs = group.Select(r => task.Verify(problems[i], r.CompletionText)).ToList();
                passSum += PassAtK(samples, vs.Count(v => v.Correct), samples);
                oneSum += PassAtK(samples, vs.Count(v => v.Correct), 1);
                var answers = group.Select(r => task.ExtractFinalAnswer(r.CompletionText)).ToList();
                var voted = Voting.MajorityVote(answers);
                if (voted is not null && vs[answers.IndexOf(voted)].Correct) majSum += 1;
            }
            passAtK = passSum / problems.Count;
            majAtK = majSum / problems.Count;
            passAt1 = oneSum / problems.Count;
        }
        return new EvalResult(problems.Count, samples, accuracy, passAtK, majAtK, meanLen, verdicts) { Greedy = details, PassAt1 = passAt1 };
    }
}
