using Sharpen.Models;
using Sharpen.Recipes;
using Sharpen.Rewards;
using Sharpen.Tasks;
using Sharpen.Tests.Tasks;
using Sharpen.Tests.Training;
using Sharpen.Training.ExpertIteration;
using static TorchSharp.torch;

namespace Sharpen.Tests.Rewards;

/// <summary>Sharpening's self-reward log π(y | x) checked against a teacher-forced pass over each unpadded sequence.</summary>
public class SelfLikelihoodRewardTests
{
    /// <summary>Σ_t log softmax(logits at position |x| − 1 + t)[y_t] over the completion's tokens and EOS, one sequence at a time.</summary>
    internal static (double Sum, int Tokens) TeacherForced(CausalLM m, string prompt, string completion)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var p = Bandit.Tok.Encode(prompt).ToList();
        var y = Bandit.Tok.Encode(completion, addSpecialTokens: false).Append(Bandit.Tok.EosTokenId!.Value).ToList();
        var ids = p.Concat(y).Select(i => (long)i).ToArray();
        var logp = m.Forward(tensor(ids).view(1, -1)).Logits[0].log_softmax(-1);    // (T, V)
        double sum = 0;
        for (int t = 0; t < y.Count; t++) sum += logp[p.Count - 1 + t, y[t]].item<float>();
        return (sum, y.Count);
    }

    [Fact]
    public void Rewards_are_the_teacher_forced_log_likelihood_summed_or_per_token()
    {
        using var model = Bandit.Model(seed: 5);
        (string, string)[] items = [("a", "c"), ("ab", "dcab"), ("abc", "")];   // different lengths: the batch pads
        var raw = new SelfLikelihoodReward(model, Bandit.Tok, normalize: false, microBatch: 2).Score(items);
        var mean = new SelfLikelihoodReward(model, Bandit.Tok, normalize: true).Score(items);
        for (int i = 0; i < items.Length; i++)
        {
            var (sum, n) = TeacherForced(model, items[i].Item1, items[i].Item2);
            Assert.Equal(sum, raw[i], 4);
            Assert.Equal(sum / n, mean[i], 4);
            Assert.True(raw[i] < 0);
        }
        Assert.Equal(2, TeacherForced(model, "a", "c").Tokens);   // "c" and EOS
    }

    [Fact]
    public void A_recipe_entry_scores_with_a_frozen_copy_of_the_starting_policy()
    {
        using var policy = Bandit.Model(seed: 5);
        var recipe = Recipe.Parse("kind: rl\nmodel: { path: m }\ndata: { train: x.jsonl }\nrewards: [{ self_likelihood: { normalize: false } }]\n");
        var rewards = RlPipeline.BuildRewards(recipe.Rewards, null, policy, Bandit.Tok);
        var fn = Assert.IsType<SelfLikelihoodReward>(Assert.Single(rewards).Function);
        Assert.Equal("self_likelihood", fn.Name);
        Assert.False(fn.Normalize);
        var before = TeacherForced(policy, "a", "c").Sum;
        using (no_grad()) foreach (var p in policy.parameters()) p.add_(randn_like(p));   // the policy moves on; the reward must not
        Assert.Equal(before, fn.Score([("a", "c")])[0], 4);
        Assert.True(Math.Abs(before - TeacherForced(policy, "a", "c").Sum) > 0.01);
        fn.Dispose();

        var e = Assert.Throws<RecipeException>(() => RlPipeline.BuildRewards(recipe.Rewards, null));
        Assert.Contains("'rewards[0]': 'self_likelihood' works in rl recipes only", e.Message);
        var both = Recipe.Parse("kind: rl\nmodel: { path: m }\ndata: { train: x.jsonl }\nrewards: [{ self_likelihood: {}, url: 'http://127.0.0.1:1/' }]\n");
        Assert.Contains("with 'model' or 'url'", Assert.Throws<RecipeException>(() => RlPipeline.BuildRewards(both.Rewards, null, policy, Bandit.Tok)).Message);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Sft_sharpening_keeps_the_sample_the_policy_finds_most_likely(bool normalize)
    {
        using var model = Bandit.Model(seed: 5);
        var task = new LetterTask();
        var problems = task.Generate(3, 0);
        var o = ExpertIterationOptions.For("sharpening") with { SamplesPerProblem = 6, MaxNewTokens = 3, TopK = 0, Seed = 4, SelfLikelihoodNormalize = normalize };
        var picked = new SharpeningExpertSampler(normalize).Sample(new ExpertSampleRequest(model, Bandit.Tok, task, problems, 1, 11, o));
        Assert.Equal(3, picked.Count);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(6, picked[i].Count);
            var expected = picked[i].Select(c => TeacherForced(model, problems[i].Prompt, c.Completion))
                .Select(t => normalize ? t.Sum / t.Tokens : t.Sum).ToList();
            var selected = Assert.Single(picked[i], c => c.Correct);
            Assert.Equal(expected.Max(), double.Parse(selected.Fields["self_likelihood"], System.Globalization.CultureInfo.InvariantCulture), 4);
            foreach (var (c, e) in picked[i].Zip(expected))
            {
                Assert.Equal(e, double.Parse(c.Fields["self_likelihood"], System.Globalization.CultureInfo.InvariantCulture), 4);
                Assert.Equal(task.Verify(problems[i], c.Completion).Correct ? "true" : "false", c.Fields["verified"]);
            }
        }
        var kept = ExpertIterationTrainer.Keep(problems, picked, o.MaxKeptPerProblem, o.Dedupe, 1);
        Assert.Equal(3, kept.Count);
    }

    [Fact]
    public void The_sharpening_recipes_load()
    {
        var rl = Recipe.Load(RepoPaths.Of("recipes", "sharpening-countdown.yaml"));
        Assert.True(Assert.Single(rl.Rewards!).SelfLikelihood!.Normalize);
        Assert.Equal(0.05, rl.RlOptions().Beta);
        var sft = Recipe.Load(RepoPaths.Of("recipes", "sft-sharpening-countdown.yaml")).ExpertIterationOptions();
        Assert.Equal(("sharpening", 8, 1, true), (sft.Method, sft.SamplesPerProblem, sft.MaxKeptPerProblem, sft.SelfLikelihoodNormalize));
    }
}
