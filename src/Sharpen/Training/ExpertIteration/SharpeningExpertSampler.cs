using Sharpen.Rewards;

namespace Sharpen.Training.ExpertIteration;

/// <summary>
/// SFT-Sharpening (Huang et al. 2024, arXiv:2412.01951), the sample stage of <c>expert_iteration.method: sharpening</c>:
/// <see cref="ExpertIterationOptions.SamplesPerProblem"/> samples per problem from the policy (as <see cref="PlainExpertSampler"/>),
/// then best-of-N by the sampling policy's own log π(y | x) (<see cref="SelfLikelihoodReward"/>, per token with
/// <paramref name="normalize"/>): the most likely sample of each problem is the one kept (<see cref="ExpertCandidate.Correct"/>
/// means "selected" here; the verifier is not consulted for the choice). Each candidate's fields carry
/// <c>self_likelihood</c> and the verifier's verdict as <c>verified</c>, so <c>data.jsonl</c> shows how often the pick is right.
/// </summary>
public sealed class SharpeningExpertSampler(bool normalize) : IExpertSampler
{
    /// <summary>Stop strings for generation.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <inheritdoc/>
    public IReadOnlyList<IReadOnlyList<ExpertCandidate>> Sample(ExpertSampleRequest request)
    {
        var sampled = new PlainExpertSampler { StopStrings = StopStrings }.Sample(request);
        var scorer = new SelfLikelihoodReward(request.Policy, request.Tokenizer, normalize);
        var result = new List<IReadOnlyList<ExpertCandidate>>(sampled.Count);
        for (int i = 0; i < sampled.Count; i++)
        {
            var prompt = request.Problems[i].Prompt;
            var scores = scorer.Score(sampled[i].Select(c => (prompt, c.Completion)).ToList());
            int best = scores.Length == 0 ? -1 : Array.IndexOf(scores, scores.Max());   // first of equal maxima
            result.Add(sampled[i].Select((c, j) => c with
            {
                Correct = j == best,
                Fields = new Dictionary<string, string>(c.Fields)
                {
                    ["self_likelihood"] = scores[j].ToString("R", System.Globalization.CultureInfo.InvariantCulture),
                    ["verified"] = c.Correct ? "true" : "false",
                },
            }).ToList());
        }
        return result;
    }
}
