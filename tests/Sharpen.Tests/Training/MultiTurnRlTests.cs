using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Data;
using Sharpen.Environments;
using Sharpen.Recipes;
using Sharpen.Training.Rl;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>
/// Multi-turn RL in the trainer: trajectories as rows (masks over the policy's tokens only, turn rewards at turn ends),
/// the estimators over them (trajectory return for GRPO, GAE across turns for PPO), one loss value, worked by hand;
/// and GRPO/PPO runs on guess-number from a recipe.
/// </summary>
public class MultiTurnRlTests
{
    // Two hand-made trajectories (ids are arbitrary token ids; log-probs chosen by hand).
    //   A: context [1, 2] | turn 1 [3, 4] (lp −0.5, −0.25), reward 0 | env [5, 6] | turn 2 [7] (lp −1), reward 1    → return 1
    //   B: context [1, 2, 9] | turn 1 [8] (lp −2), reward 0                                                        → return 0
    static Trajectory A() => new()
    {
        Environment = "hand", Seed = 0, End = TrajectoryEnd.Done,
        Messages = [new ChatMessage("user", "q"), new ChatMessage("assistant", "x"), new ChatMessage("user", "o"), new ChatMessage("assistant", "y")],
        Turns =
        [
            new TrajectoryTurn(1, 0, new Dictionary<string, string>()) { ContextIds = [1, 2], TokenIds = [3, 4], LogProbs = [-0.5f, -0.25f] },
            new TrajectoryTurn(3, 1, new Dictionary<string, string> { ["outcome"] = "won" }) { ContextIds = [5, 6], TokenIds = [7], LogProbs = [-1f] },
        ],
    };

    static Trajectory B() => new()
    {
        Environment = "hand", Seed = 0, End = TrajectoryEnd.Done,
        Messages = [new ChatMessage("user", "q"), new ChatMessage("assistant", "z")],
        Turns = [new TrajectoryTurn(1, 0, new Dictionary<string, string> { ["outcome"] = "lost" }) { ContextIds = [1, 2, 9], TokenIds = [8], LogProbs = [-2f] }],
    };

    static float[] Row(Tensor t, int i) => t[i].data<float>().ToArray();

    [Fact]
    public void Trajectories_become_rows_whose_mask_covers_the_policy_tokens_only()
    {
        using var scope = NewDisposeScope();
        var b = MultiTurnBatch.Build([A(), B()], padId: 0);
        // Prompts are the first contexts, left-padded to P = 3; completions right-padded to A = 5 (A's [3,4,5,6,7]).
        Assert.Equal(3, b.Seq.PromptLength);
        Assert.Equal(new long[] { 0, 1, 2, 3, 4, 5, 6, 7 }, b.Seq.InputIds[0].data<long>().ToArray());
        Assert.Equal(new long[] { 1, 2, 9, 8, 0, 0, 0, 0 }, b.Seq.InputIds[1].data<long>().ToArray());
        Assert.Equal(new long[] { 0, 1, 1, 1, 1, 1, 1, 1 }, b.Seq.AttentionMask[0].data<long>().ToArray());   // the env text is attended to
        Assert.Equal(new long[] { 1, 1, 1, 1, 0, 0, 0, 0 }, b.Seq.AttentionMask[1].data<long>().ToArray());
        Assert.Equal([1f, 1f, 0f, 0f, 1f], Row(b.Seq.CompletionMask, 0));     // trained on: turn 1 and turn 2, not [5, 6]
        Assert.Equal([1f, 0f, 0f, 0f, 0f], Row(b.Seq.CompletionMask, 1));
        Assert.Equal([-0.5f, -0.25f, 0f, 0f, -1f], Row(b.OldLogProbs, 0));
        Assert.Equal([-2f, 0f, 0f, 0f, 0f], Row(b.OldLogProbs, 1));
        Assert.Equal([0f, 0f, 0f, 0f, 1f], Row(b.TurnRewards, 0));            // turn 1's reward 0 at index 1, turn 2's 1 at index 4
        Assert.Equal([0f, 0f, 0f, 0f, 0f], Row(b.TurnRewards, 1));
        Assert.Equal([1f, 0f], b.Returns.data<float>().ToArray());
    }

    [Fact]
    public void Grpo_uses_the_trajectory_return_and_one_ppo_clip_loss_value_is_the_hand_computed_one()
    {
        using var scope = NewDisposeScope();
        var b = MultiTurnBatch.Build([A(), B()], padId: 0);
        var mask = b.Seq.CompletionMask;
        var ctx = new AdvantageContext(b.Returns, mask, 2, zeros_like(mask), 0, false, null, null, new MovingAverageBaseline(0.9), 1, 1, RewardScaling.Group, b.TurnRewards);
        var adv = AdvantageEstimators.Registry.Get("grpo").Estimate(ctx).Advantages;
        // Group of 2 returns {1, 0}: mean 0.5, unbiased std √0.5 = 0.707107 → Â = ±0.5/0.707107 = ±0.707106 on policy tokens, 0 elsewhere.
        const float a = 0.707106f;
        AssertClose([a, a, 0, 0, a], Row(adv, 0));
        AssertClose([-a, 0, 0, 0, 0], Row(adv, 1));
        // At the behaviour policy (ratio 1) the clipped surrogate is −Â per token; token mean over the 4 policy tokens:
        // −(3·0.707106 − 0.707106)/4 = −0.353553. Counting the env tokens or padding would divide by more.
        var agg = new Aggregation(LossAggregation.TokenMean, mask.sum().item<float>(), 2);
        var input = new PolicyLossInput(b.OldLogProbs, b.OldLogProbs, adv, mask);
        var (loss, _) = PolicyLosses.Registry.Get("ppo_clip").Compute(input, new PolicyLossContext(new ClipOptions(), agg, b.Returns, 1));
        Assert.Equal(-0.353553, loss.item<float>(), 5);
    }

    [Fact]
    public void Gae_runs_over_the_policy_tokens_across_turns_with_each_turn_reward_at_its_end()
    {
        using var scope = NewDisposeScope();
        var b = MultiTurnBatch.Build([A()], padId: 0);
        var mask = b.Seq.CompletionMask;                                     // [1, 1, 0, 0, 1]
        var turnRewards = tensor(new float[] { 0, 0.5f, 0, 0, 1 }).view(1, 5);   // turn 1 rewarded 0.5 here, to see both rewards
        var values = tensor(new float[] { 0.1f, 0.2f, 9, 9, 0.4f }).view(1, 5);  // 9 at the env text must be ignored
        var ctx = new AdvantageContext(tensor(new float[] { 1.5f }), mask, 1, zeros_like(mask), 0, false, values, null,
            new MovingAverageBaseline(0.9), 0.9, 0.8, RewardScaling.None, turnRewards);
        var est = AdvantageEstimators.Registry.Get("gae").Estimate(ctx);
        // Over the policy tokens t = 0, 1, 4 (γ = 0.9, λ = 0.8, γλ = 0.72):
        //   t=4: δ = 1 + 0 − 0.4 = 0.6;             A = 0.6
        //   t=1: δ = 0.5 + 0.9·0.4 − 0.2 = 0.66;    A = 0.66 + 0.72·0.6 = 1.092
        //   t=0: δ = 0 + 0.9·0.2 − 0.1 = 0.08;      A = 0.08 + 0.72·1.092 = 0.86624
        AssertClose([0.86624f, 1.092f, 0, 0, 0.6f], Row(est.Advantages, 0));
        AssertClose([0.96624f, 1.292f, 0, 0, 1.0f], Row(est.Returns!, 0));  // A + V
    }

    static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-5, $"[{i}] expected {expected[i]}, got {actual[i]}");
    }

    static string Recipe(string output, string algorithm, string rl) => $$"""
        kind: rl
        output: {{output}}
        seed: 3
        model: { init: { hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 128 } }
        env: { name: guess-number, low: 1, high: 8, max_turns: 3, token_budget: 96 }
        rl: { algorithm: {{algorithm}}, iterations: 2, max_new_tokens: 4, learning_rate: 0.001, temperature: 1.0, eval_every: 0, {{rl}} }
        eval: { problems: 6 }
        """;

    [Fact]
    public void Grpo_on_guess_number_from_a_recipe_trains_and_writes_success_rate_and_mean_turns()
    {
        using var dir = new TempDir();
        var recipe = Sharpen.Recipes.Recipe.Parse(Recipe(dir.File("run"), "grpo", "prompts_per_iteration: 2, samples_per_prompt: 4"), "test.yaml");
        Assert.Equal("guess-number", recipe.Env!.Name);
        var lines = new List<string>();
        var result = RlPipeline.Run(recipe, lines.Add);
        Assert.Equal(2, result.Rl.Iterations);

        var log = new RunLog(dir.File("run"), append: true);
        var rows = log.ReadMetrics();
        Assert.Equal(2, rows.Count);
        foreach (var row in rows)
        {
            double success = row["success_rate"]!.GetValue<double>(), turns = row["mean_turns"]!.GetValue<double>();
            Assert.InRange(success, 0, 1);
            Assert.InRange(turns, 1, 3);                                   // the game allows 3 guesses
            Assert.Equal(8, row["trained_sequences"]!.GetValue<int>());    // 2 seeds × 4 trajectories
            Assert.True(double.IsFinite(row["loss"]!.GetValue<double>()));
        }
        // The final greedy evaluation on seeds 0..5: summary numbers agree with the transcripts written beside it.
        var summary = log.ReadSummary();
        var played = TrajectoryJsonl.Read(dir.File("run/eval_transcripts.jsonl"));
        Assert.Equal(6, played.Count);
        Assert.Equal(Enumerable.Range(0, 6), played.Select(t => t.Seed!.Value));
        Assert.Equal(played.Count(t => t.FinalInfo["outcome"] == "won") / 6.0, summary["success_rate"]!.GetValue<double>(), 9);
        Assert.Equal(played.Average(t => t.Turns.Count), summary["mean_turns"]!.GetValue<double>(), 9);
        Assert.Equal(6, summary["n"]!.GetValue<int>());
        Assert.NotNull(summary["success_rate_before"]);
        Assert.True(File.Exists(dir.File("run/final/model.safetensors")));
    }

    [Fact]
    public void Ppo_on_guess_number_trains_a_critic_over_the_policy_tokens()
    {
        using var dir = new TempDir();
        var recipe = Sharpen.Recipes.Recipe.Parse(Recipe(dir.File("run"), "ppo", "prompts_per_iteration: 4, samples_per_prompt: 1, epochs: 1"), "test.yaml");
        RlPipeline.Run(recipe);
        var rows = new RunLog(dir.File("run"), append: true).ReadMetrics();
        Assert.Equal(2, rows.Count);
        Assert.All(rows, r => Assert.True(double.IsFinite(r["value_loss"]!.GetValue<double>())));
        Assert.Equal(4, rows[0]["trained_sequences"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("grpo")]
    [InlineData("rloo")]
    [InlineData("reinforce")]
    [InlineData("ppo")]
    public void The_shipped_guess_number_recipes_parse(string algorithm)
    {
        var r = Sharpen.Recipes.Recipe.Load(RepoPaths.Of("recipes", $"{algorithm}-guess-number.yaml"));
        Assert.Equal(algorithm, r.RlOptions().Algorithm);
        var options = Assert.IsType<GuessNumberOptions>(r.Env!.BuildOptions("x"));
        Assert.Equal((1, 16, 5), (options.Low, options.High, options.MaxTurns));
        using var env = EnvironmentSource.From(r.Env, "x");
        Assert.Equal((5, 192), (env.Rollout.MaxTurns, env.Rollout.MaxTrajectoryTokens));   // turns default to the game's own limit
    }

    [Theory]
    [InlineData("env: { name: chess }", "'env.name' is 'chess'")]
    [InlineData("env: { name: guess-number, hgh: 9 }", "'env.hgh'")]
    [InlineData("env: { name: guess-number, turns: 0 }", "'env.turns' must be 1 or more")]
    [InlineData("env: { url: 'ftp://x' }", "'env.url' must be an http(s) URL")]
    public void Bad_env_sections_name_the_key(string env, string expected)
    {
        var yaml = "kind: rl\nmodel: { init: { hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64 } }\n" + env + "\n";
        var e = Assert.Throws<RecipeException>(() => Sharpen.Recipes.Recipe.Parse(yaml, "bad.yaml"));
        Assert.Contains("bad.yaml", e.Message);
        Assert.Contains(expected, e.Message);
    }
}
