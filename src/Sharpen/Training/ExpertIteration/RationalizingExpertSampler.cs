using Sharpen.Generation;
using Sharpen.Tasks;

namespace Sharpen.Training.ExpertIteration;

/// <summary>
/// STaR's rationalization (Zelikman et al. 2022, "STaR: Bootstrapping Reasoning With Reasoning", arXiv:2203.14465 §3.2):
/// after the <paramref name="inner"/> sampler, every problem it did not solve is asked again with its answer given as a hint
/// (<see cref="HintedPrompt"/>); a completion that the verifier accepts against the ORIGINAL problem is kept as a candidate
/// marked <c>rationalized</c>, and since expert iteration pairs kept completions with the problem's own prompt, the model is
/// fine-tuned on the rationale as if it had found it without the hint. Hinted samples use the run's temperature, top-k and
/// token limit, <see cref="ExpertIterationOptions.SamplesPerProblem"/> per unsolved problem.
/// </summary>
public sealed class RationalizingExpertSampler(IExpertSampler inner, string hintTemplate) : IExpertSampler
{
    /// <summary>The field set on a kept candidate that came from a hinted prompt.</summary>
    public const string RationalizedField = "rationalized";

    /// <summary>Problems asked again with the hint in the last <see cref="Sample"/>, and how many of them it then solved.</summary>
    public (int Hinted, int Rationalized) LastCounts { get; private set; }

    /// <summary>
    /// The hinted prompt: <paramref name="template"/> with <c>{prompt}</c> and <c>{answer}</c> replaced by the problem's prompt
    /// and answer. The template must hold both (throws otherwise).
    /// </summary>
    public static string HintedPrompt(Problem problem, string template)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(template);
        if (!template.Contains("{prompt}", StringComparison.Ordinal) || !template.Contains("{answer}", StringComparison.Ordinal))
            throw new ArgumentException($"expert_iteration.rationalization_hint must contain {{prompt}} and {{answer}}, got '{template}'");
        return template.Replace("{answer}", problem.Answer, StringComparison.Ordinal).Replace("{prompt}", problem.Prompt, StringComparison.Ordinal);
    }

    /// <inheritdoc />
    public IReadOnlyList<IReadOnlyList<ExpertCandidate>> Sample(ExpertSampleRequest request)
    {
        var first = inner.Sample(request);
        var unsolved = Enumerable.Range(0, first.Count).Where(i => !first[i].Any(c => c.Correct)).ToList();
        if (unsolved.Count == 0) { LastCounts = (0, 0); return first; }
        var o = request.Options;
        var hinted = unsolved.Select(i => HintedPrompt(request.Problems[i], hintTemplate)).ToList();
        var rollouts = new RolloutEngine(request.Policy, request.Tokenizer).Generate(hinted, new SamplingOptions
        {
            Temperature = o.Temperature, TopK = o.TopK, MaxNewTokens = o.MaxNewTokens, SamplesPerPrompt = o.SamplesPerProblem,
            Seed = request.Seed + 7_919, MaxBatchSequences = o.MaxBatchSequences,
        });
        var result = first.ToList();
        int solved = 0;
        for (int u = 0; u < unsolved.Count; u++)
        {
            int i = unsolved[u];
            var problem = request.Problems[i];
            var extra = Enumerable.Range(u * o.SamplesPerProblem, o.SamplesPerProblem).Select(j => rollouts[j])
                .Select(r => new ExpertCandidate(r.CompletionText, request.Task.Verify(problem, r.CompletionText).Correct, r.CompletionIds.Length)
                {
                    Fields = new Dictionary<string, string> { [RationalizedField] = "true" },
                }).ToList();
            if (extra.Any(c => c.Correct)) solved++;
            result[i] = [.. first[i], .. extra];
        }
        LastCounts = (unsolved.Count, solved);
        return result;
    }
}
