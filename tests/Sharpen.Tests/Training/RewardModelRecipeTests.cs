using Sharpen.Training;
using Sharpen.Recipes;
using Sharpen.Training.RewardModels;

namespace Sharpen.Tests.Training;

public class RewardModelRecipeTests
{
    const string Minimal = """
        kind: reward_model
        model: { init: { hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32 }, tokenizer: "chars:abcd" }
        data: { train: pairs.jsonl }

        """;

    [Fact]
    public void A_reward_model_recipe_binds_its_section_over_the_defaults()
    {
        var r = Recipe.Parse(Minimal + "reward_model: { margin: 0.5, max_steps: 3 }\n", "rm.yaml");
        Assert.Equal("reward_model", r.Kind);
        var o = r.RewardModelOptions();
        Assert.Equal((0.5, 3), (o.Margin, o.MaxSteps));
        Assert.Equal(new RewardModelOptions().BatchSize, o.BatchSize);
        Assert.Equal(new RewardModelOptions(), Recipe.Parse(Minimal, "rm.yaml").RewardModelOptions());
    }

    [Theory]
    [InlineData("reward_model: { marjin: 0.2 }", "'reward_model.marjin'")]
    [InlineData("reward_model: { margin: lots }", "'reward_model.margin'")]
    [InlineData("reward_model: { margin: -1 }", "reward_model.margin must be ≥ 0")]
    public void Bad_reward_model_keys_are_named(string extra, string expected)
    {
        var e = Assert.Throws<RecipeException>(() => Recipe.Parse(Minimal + extra, "rm.yaml"));
        Assert.StartsWith("rm.yaml", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_reward_model_recipe_needs_training_data_and_a_tokenizer_for_a_fresh_model()
    {
        var noData = Assert.Throws<RecipeException>(() => Recipe.Parse(Minimal.Replace("data: { train: pairs.jsonl }", ""), "rm.yaml"));
        Assert.Contains("'data.train'", noData.Message);
        var noTokenizer = Assert.Throws<RecipeException>(() => Recipe.Parse(Minimal.Replace(", tokenizer: \"chars:abcd\"", ""), "rm.yaml"));
        Assert.Contains("'model.tokenizer'", noTokenizer.Message);
    }

    [Fact]
    public void The_shipped_reward_model_recipe_parses()
    {
        var r = Recipe.Load(RepoPaths.Of("recipes", "reward-model-pairs.yaml"));
        Assert.Equal("reward_model", r.Kind);
        Assert.NotNull(r.Model.Path);
        Assert.NotNull(r.Data.Train);
        Assert.Equal(new RewardModelOptions(), r.RewardModelOptions());
    }
}
