using Sharpen.Recipes;

namespace Sharpen.Tests.Training;

/// <summary>Every recipe shipped in recipes/ parses and validates (kind, sections, keys, options), so a renamed key or a
/// new validation rule cannot leave a shipped recipe broken unnoticed.</summary>
public class ShippedRecipesTests
{
    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(RepoPaths.Of("recipes"), "*.yaml").Order()) data.Add(Path.GetFileName(f));
        return data;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void A_shipped_recipe_loads(string file)
    {
        var recipe = Recipe.Load(RepoPaths.Of("recipes", file));
        Assert.Contains(recipe.Kind, Recipe.Kinds);
        Assert.False(string.IsNullOrWhiteSpace(recipe.Output));
    }

    [Fact]
    public void The_recipes_folder_is_not_empty()
    {
        Assert.True(Files().Count >= 30, $"only {Files().Count} recipes found");
    }
}
