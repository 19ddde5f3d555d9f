using Sharpen.Algorithms;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Recipes;
using Sharpen.Rewards;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Training.Rl;

namespace Sharpen.Tests.Training;

/// <summary><c>rl.group_by</c>, <c>rl.scale_rewards</c> and <c>rl.max_new_tokens_schedule</c> through the RL trainer and recipes.</summary>
public class RlGroupAndScheduleTests
{
    static RlPrompt P(string prompt, string gid) => new(prompt, new Dictionary<string, string> { ["gid"] = gid });

    // Reward 1 for every completion of prompt "a", 0 for prompt "b": each prompt's own group has equal rewards.
    static readonly IReadOnlyList<WeightedReward> ByPrompt = [new(new DelegateReward("from_a", c => c.Prompt == "a" ? 1.0 : 0.0))];

    [Fact]
    public void Prompts_sharing_a_group_id_form_one_group()
    {
        // One iteration, prompts a and b (same gid), 2 samples each, one token each: rewards 1, 1, 0, 0.
        // Per-prompt groups: both all-equal → every advantage 0, zero-advantage fraction 1.
        // One id group of 4: mean 0.5, unbiased std √(4·0.25/3) = 0.5773503 → Â = ±0.5/0.5773513 = ±0.8660239 on every token.
        var prompts = new[] { P("a", "q"), P("b", "q") };
        var o = RlOptions.Grpo() with { Iterations = 1, PromptsPerIteration = 2, SamplesPerPrompt = 2, MaxNewTokens = 1, LearningRate = 1e-3, Beta = 0, EvalEvery = 0 };

        var grouped = Run(o with { GroupBy = "gid" }, prompts);
        Assert.Equal(0.0, grouped["zero_advantage_group_fraction"]!.GetValue<double>());
        Assert.Equal(0.0, grouped["advantage_mean"]!.GetValue<double>(), 5);
        Assert.Equal(0.8660239, grouped["advantage_std"]!.GetValue<double>(), 5);

        var plain = Run(o, prompts);
        Assert.Equal(1.0, plain["zero_advantage_group_fraction"]!.GetValue<double>());
        Assert.Equal(0.0, plain["advantage_std"]!.GetValue<double>(), 6);
    }

    [Fact]
    public void Batch_scaling_in_the_trainer_divides_by_the_batch_std()
    {
        // One id group holding rewards 1, 1, 0, 0 (centred ±0.5). The batch is that group, so the batch std is the group's,
        // √(4·0.25/3) = 0.5773503 → ±0.8660239 with scale_rewards: batch; none leaves ±0.5.
        var prompts = new[] { P("a", "q"), P("b", "q") };
        var o = RlOptions.Grpo() with { Iterations = 1, PromptsPerIteration = 2, SamplesPerPrompt = 2, MaxNewTokens = 1, LearningRate = 1e-3, Beta = 0, EvalEvery = 0, GroupBy = "gid" };
        Assert.Equal(0.8660239, Run(o with { ScaleRewards = RewardScaling.Batch }, prompts)["advantage_std"]!.GetValue<double>(), 5);
        Assert.Equal(0.5, Run(o with { ScaleRewards = RewardScaling.None }, prompts)["advantage_std"]!.GetValue<double>(), 5);
    }

    [Fact]
    public void A_prompt_without_the_group_column_is_named()
    {
        using var dir = new TempDir();
        using var model = Bandit.Model();
        var o = RlOptions.Grpo() with { Iterations = 1, PromptsPerIteration = 2, SamplesPerPrompt = 2, MaxNewTokens = 1, GroupBy = "gid", EvalEvery = 0 };
        var e = Assert.Throws<ArgumentException>(() => new RlTrainer(model, Bandit.Tok, o, ByPrompt)
            .Run([P("a", "q"), new RlPrompt("b", new Dictionary<string, string>())], dir.Path));
        Assert.Contains("prompt row 2 has no field 'gid'", e.Message);
    }

    static System.Text.Json.Nodes.JsonObject Run(RlOptions o, IReadOnlyList<RlPrompt> prompts)
    {
        using var dir = new TempDir();
        using var model = Bandit.Model();
        new RlTrainer(model, Bandit.Tok, o, ByPrompt).Run(prompts, dir.Path);
        return new RunLog(dir.Path, append: true).ReadMetrics().Single();
    }

    /// <summary>The real engine, recording each call's limit on new tokens.</summary>
    sealed class RecordingEngine(CausalLM model, ITokenizer tok) : IRolloutEngine
    {
        readonly RolloutEngine _inner = new(model, tok);
        public List<int> Limits { get; } = [];
        public ITokenizer Tokenizer => _inner.Tokenizer;
        public IReadOnlySet<int> EosIds => _inner.EosIds;
        public IReadOnlyList<Rollout> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingOptions options)
        {
            Limits.Add(options.MaxNewTokens);
            return _inner.Generate(prompts, options);
        }
        public void SyncWeights(CausalLM policy) => _inner.SyncWeights(policy);
    }

    [Fact]
    public void The_trainer_samples_with_the_scheduled_limit_and_resume_keeps_the_schedule()
    {
        // Iterations 1–2: 1 token, 3: 2 tokens, 4 on: rl.max_new_tokens = 5. A reward for long completions pushes lengths up,
        // so only the limit keeps them short.
        IReadOnlyList<WeightedReward> longer = [new(new DelegateReward("len", c => c.Completion.Length))];
        var o = RlOptions.Grpo() with
        {
            Iterations = 5, PromptsPerIteration = 2, SamplesPerPrompt = 2, MaxNewTokens = 5, LearningRate = 1e-3, Beta = 0, EvalEvery = 0,
            CheckpointEvery = 1, KeepCheckpoints = 1,
            MaxNewTokensSchedule = [new() { UntilIteration = 2, MaxNewTokens = 1 }, new() { UntilIteration = 3, MaxNewTokens = 2 }],
        };
        Assert.Equal([1, 1, 2, 5, 5], Enumerable.Range(0, 5).Select(o.MaxNewTokensAt));
        var prompts = new[] { new RlPrompt("a", new Dictionary<string, string>()) };
        using var dir = new TempDir();
        using (var model = Bandit.Model())
        {
            var engine = new RecordingEngine(model, Bandit.Tok);
            new RlTrainer(model, Bandit.Tok, o with { Iterations = 2 }, longer) { Engine = engine }.Run(prompts, dir.Path);
            Assert.Equal([1, 1], engine.Limits);
        }
        using (var model = Bandit.Model())
        {
            var engine = new RecordingEngine(model, Bandit.Tok);
            new RlTrainer(model, Bandit.Tok, o, longer) { Engine = engine }.Run(prompts, dir.Path, resume: true);
            // The last iteration writes final/ rather than a checkpoint, so the run resumes after iteration 1 and
            // samples iterations 2–5 with the schedule's limits 1, 2, 5, 5.
            Assert.Equal([1, 2, 5, 5], engine.Limits);
        }
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal([1, 2, 3, 4, 5], rows.Select(r => r["step"]!.GetValue<int>()));
        Assert.Equal([1, 1, 2, 5, 5], rows.Select(r => r["max_new_tokens"]!.GetValue<int>()));
        foreach (var r in rows)
            Assert.True(r["completion_length"]!.GetValue<double>() <= r["max_new_tokens"]!.GetValue<int>(), r.ToJsonString());
    }

    [Fact]
    public void Recipe_keys_bind_and_bad_values_are_named()
    {
        const string head = "kind: rl\nmodel: { path: m }\ntask: { name: countdown }\n";
        var o = Recipe.Parse(head + "rl: { algorithm: grpo, scale_rewards: batch, group_by: problem_id, max_new_tokens: 96,\n" +
                             "  max_new_tokens_schedule: [{until_iteration: 10, max_new_tokens: 32}, {until_iteration: 20, max_new_tokens: 64}] }\n").RlOptions();
        Assert.Equal(RewardScaling.Batch, o.ScaleRewards);
        Assert.Equal("problem_id", o.GroupBy);
        Assert.Equal([32, 32, 64, 64, 96], new[] { 0, 9, 10, 19, 20 }.Select(o.MaxNewTokensAt));
        Assert.Equal(RewardScaling.None, Recipe.Parse(head + "rl: { algorithm: rloo }\n").RlOptions().EffectiveScaleRewards);
        Assert.Equal(RewardScaling.None, Recipe.Parse(head + "rl: { algorithm: grpo, scale_by_std: false }\n").RlOptions().EffectiveScaleRewards);

        string Fails(string rl) => Assert.Throws<RecipeException>(() => Recipe.Parse(head + rl, "r.yaml")).Message;
        Assert.Contains("rl.scale_rewards", Fails("rl: { scale_rewards: sometimes }\n"));
        Assert.Contains("must be none for dr_grpo", Fails("rl: { algorithm: dr_grpo, scale_rewards: batch }\n"));
        Assert.Contains("group-relative", Fails("rl: { algorithm: ppo, group_by: gid }\n"));
        Assert.Contains("dynamic_sampling", Fails("rl: { group_by: gid, dynamic_sampling: true }\n"));
        Assert.Contains("rl.max_new_tokens_schedule[1].until_iteration must be greater than 10",
            Fails("rl: { max_new_tokens_schedule: [{until_iteration: 10, max_new_tokens: 8}, {until_iteration: 10, max_new_tokens: 9}] }\n"));
        Assert.Contains("rl.max_new_tokens_schedule[0].max_new_tokens must be positive",
            Fails("rl: { max_new_tokens_schedule: [{until_iteration: 3, max_new_tokens: 0}] }\n"));
    }
}
