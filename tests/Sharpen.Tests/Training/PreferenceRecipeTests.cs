using Sharpen.Training;
using Sharpen.Recipes;
using Sharpen.Training.Preference;

namespace Sharpen.Tests.Training;

public class PreferenceRecipeTests
{
    const string Minimal = """
        kind: preference
        model: { init: { hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32 }, tokenizer: "chars:abcd" }
        data: { train: pairs.jsonl }

        """;

    [Fact]
    public void A_preference_recipe_binds_its_section_over_the_defaults()
    {
        var r = Recipe.Parse(Minimal + "preference: { loss: ipo, tau: 0.25, max_steps: 3 }\n", "p.yaml");
        Assert.Equal("preference", r.Kind);
        var o = r.PreferenceOptions();
        Assert.Equal(("ipo", 0.25, 3), (o.Loss, o.Tau, o.MaxSteps));
        Assert.Equal(new PreferenceOptions().BatchSize, o.BatchSize);
        Assert.Equal(new PreferenceOptions(), Recipe.Parse(Minimal, "p.yaml").PreferenceOptions());
    }

    [Theory]
    [InlineData("preference: { betta: 0.2 }", "'preference.betta'")]
    [InlineData("preference: { beta: lots }", "'preference.beta'")]
    [InlineData("preference: { loss: kto }", "preference.loss: unknown loss 'kto'")]
    [InlineData("preference: { beta: 0 }", "preference.beta must be positive")]
    public void Bad_preference_keys_are_named(string extra, string expected)
    {
        var e = Assert.Throws<RecipeException>(() => Recipe.Parse(Minimal + extra, "p.yaml"));
        Assert.StartsWith("p.yaml", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_preference_recipe_needs_training_data_and_a_tokenizer_for_a_fresh_model()
    {
        var noData = Assert.Throws<RecipeException>(() => Recipe.Parse(Minimal.Replace("data: { train: pairs.jsonl }", ""), "p.yaml"));
        Assert.Contains("'data.train'", noData.Message);
        var noTokenizer = Assert.Throws<RecipeException>(() => Recipe.Parse(Minimal.Replace(", tokenizer: \"chars:abcd\"", ""), "p.yaml"));
        Assert.Contains("'model.tokenizer'", noTokenizer.Message);
    }

    [Fact]
    public void The_shipped_dpo_recipe_parses()
    {
        var r = Recipe.Load(RepoPaths.Of("recipes", "dpo.yaml"));
        Assert.Equal("preference", r.Kind);
        Assert.NotNull(r.Model.Path);
        Assert.NotNull(r.Data.Train);
        var o = r.PreferenceOptions();
        Assert.Equal(("dpo", 0.1), (o.Loss, o.Beta));
    }

    [Theory]
    [InlineData("cdpo")]
    [InlineData("ipo")]
    [InlineData("rdpo")]
    [InlineData("orpo")]
    [InlineData("simpo")]
    public void Each_direct_alignment_loss_has_a_recipe_with_its_papers_settings(string loss)
    {
        var r = Recipe.Load(RepoPaths.Of("recipes", loss + ".yaml"));
        Assert.Equal(("preference", "runs/" + loss), (r.Kind, r.Output));
        var o = r.PreferenceOptions();
        Assert.Equal(loss, o.Loss);
        switch (loss)
        {
            case "cdpo": Assert.Equal((0.1, 0.1), (o.Beta, o.LabelSmoothing)); break;
            case "ipo": Assert.Equal(0.1, o.Tau); break;                             // optimum margin 1/(2τ) = 5
            case "rdpo": Assert.Equal((0.1, 0.1), (o.Beta, o.FlipRate)); break;
            case "orpo": Assert.Equal(0.1, o.Lambda); Assert.False(o.NeedsReference); break;
            case "simpo": Assert.Equal((2.0, 1.0), (o.Beta, o.Gamma)); Assert.False(o.NeedsReference); break;
        }
    }
}
