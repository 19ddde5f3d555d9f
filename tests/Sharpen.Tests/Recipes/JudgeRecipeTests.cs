using Sharpen.Recipes;

namespace Sharpen.Tests.Recipes;

/// <summary>The recipe's <c>judge</c> section: the shipped OSP recipe binds it, bad values and misplaced sections are named.</summary>
public class JudgeRecipeTests
{
    [Fact]
    public void The_osp_recipe_names_a_judge_and_the_osp_loss()
    {
        var r = Recipe.Load(RepoPaths.Of("recipes", "osp-judge-countdown.yaml"));
        var j = r.Judge()!;
        Assert.Equal(("http://127.0.0.1:8000/v1", "default", true, false, 256), (j.Url, j.Model, j.SwapOrder, j.SelfReference, j.MaxTokens));
        Assert.Equal("osp", r.OnlinePreferenceOptions().Loss);
    }

    static string Text(string kind, string judge) => $$"""
        kind: {{kind}}
        output: runs/x
        model: { path: m }
        task: { name: countdown }
        {{judge}}
        """;

    [Fact]
    public void Bad_judges_are_named_by_key()
    {
        var e = Assert.Throws<RecipeException>(() => Recipe.Parse(Text("online_dpo", "judge: { url: localhost:8000 }")));
        Assert.Contains("judge.url", e.Message);
        e = Assert.Throws<RecipeException>(() => Recipe.Parse(Text("online_dpo", "judge: { url: http://127.0.0.1:1/v1, temprature: 0 }")));
        Assert.Contains("temprature", e.Message);
        e = Assert.Throws<RecipeException>(() => Recipe.Parse(Text("spin", "judge: { url: http://127.0.0.1:1/v1 }")));
        Assert.Contains("'judge'", e.Message);
        Assert.Null(Recipe.Parse(Text("online_dpo", "")).Judge());
    }
}
