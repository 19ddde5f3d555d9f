using Sharpen.Data;
using Sharpen.Rewards;
using Sharpen.Training.Rl;

namespace Sharpen.Tests.Training;

/// <summary>DR-PO: rollouts that start from a prefix of a dataset response, mixed with rollouts from the prompt.</summary>
public class DatasetResetTests
{
    static RlPrompt WithResponse(string prompt, string response) =>
        new(prompt, new Dictionary<string, string> { [DatasetReset.ResponseField] = response });

    [Fact]
    public void A_reset_prompt_is_the_prompt_plus_a_uniform_proper_token_prefix_of_the_response()
    {
        var counts = new Dictionary<string, int>();
        var rng = new Random(3);
        for (int i = 0; i < 600; i++)
        {
            var r = DatasetReset.Reset(WithResponse("a", "bcd"), Bandit.Tok, rng)!;
            var prefix = r.Fields[DatasetReset.PrefixField];
            Assert.Equal("a" + prefix, r.Prompt);
            Assert.Equal("a", r.Fields[DatasetReset.PromptField]);
            counts[prefix] = counts.GetValueOrDefault(prefix) + 1;
        }
        // "bcd" has 3 tokens: cuts 1 and 2 only (a token given, a token left), each about half the time.
        Assert.Equal(["b", "bc"], counts.Keys.Order());
        Assert.InRange(counts["b"], 240, 360);
        Assert.Null(DatasetReset.Reset(WithResponse("a", "b"), Bandit.Tok, rng));
        Assert.Null(DatasetReset.Reset(new RlPrompt("a", new Dictionary<string, string>()), Bandit.Tok, rng));
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(0.5)]
    public void The_trainer_continues_reset_prefixes_and_rewards_the_whole_answer_under_the_original_prompt(double fraction)
    {
        using var dir = new TempDir();
        using var model = Bandit.Model();
        var seen = new List<RewardContext>();
        var reward = new WeightedReward(new DelegateReward("seen", c => { lock (seen) seen.Add(c); return c.Completion.EndsWith('c') ? 1.0 : 0.0; }));
        var o = RlOptions.Grpo() with
        {
            Iterations = 3, PromptsPerIteration = 8, SamplesPerPrompt = 2, MaxNewTokens = 1, LearningRate = 1e-3, Beta = 0, EvalEvery = 0,
            DatasetReset = fraction,
        };
        var prompts = Enumerable.Repeat(WithResponse("a", "bcd"), 8).ToList();
        new RlTrainer(model, Bandit.Tok, o, [reward]).Run(prompts, dir.Path);

        Assert.Equal(3 * 8 * 2, seen.Count);
        Assert.All(seen, c => Assert.Equal("a", c.Prompt));                      // the rewards see the original prompt
        var reset = seen.Where(c => c.Fields.ContainsKey(DatasetReset.PrefixField)).ToList();
        foreach (var c in reset)
        {
            var prefix = c.Fields[DatasetReset.PrefixField];
            Assert.StartsWith(prefix, c.Completion);                             // prefix + the policy's continuation
            Assert.InRange(c.Completion.Length - prefix.Length, 0, 1);           // one new token at most (or EOS)
            Assert.True(c.CompletionTokens <= 1, "only the generated tokens count as the rollout's");
        }
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        var resetPrompts = rows.Sum(r => r["dataset_reset_prompts"]!.GetValue<int>());
        Assert.Equal(reset.Count, resetPrompts * 2);                             // G = 2 samples per reset prompt
        if (fraction == 1.0) Assert.Equal(24, resetPrompts);
        else Assert.InRange(resetPrompts, 4, 20);                                // some of the 24 prompts, not all, not none
    }

    [Fact]
    public void A_fraction_outside_zero_to_one_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => (RlOptions.Grpo() with { DatasetReset = 1.5 }).Validate());
        Assert.Contains("rl.dataset_reset", e.Message);
    }
}
