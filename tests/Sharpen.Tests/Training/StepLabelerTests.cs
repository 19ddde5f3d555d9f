using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tasks;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using static TorchSharp.torch;
using Sharpen.Training.RewardModels;

namespace Sharpen.Tests.Training;

public class StepLabelerTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("ab\n");

    /// <summary>A task whose verifier accepts any completion that starts with "a": once the first step is "a\n", every continuation is correct; once it is "b\n", none is.</summary>
    sealed class StartsWithA : IVerifiableTask
    {
        public string Name => "starts_with_a";
        public string Alphabet => "ab\n";
        public IReadOnlyList<Problem> Generate(int count, int seed) =>
            Enumerable.Range(0, count).Select(i => new Problem($"p{i}", "b", "a", new Dictionary<string, string> { ["k"] = i.ToString() })).ToList();
        public string Solve(Problem problem) => "a";
        public Verdict Verify(Problem problem, string completion) => new(completion.StartsWith('a') ? 1 : 0, completion.StartsWith('a'), completion.StartsWith('a') ? VerdictReasons.Correct : VerdictReasons.WrongValue, 0, completion);
        public string? ExtractFinalAnswer(string completion) => completion.Length > 0 ? completion[..1] : null;
    }

    static CausalLM Model(long seed = 1) => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 32 }, seed);

    [Fact]
    public void Labels_follow_the_verifier_and_generated_tokens_are_prefixes_times_rollouts_times_length()
    {
        using var model = Model();
        // A zero LM head makes every logit equal: greedy decoding then always picks id 0 (padding), never EOS, so each
        // continuation is exactly MaxNewTokens tokens and decodes to "" (padding is special).
        using (no_grad()) foreach (var (name, t) in model.Weights()) if (name == "lm_head.weight") t.zero_();
        var task = new StartsWithA();
        var p = task.Generate(2, 1);
        var o = new StepLabelOptions { Rollouts = 3, Temperature = 0, MaxNewTokens = 4 };
        var labeler = new StepLabeler(new RolloutEngine(model, Tok), task, StepSplitter.Newline, o);
        var result = labeler.LabelCompletions([(p[0], "a\nb\nb"), (p[1], "b\na\nb\n"), (p[1], "")]);

        // The empty completion has no steps and no row.
        Assert.Equal(2, result.Rows.Count);
        Assert.Equal(["a\n", "b\n", "b"], result.Rows[0].Steps);
        // Prefixes "a\n" and "a\nb\n" start with "a": 3 of 3 continuations verify; the last step is the solution's own verdict (correct).
        Assert.Equal([1.0, 1.0, 1.0], result.Rows[0].Labels);
        // "b\n…": nothing verifies; last step: the solution is wrong.
        Assert.Equal([0.0, 0.0, 0.0], result.Rows[1].Labels);
        Assert.Equal("true", result.Rows[0].Fields["correct"]);
        Assert.Equal("false", result.Rows[1].Fields["correct"]);
        Assert.Equal("p1", result.Rows[1].Fields["id"]);
        Assert.Equal("1", result.Rows[1].Fields["k"]);
        Assert.Equal("[0,0,0]", result.Rows[1].Fields["soft_labels"]);
        Assert.Equal(6, result.Steps);
        // Rollouts: (3 − 1) + (3 − 1) prefixes × 3 = 12, each 4 tokens long → 48 tokens; no solution was generated.
        Assert.Equal(12, result.Rollouts);
        Assert.Equal(48, result.RolloutTokens);
        Assert.Equal(0, result.SolutionTokens);
    }

    [Fact]
    public void Sampled_solutions_get_soft_labels_in_steps_of_one_over_n_and_hard_labels_as_any()
    {
        using var model = Model(seed: 4);
        var task = new StartsWithA();
        var problems = task.Generate(3, 1);
        var soft = new StepLabeler(new RolloutEngine(model, Tok), task, StepSplitter.Newline,
            new StepLabelOptions { SamplesPerProblem = 2, Rollouts = 4, MaxNewTokens = 6, Seed = 7 }).Label(problems);
        var hard = new StepLabeler(new RolloutEngine(model, Tok), task, StepSplitter.Newline,
            new StepLabelOptions { SamplesPerProblem = 2, Rollouts = 4, MaxNewTokens = 6, Seed = 7, Hard = true }).Label(problems);
        Assert.True(soft.SolutionTokens is > 0 and <= 3 * 2 * 6, $"solution tokens {soft.SolutionTokens}");
        Assert.Equal(soft.Rows.Sum(r => (r.Steps.Count - 1) * 4), soft.Rollouts);
        Assert.True(soft.RolloutTokens >= soft.Rollouts && soft.RolloutTokens <= 6L * soft.Rollouts);
        Assert.Equal(soft.SolutionTokens + soft.RolloutTokens, soft.GeneratedTokens);
        Assert.Equal(soft.Rows.Count, hard.Rows.Count);
        for (int i = 0; i < soft.Rows.Count; i++)
        {
            var row = soft.Rows[i];
            // The prefix's first character decides the verdict: every label equals 1 when the solution starts with "a", else 0.
            double expected = string.Concat(row.Steps).StartsWith('a') ? 1 : 0;
            Assert.All(row.Labels, l => Assert.Equal(expected, l));
            Assert.Equal(row.Labels.Select(l => l > 0 ? 1.0 : 0.0), hard.Rows[i].Labels);
        }
    }
}
