using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Search;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Search;

/// <summary><see cref="LmSearchPolicy"/> on a real tiny CausalLM with a character tokenizer (one token per character).</summary>
public class LmSearchPolicyTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("ab,.");

    // A random, fairly flat policy (large init) so that "," appears often and steps vary.
    static CausalLM Model() => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, InitializerRange = 0.5 }, 7);

    [Fact]
    public void One_step_continuations_stop_at_the_delimiter_and_count_every_generated_token()
    {
        using var model = Model();
        var engine = new RolloutEngine(model, Tok);
        var policy = new LmSearchPolicy(engine, StepSplitter.OnDelimiters(","), temperature: 1.0, maxStepTokens: 6, maxTotalTokens: 12);
        var meter = new SearchMeter(new SearchBudget(1000));
        var outs = policy.Sample([new ContinuationRequest("ab", "", 8, OneStep: true, 6), new ContinuationRequest("ab", "a,", 4, OneStep: true, 6)], 5, meter);
        Assert.Equal([8, 4], outs.Select(o => o.Count));

        // The same rows generated directly: 12 prompts (8 × "ab", 4 × "ab" + "a,"), stop string ",", seed 5·1000003 (first group).
        var rows = engine.Generate([.. Enumerable.Repeat("ab", 8), .. Enumerable.Repeat("aba,", 4)],
            new SamplingOptions { Temperature = 1.0, MaxNewTokens = 6, StopStrings = [","], Seed = 5 * 1_000_003 });
        var flat = outs.SelectMany(o => o).ToList();
        for (int i = 0; i < flat.Count; i++)
        {
            var c = flat[i];
            Assert.Equal(rows[i].CompletionText, c.Text);
            Assert.Equal(rows[i].CompletionIds.Length, c.Tokens);
            Assert.Equal(rows[i].LogProbs.Sum(x => (double)x), c.LogProb, 1e-5);
            // At most one delimiter, and only at the end; without one the step ran to its limit or to EOS.
            int comma = c.Text.IndexOf(',');
            Assert.True(comma < 0 || comma == c.Text.Length - 1, c.Text);
            if (comma < 0) Assert.True(c.Tokens == 6 || rows[i].Stop == StopReason.Eos, c.Text);
            Assert.Equal(rows[i].Stop == StopReason.Eos, c.Finished);
        }
        Assert.Contains(flat, c => c.Text.EndsWith(','));
        Assert.Equal(rows.Sum(r => (long)r.CompletionIds.Length), meter.GeneratedTokens);
        Assert.Equal(rows.Max(r => r.CompletionIds.Length), meter.ForwardPasses);   // one chunk: prefill + decode steps
    }

    [Fact]
    public void A_regex_step_is_cut_after_generation_and_the_cut_off_tokens_still_count()
    {
        using var model = Model();
        var engine = new RolloutEngine(model, Tok);
        var policy = new LmSearchPolicy(engine, StepSplitter.OnRegex("[,.]"), maxStepTokens: 8, maxTotalTokens: 16);
        var meter = new SearchMeter(new SearchBudget(1000));
        var outs = policy.Sample([new ContinuationRequest("ab", "", 10, OneStep: true, 8)], 9, meter)[0];
        var rows = engine.Generate([.. Enumerable.Repeat("ab", 10)], new SamplingOptions { Temperature = 1.0, MaxNewTokens = 8, Seed = 9 * 1_000_003 });
        bool sawCut = false;
        for (int i = 0; i < outs.Count; i++)
        {
            var full = rows[i].CompletionText;
            // The first step: up to the first delimiter, a run of delimiters counting as one boundary (StepSplitter's rule).
            int end = full.IndexOfAny([',', '.']);
            while (end >= 0 && end + 1 < full.Length && full[end + 1] is ',' or '.') end++;
            var expected = end < 0 ? full : full[..(end + 1)];
            Assert.Equal(expected, outs[i].Text);
            Assert.Equal(rows[i].CompletionIds.Length, outs[i].Tokens);
            if (expected.Length < full.Length)
            {
                sawCut = true;
                Assert.Equal(expected.Length, outs[i].KeptTokens);
                Assert.Equal(rows[i].LogProbs.Take(expected.Length).Sum(x => (double)x), outs[i].LogProb, 1e-5);
                Assert.False(outs[i].Finished);
            }
        }
        Assert.True(sawCut);
        Assert.Equal(rows.Sum(r => (long)r.CompletionIds.Length), meter.GeneratedTokens);
    }

    [Theory]
    [InlineData("bon", 30)]
    [InlineData("beam", 40)]
    [InlineData("mcts", 40)]
    public void Strategies_on_the_model_respect_the_budget(string strategy, int budget)
    {
        using var model = Model();
        var policy = new LmSearchPolicy(new RolloutEngine(model, Tok), StepSplitter.OnDelimiters(","), maxStepTokens: 4, maxTotalTokens: 10);
        // Outcome: the number of "b"s; steps scored by it applied to prefixes.
        var outcome = new RewardOutcomeScorer(new DelegateReward("bs", c => c.Completion.Count(ch => ch == 'b')));
        var problem = new SearchProblem("ab", new Dictionary<string, string>(), _ => null);
        var ctx = new SearchContext(policy, new SearchOptions { BudgetTokens = budget, BeamWidth = 2, Expansions = 2 }, outcome, p => new OutcomeStepScorer(outcome, p));
        var r = SearchStrategies.Create(strategy).Search(problem, ctx, 1);
        Assert.InRange(r.Cost.GeneratedTokens, 1, budget);
        Assert.True(r.Cost.ForwardPasses > 0);
        Assert.True(r.Cost.ScorerCalls > 0);
        Assert.NotEmpty(r.Trace);
    }
}
