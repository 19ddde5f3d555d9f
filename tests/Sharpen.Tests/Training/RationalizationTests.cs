using Sharpen.Tasks;
using Sharpen.Tests.Tasks;
using Sharpen.Training.ExpertIteration;

namespace Sharpen.Tests.Training;

/// <summary>STaR's rationalization: unsolved problems are retried with the answer as a hint; successes are trained on without it.</summary>
public class RationalizationTests
{
    [Fact]
    public void The_hint_template_puts_the_answer_beside_the_prompt()
    {
        var p = new Problem("id", "3 5 -> 8:", "3+5", new Dictionary<string, string>());
        Assert.Equal("answer 3+5. 3 5 -> 8:", RationalizingExpertSampler.HintedPrompt(p, "answer {answer}. {prompt}"));
        Assert.Throws<ArgumentException>(() => RationalizingExpertSampler.HintedPrompt(p, "{prompt} only"));
        Assert.Contains("rationalization_hint", Assert.Throws<ArgumentException>(() =>
            (ExpertIterationOptions.For("star") with { Rationalize = true, RationalizationHint = "{answer}" }).Validate()).Message);
    }

    [Fact]
    public void Unsolved_problems_get_hinted_candidates_verified_against_the_original_problem_and_kept_without_the_hint()
    {
        using var model = Bandit.Model(seed: 7);
        var task = new LetterTask();
        var problems = task.Generate(4, 0);
        var o = ExpertIterationOptions.For("star") with { SamplesPerProblem = 3, Temperature = 1.0, TopK = 0, MaxNewTokens = 2, Rationalize = true, RationalizationHint = "{answer}{prompt}" };
        var request = new ExpertSampleRequest(model, Bandit.Tok, task, problems, 1, 11, o);
        var plain = new PlainExpertSampler().Sample(request);
        var sampler = new RationalizingExpertSampler(new PlainExpertSampler(), o.RationalizationHint);
        var got = sampler.Sample(request);

        var unsolved = Enumerable.Range(0, 4).Where(i => !plain[i].Any(c => c.Correct)).ToList();
        Assert.NotEmpty(unsolved);                                                   // an untrained policy misses some letters
        Assert.Equal(unsolved.Count, sampler.LastCounts.Hinted);
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(plain[i].Select(c => c.Completion), got[i].Take(plain[i].Count).Select(c => c.Completion));   // same seed, same first samples
            if (!unsolved.Contains(i)) { Assert.Equal(plain[i].Count, got[i].Count); continue; }
            var extra = got[i].Skip(plain[i].Count).ToList();
            Assert.Equal(3, extra.Count);
            foreach (var c in extra)
            {
                Assert.Equal("true", c.Fields[RationalizingExpertSampler.RationalizedField]);
                Assert.Equal(c.Completion.StartsWith(problems[i].Answer, StringComparison.Ordinal), c.Correct);   // judged on the original problem
            }
        }
        Assert.Equal(unsolved.Count(i => got[i].Skip(plain[i].Count).Any(c => c.Correct)), sampler.LastCounts.Rationalized);

        // What SFT trains on: the problem's own prompt, never the hinted one.
        var kept = ExpertIterationTrainer.Keep(problems, got, maxPerProblem: 3, dedupe: true, iteration: 1);
        Assert.All(kept, e => Assert.Contains(e.Prompt, problems.Select(p => p.Prompt)));
        Assert.All(kept, e => Assert.Equal(1, e.Prompt.Length));
    }
}
