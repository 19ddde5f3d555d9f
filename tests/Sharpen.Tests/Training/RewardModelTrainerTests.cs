using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tasks;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using static TorchSharp.torch;
using Sharpen.Recipes;
using Sharpen.Training.RewardModels;
using Sharpen.Algorithms;

namespace Sharpen.Tests.Training;

public class RewardModelTrainerTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcd");

    static CausalLM Model(long seed = 1) => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 16 }, seed);

    // After "a", "c" is preferred to "d"; after "b", "b" is preferred to "a".
    static List<PreferenceExample> Toy() =>
        [.. Enumerable.Repeat(new PreferenceExample("a", "c", "d"), 8), .. Enumerable.Repeat(new PreferenceExample("b", "b", "a"), 8)];

    static RewardContext Ctx(string prompt, string completion) => new(prompt, completion, new Dictionary<string, string>(), completion.Length);

    [Fact]
    public void The_first_logged_loss_is_ln2_because_a_zero_head_gives_equal_rewards()
    {
        using var dir = new TempDir();
        using var model = Model();
        using var head = new ScalarHead(model.Config.HiddenSize);
        var o = new RewardModelOptions { MaxSteps = 3, BatchSize = 4, LearningRate = 1e-2, WarmupSteps = 0, LogEvery = 1 };
        new RewardModelTrainer(model, head, Tok, o).Run(Toy(), dir.Path);
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal(3, rows.Count);
        Assert.Equal(Math.Log(2), rows[0]["loss"]!.GetValue<double>(), 1e-5);
        Assert.Equal(0.0, rows[0]["margin"]!.GetValue<double>(), 1e-6);
        Assert.Equal(0.0, rows[0]["accuracy"]!.GetValue<double>(), 1e-6);   // r_c > r_r is false when they are equal
        Assert.NotEqual(rows[0]["loss"]!.GetValue<double>(), rows[2]["loss"]!.GetValue<double>());
    }

    [Fact]
    public void With_a_margin_the_loss_at_equal_rewards_is_softplus_of_the_margin()
    {
        // Direct: softplus(1) = ln(1 + e) = 1.3132617.
        using (var z = zeros(3))
        using (var loss = PreferenceLosses.BradleyTerry(z, z, margin: 1.0))
            Assert.Equal(1.3132617, loss.item<float>(), 1e-6);
        // Hand values: r_c − r_r = 2, m = 0.5 → softplus(−1.5) = ln(1 + e^−1.5) = 0.2014133.
        using (var c = tensor(new float[] { 2f }))
        using (var r = tensor(new float[] { 0f }))
        using (var loss = PreferenceLosses.BradleyTerry(c, r, margin: 0.5))
            Assert.Equal(0.2014133, loss.item<float>(), 1e-6);

        using var dir = new TempDir();
        using var model = Model();
        using var head = new ScalarHead(model.Config.HiddenSize);
        var o = new RewardModelOptions { MaxSteps = 1, BatchSize = 4, LearningRate = 1e-2, WarmupSteps = 0, LogEvery = 1, Margin = 1.0 };
        var result = new RewardModelTrainer(model, head, Tok, o).Run(Toy(), dir.Path);
        Assert.Equal(1.3132617, result.FinalLoss, 1e-5);
    }

    [Fact]
    public async Task Learns_the_toy_preferences_and_the_checkpoint_scores_them_as_a_reward()
    {
        using var dir = new TempDir();
        using (var model = Model(seed: 2))
        using (var head = new ScalarHead(model.Config.HiddenSize))
        {
            var o = new RewardModelOptions { MaxSteps = 40, BatchSize = 8, LearningRate = 1e-2, WarmupSteps = 2, LogEvery = 10 };
            var result = new RewardModelTrainer(model, head, Tok, o).Run(Toy(), dir.Path);
            Assert.Equal(40, result.Steps);
            Assert.Equal(1.0, result.FinalAccuracy);
            Assert.True(result.FinalLoss < 0.5 * Math.Log(2), $"final loss {result.FinalLoss}");
            Assert.True(result.FinalMargin > 0, $"final margin {result.FinalMargin}");
        }
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal([10, 20, 30, 40], rows.Select(r => r["step"]!.GetValue<int>()));
        foreach (var k in new[] { "loss", "accuracy", "margin", "lr" }) Assert.NotNull(rows[^1][k]);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal(40, summary["steps"]!.GetValue<int>());
        var final = Path.Combine(dir.Path, "final");
        Assert.True(File.Exists(Path.Combine(final, ScalarHead.FileName)));
        Assert.True(File.Exists(Path.Combine(final, CharTokenizer.FileName)));

        RewardContext[] batch = [Ctx("a", "c"), Ctx("a", "d"), Ctx("b", "b"), Ctx("b", "a")];
        double[] raw;
        using (var rm = new ModelReward(final, microBatch: 3))   // two micro-batches
        {
            Assert.Equal("reward_model", rm.Name);
            raw = (await rm.ScoreAsync(batch)).Select(x => x!.Value).ToArray();
            Assert.True(raw[0] > raw[1], $"a→c {raw[0]} vs a→d {raw[1]}");
            Assert.True(raw[2] > raw[3], $"b→b {raw[2]} vs b→a {raw[3]}");
            // Micro-batching does not change the scores.
            var one = rm.Score([("a", "d")]);
            Assert.Equal(raw[1], one[0], 1e-4);
        }
        using (var rm = new ModelReward(final, name: "rm", normalize: true))
        {
            Assert.Equal("rm", rm.Name);
            var z = (await rm.ScoreAsync(batch)).Select(x => x!.Value).ToArray();
            Assert.Equal(0.0, z.Average(), 1e-5);
            // By hand: (r − mean) / (population std + 1e-6) of the raw scores.
            double mean = raw.Average(), std = Math.Sqrt(raw.Select(x => (x - mean) * (x - mean)).Average());
            for (int i = 0; i < raw.Length; i++) Assert.Equal((raw[i] - mean) / (std + 1e-6), z[i], 1e-3);
        }
    }

    [Fact]
    public void A_folder_without_a_scalar_head_is_an_error_naming_the_folder()
    {
        using var dir = new TempDir();
        var folder = Path.Combine(dir.Path, "policy-only");
        using (var model = Model()) HfCheckpoint.Save(folder, model, Tok);
        var e = Assert.Throws<CheckpointException>(() => new ModelReward(folder));
        Assert.Contains(folder, e.Message);
        Assert.Contains(ScalarHead.FileName, e.Message);
    }

    [Fact]
    public void A_recipe_rewards_entry_needs_exactly_one_of_name_and_model()
    {
        var task = new CountdownTask();
        var both = Assert.Throws<RecipeException>(() => RlPipeline.BuildRewards([new RewardSection { Name = task.Name, Model = "rm" }], task));
        Assert.Contains("exactly one of 'name'", both.Message);
        Assert.Throws<RecipeException>(() => RlPipeline.BuildRewards([new RewardSection()], task));
        Assert.IsType<TaskReward>(Assert.Single(RlPipeline.BuildRewards(null, task)).Function);

        using var dir = new TempDir();
        var missing = Path.Combine(dir.Path, "nowhere");
        var e = Assert.Throws<RecipeException>(() => RlPipeline.BuildRewards([new RewardSection { Model = missing }], task));
        Assert.Contains(missing, e.Message);
    }

    [Fact]
    public void A_recipe_rewards_entry_with_a_model_builds_a_normalised_model_reward()
    {
        using var dir = new TempDir();
        var folder = Path.Combine(dir.Path, "rm");
        using (var model = Model())
        using (var head = new ScalarHead(model.Config.HiddenSize, initStd: 0.1))
            HfCheckpoint.Save(folder, model, Tok, head);
        var recipe = Recipe.Parse($"kind: rl\nmodel: {{ path: m }}\ntask: {{ name: countdown }}\nrewards:\n  - {{ model: \"{folder}\", normalize: true, weight: 0.5 }}\n");
        var rewards = RlPipeline.BuildRewards(recipe.Rewards, new CountdownTask());
        var w = Assert.Single(rewards);
        Assert.Equal(0.5, w.Weight);
        using var rm = Assert.IsType<ModelReward>(w.Function);
        Assert.True(rm.Normalize);
    }

    [Fact]
    public void Options_are_validated_with_recipe_keys()
    {
        Assert.Contains("reward_model.margin", Assert.Throws<ArgumentException>(() => new RewardModelOptions { Margin = -1 }.Validate()).Message);
        Assert.Contains("reward_model.batch_size", Assert.Throws<ArgumentException>(() => new RewardModelOptions { BatchSize = 0 }.Validate()).Message);
        Assert.Contains("reward_model.min_lr_ratio", Assert.Throws<ArgumentException>(() => new RewardModelOptions { MinLrRatio = 2 }.Validate()).Message);
    }
}
