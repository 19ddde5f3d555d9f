using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tasks;
using Sharpen.Tokenizers;

namespace Sharpen.Training.ExpertIteration;

/// <summary>
/// One candidate solution that the sample stage of expert iteration produced for a problem.
/// </summary>
/// <param name="Completion">The completion text (what SFT will train on if it is kept).</param>
/// <param name="Correct">The verifier's binary verdict: only correct candidates are kept.</param>
/// <param name="Tokens">Tokens generated for it (a search may spend more than the completion's length; count what was spent).</param>
public sealed record ExpertCandidate(string Completion, bool Correct, int Tokens)
{
    /// <summary>Extra fields written with the kept example into <c>data.jsonl</c> (e.g. a search trace or step values).</summary>
    public IReadOnlyDictionary<string, string> Fields { get; init; } = new Dictionary<string, string>();
}

/// <summary>What the sample stage is asked for in one iteration.</summary>
/// <param name="Policy">The current policy (the previous iterate; the base in iteration 1).</param>
/// <param name="Tokenizer">Its tokenizer.</param>
/// <param name="Task">The task whose verifier decides correctness.</param>
/// <param name="Problems">The training problems.</param>
/// <param name="Iteration">1-based iteration number.</param>
/// <param name="Seed">Sampling seed of this iteration (derived from the options' seed and the iteration).</param>
/// <param name="Options">The run's options (samples per problem, temperature, token limit, ...).</param>
public sealed record ExpertSampleRequest(CausalLM Policy, ITokenizer Tokenizer, IVerifiableTask Task, IReadOnlyList<Problem> Problems,
    int Iteration, long Seed, ExpertIterationOptions Options);

/// <summary>
/// The sample stage of expert iteration: problems in, candidates with verdicts out (one list per problem, in
/// problem order). The default is <see cref="PlainExpertSampler"/>; a tree search (ReST-MCTS*) plugs in here.
/// </summary>
public interface IExpertSampler
{
    /// <summary>Candidates for every problem of <paramref name="request"/>: result[i] belongs to request.Problems[i].</summary>
    IReadOnlyList<IReadOnlyList<ExpertCandidate>> Sample(ExpertSampleRequest request);
}

/// <summary>
/// Plain sampling: <see cref="ExpertIterationOptions.SamplesPerProblem"/> completions per problem from the policy at
/// the options' temperature and top-k, batched through <see cref="RolloutEngine"/>, each verified by the task.
/// </summary>
public sealed class PlainExpertSampler : IExpertSampler
{
    /// <summary>Stop strings for generation.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <inheritdoc/>
    public IReadOnlyList<IReadOnlyList<ExpertCandidate>> Sample(ExpertSampleRequest request)
    {
        var o = request.Options;
        var rollouts = new RolloutEngine(request.Policy, request.Tokenizer).Generate(request.Problems.Select(p => p.Prompt).ToList(),
            new SamplingOptions
            {
                Temperature = o.Temperature, TopK = o.TopK, MaxNewTokens = o.MaxNewTokens, SamplesPerPrompt = o.SamplesPerProblem,
                Seed = request.Seed, StopStrings = StopStrings, MaxBatchSequences = o.MaxBatchSequences,
            });
        var result = new List<IReadOnlyList<ExpertCandidate>>(request.Problems.Count);
        for (int i = 0; i < request.Problems.Count; i++)
        {
            var problem = request.Problems[i];
            result.Add(Enumerable.Range(i * o.SamplesPerProblem, o.SamplesPerProblem).Select(j => rollouts[j])
                .Select(r => new ExpertCandidate(r.CompletionText, request.Task.Verify(problem, r.CompletionText).Correct, r.CompletionIds.Length))
                .ToList());
        }
        return result;
    }
}
