using Sharpen.Recipes;
using Sharpen.Tasks;

namespace Sharpen.Tests.Recipes;

public class EasyToHardRecipeTests
{
    [Fact]
    public void The_shipped_recipe_rewards_with_the_easy_prm_and_evaluates_on_four_numbers()
    {
        var recipe = Recipe.Load(RepoPaths.Of("recipes", "easy-to-hard-countdown.yaml"));
        var reward = Assert.Single(recipe.Rewards!);
        Assert.Equal("runs/prm-countdown-easy/final", reward.Prm);
        Assert.Equal("min", reward.Aggregate);
        var train = (CountdownOptions)recipe.Task!.BuildOptions("t");
        var eval = (CountdownOptions)recipe.Eval.Task!.BuildOptions("t");
        Assert.Equal((3, 4), (train.MinNumbers, train.MaxNumbers));
        Assert.Equal((4, 4), (eval.MinNumbers, eval.MaxNumbers));
        // The evaluation task generates 4-number problems only.
        var problems = recipe.Eval.Task.Build("t").Generate(20, 5);
        Assert.All(problems, p => Assert.Equal(4, p.Fields["numbers"].Split(' ').Length));
    }

    [Fact]
    public void Eval_task_must_be_the_training_task_in_an_rl_recipe()
    {
        const string head = "kind: rl\noutput: o\nmodel: { path: m }\ntask: { name: countdown }\n";
        var other = Assert.Throws<RecipeException>(() => Recipe.Parse(head + "eval: { task: { name: arithmetic } }\n"));
        Assert.Contains("'eval.task.name' is 'arithmetic'", other.Message);
        var badKey = Assert.Throws<RecipeException>(() => Recipe.Parse(head + "eval: { task: { name: countdown, min_numbrs: 4 } }\n"));
        Assert.Contains("min_numbrs", badKey.Message);
        var sft = Assert.Throws<RecipeException>(() => Recipe.Parse("kind: sft\noutput: o\nmodel: { path: m }\ntask: { name: countdown }\neval: { task: { name: countdown } }\n"));
        Assert.Contains("'eval.task' works in rl recipes", sft.Message);
    }

    [Fact]
    public void Command_line_pairs_become_typed_task_options()
    {
        var section = TaskSection.FromPairs("countdown", ["min_numbers=4", "max_numbers=5", "use_all_numbers=true"], "--task-option");
        var o = (CountdownOptions)section.BuildOptions("--task-option");
        Assert.Equal(4, o.MinNumbers);
        Assert.Equal(5, o.MaxNumbers);
        Assert.True(o.UseAllNumbers);
        Assert.Throws<RecipeException>(() => TaskSection.FromPairs("countdown", ["=4"], "--task-option"));
    }
}
