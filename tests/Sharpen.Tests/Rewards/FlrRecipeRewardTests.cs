using Sharpen.Checkpoints;
using Sharpen.Recipes;
using Sharpen.Rewards;
using Sharpen.Tests.Training;
using static Sharpen.Tests.Rewards.SelfLikelihoodRewardTests;
using static TorchSharp.torch;

namespace Sharpen.Tests.Rewards;

/// <summary>FLR (follow-up likelihood as reward) as an <c>rl</c> recipe's reward entry, checked on a tiny checkpoint against
/// follow-up log-likelihoods computed one teacher-forced sequence at a time.</summary>
public class FlrRecipeRewardTests
{
    /// <summary>FLR by hand: per-token mean log π(f + EOS | prompt + completion + marker), mean over F+ minus mean over F−.</summary>
    static double ByHand(Sharpen.Models.CausalLM m, string prompt, string completion, string marker, string[] positive, string[] negative)
    {
        double Mean(string f) { var (sum, n) = TeacherForced(m, prompt + completion + marker, f); return sum / n; }
        return positive.Average(Mean) - negative.Average(Mean);
    }

    [Fact]
    public void An_flr_entry_scores_with_a_frozen_copy_of_the_starting_policy()
    {
        using var policy = Bandit.Model(seed: 5);
        var recipe = Recipe.Parse("kind: rl\nmodel: { path: m }\ndata: { train: x.jsonl }\n" +
                                  "rewards: [{ flr: { positive: ['ab', 'b'], negative: ['dd'], user_turn: 'b' }, weight: 0.5 }]\n");
        var rewards = RlPipeline.BuildRewards(recipe.Rewards, null, policy, Bandit.Tok);
        var entry = Assert.Single(rewards);
        Assert.Equal(0.5, entry.Weight);
        using var fn = Assert.IsType<FollowUpLikelihoodReward>(entry.Function);
        Assert.Equal("flr", fn.Name);
        double expectedC = ByHand(policy, "a", "c", "b", ["ab", "b"], ["dd"]);
        double expectedD = ByHand(policy, "a", "d", "b", ["ab", "b"], ["dd"]);
        var scores = fn.Score([("a", "c"), ("a", "d")]);
        Assert.Equal(expectedC, scores[0], 4);
        Assert.Equal(expectedD, scores[1], 4);
        Assert.NotEqual(scores[0], scores[1], 6);
        // The policy moves on; the reward's copy does not.
        using (no_grad()) foreach (var p in policy.parameters()) p.add_(randn_like(p));
        Assert.Equal(expectedC, fn.Score([("a", "c")])[0], 4);
        Assert.True(Math.Abs(expectedC - ByHand(policy, "a", "c", "b", ["ab", "b"], ["dd"])) > 1e-3);
    }

    [Fact]
    public void An_flr_entry_can_score_with_its_own_checkpoint()
    {
        using var dir = new TempDir();
        using var judge = Bandit.Model(seed: 9);
        HfCheckpoint.Save(dir.Path, judge, Bandit.Tok);
        var recipe = Recipe.Parse($"kind: rl\nmodel: {{ path: m }}\ndata: {{ train: x.jsonl }}\n" +
                                  $"rewards: [{{ name: follow_up, flr: {{ model: '{dir.Path}', positive: ['ab'], negative: ['c', 'dd'], user_turn: 'b' }} }}]\n");
        var rewards = RlPipeline.BuildRewards(recipe.Rewards, null);   // no policy needed: the entry brings its model
        using var fn = Assert.IsType<FollowUpLikelihoodReward>(Assert.Single(rewards).Function);
        Assert.Equal("follow_up", fn.Name);
        Assert.Equal(ByHand(judge, "a", "c", "b", ["ab"], ["c", "dd"]), fn.Score([("a", "c")])[0], 4);

        // Without lists and marker: the defaults.
        using var policy = Bandit.Model(seed: 5);
        var plain = RlPipeline.BuildRewards(Recipe.Parse("kind: rl\nmodel: { path: m }\ndata: { train: x.jsonl }\nrewards: [{ flr: {} }]\n").Rewards, null, policy, Bandit.Tok);
        using var d = Assert.IsType<FollowUpLikelihoodReward>(Assert.Single(plain).Function);
        Assert.Equal(FollowUpLikelihoodReward.DefaultPositive, d.Positive);
        Assert.Equal(FollowUpLikelihoodReward.DefaultNegative, d.Negative);
        Assert.Equal("\nUser: ", d.UserTurn);
    }

    [Fact]
    public void Bad_flr_entries_name_the_key()
    {
        using var policy = Bandit.Model(seed: 5);
        static string Error(string rewards, Sharpen.Models.CausalLM? p) => Assert.Throws<RecipeException>(() =>
            RlPipeline.BuildRewards(Recipe.Parse($"kind: rl\nmodel: {{ path: m }}\ndata: {{ train: x.jsonl }}\nrewards: [{rewards}]\n").Rewards, null, p, p is null ? null : Bandit.Tok)).Message;
        Assert.Contains("'rewards[0].flr.positive' is empty", Error("{ flr: { positive: [] } }", policy));
        Assert.Contains("'rewards[0].flr.negative[1]' is empty", Error("{ flr: { negative: ['x', ''] } }", policy));
        Assert.Contains("gives 'flr' with 'model', 'url'", Error("{ flr: {}, url: 'http://127.0.0.1:1/' }", policy));
        Assert.Contains("'flr' without 'flr.model' works in rl recipes only", Error("{ flr: {} }", null));
        Assert.Contains("'rewards[0].flr.model'", Error("{ flr: { model: '/nonexistent/flr-model' } }", policy));
        Assert.Contains("named 'flr' like an earlier reward", Error("{ flr: {} }, { flr: {} }", policy));
    }

    [Fact]
    public void The_flr_recipe_loads()
    {
        var recipe = Recipe.Load(RepoPaths.Of("recipes", "flr-countdown.yaml"));
        var flr = Assert.Single(recipe.Rewards!).Flr!;
        Assert.Null(flr.Model);
        Assert.Equal(3, flr.Positive!.Count);
        Assert.Equal("rl", recipe.Kind);
    }
}
