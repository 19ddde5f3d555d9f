using Sharpen.Tasks;
using Sharpen.Training;
using Sharpen.Recipes;
using Sharpen.Rewards;
using Sharpen.Training.ExpertIteration;
using Sharpen.Training.Preference;
using Sharpen.Training.RewardModels;
using Sharpen.Training.Rl;
using Sharpen.Training.Sft;
using Sharpen.Algorithms;

namespace Sharpen.Tests.Training;

public class RecipeTests
{
    [Fact]
    public void The_shipped_sft_recipe_parses_into_the_option_records()
    {
        var r = Recipe.Load(RepoPaths.Of("recipes", "sft-countdown.yaml"));
        Assert.Equal("sft", r.Kind);
        Assert.Equal(400, r.Sft.MaxSteps);
        Assert.Equal(64, r.Sft.BatchSize);
        Assert.Equal(0.002, r.Sft.LearningRate);
        Assert.Equal(192, r.Model.Init!["hidden_size"]!.GetValue<long>());
        var task = Assert.IsType<CountdownTask>(r.Task!.Build("x"));
        Assert.Equal(3, task.Options.MaxNumbers);
        Assert.Equal(4, r.Eval.Samples);
    }

    const string Minimal = "model: { init: { hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64 } }\ntask: { name: countdown }\n";

    [Theory]
    [InlineData("sft: { batch_sise: 3 }", "'sft.batch_sise'")]
    [InlineData("sft: { batch_size: three }", "'sft.batch_size'")]
    [InlineData("sft: { batch_size: 0 }", "sft.batch_size must be positive")]
    [InlineData("kind: dpo", "'kind' is 'dpo'")]
    [InlineData("task: { name: chess }", "'task.name' is 'chess'")]
    [InlineData("task: { name: countdown, max_numbrs: 3 }", "'task.max_numbrs'")]
    public void Bad_recipes_name_the_file_and_key(string extra, string expected)
    {
        var yaml = extra.StartsWith("task:") ? Minimal.Replace("task: { name: countdown }\n", "") + extra : Minimal + extra;
        var e = Assert.Throws<RecipeException>(() => Recipe.Parse(yaml, "my.yaml"));
        Assert.StartsWith("my.yaml", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Yaml_syntax_errors_give_the_line()
    {
        var e = Assert.Throws<RecipeException>(() => Recipe.Parse("kind: sft\nmodel: [unclosed\n", "my.yaml"));
        Assert.StartsWith("my.yaml:", e.Message);
        Assert.Contains("invalid YAML", e.Message);
    }

    [Fact]
    public void A_model_needs_exactly_one_source()
    {
        Assert.Contains("exactly one of 'path'", Assert.Throws<RecipeException>(() => Recipe.Parse("task: { name: countdown }\n", "r.yaml")).Message);
    }
}

public class StepScheduleTests
{
    [Fact]
    public void Sft_rl_and_expert_iteration_options_reject_infinite_values_like_the_other_sections()
    {
        double inf = double.PositiveInfinity;
        Assert.Contains("sft.learning_rate must be positive, got ", Assert.Throws<ArgumentException>(() => (new SftOptions() with { LearningRate = inf }).Validate()).Message);
        Assert.Contains("sft.max_grad_norm must be ≥ 0", Assert.Throws<ArgumentException>(() => (new SftOptions() with { MaxGradNorm = inf }).Validate()).Message);
        Assert.Contains("rl.beta must be ≥ 0", Assert.Throws<ArgumentException>(() => (RlOptions.For("grpo") with { Beta = inf }).Validate()).Message);
        Assert.Contains("rl.learning_rate must be positive", Assert.Throws<ArgumentException>(() => (RlOptions.For("grpo") with { LearningRate = inf }).Validate()).Message);
        Assert.Contains("expert_iteration.iterations must be positive", Assert.Throws<ArgumentException>(() => (new ExpertIterationOptions() with { Iterations = 0 }).Validate()).Message);
        // Finite values still pass.
        (new SftOptions() with { LearningRate = 1e3, MaxGradNorm = 0 }).Validate();
        (RlOptions.For("grpo") with { Beta = 10, ClipHigh = 5 }).Validate();
    }


    const string Head = "model: { path: m }\ndata: { train: x }\n";

    [Theory]
    [InlineData("preference", "preference", 5e-5)]
    [InlineData("reward_model", "reward_model", 5e-5)]
    [InlineData("offline_pg", "offline_pg", 2e-5)]
    [InlineData("prm", "prm", 5e-5)]
    [InlineData("implicit_prm", "implicit_prm", 5e-6)]
    public void Each_step_trainer_binds_the_shared_schedule_under_its_own_section(string kind, string section, double defaultLr)
    {
        StepSchedule Bind(string keys)
        {
            var r = Recipe.Parse($"kind: {kind}\n{Head}{section}: {{ {keys} }}\n", "r.yaml");
            return kind switch
            {
                "preference" => r.PreferenceOptions("r.yaml"), "reward_model" => r.RewardModelOptions("r.yaml"),
                "offline_pg" => r.OfflinePolicyOptions("r.yaml"), "prm" => r.PrmOptions("r.yaml"), _ => r.ImplicitPrmOptions("r.yaml"),
            };
        }
        var d = Bind("");
        Assert.Equal((200, 16, defaultLr, 10, 0.1, 1.0, 10, 100, 2, 1),
            (d.MaxSteps, d.BatchSize, d.LearningRate, d.WarmupSteps, d.MinLrRatio, d.MaxGradNorm, d.LogEvery, d.CheckpointEvery, d.KeepCheckpoints, d.Seed));
        var o = Bind("max_steps: 7, learning_rate: 0.001, keep_checkpoints: 3");
        Assert.Equal((7, 0.001, 3), (o.MaxSteps, o.LearningRate, o.KeepCheckpoints));
        Assert.Contains($"{section}.max_steps must be positive, got 0", Assert.Throws<RecipeException>(() => Bind("max_steps: 0")).Message);
        Assert.Contains($"{section}.warmup_steps must be ≥ 0, got -1", Assert.Throws<RecipeException>(() => Bind("warmup_steps: -1")).Message);
        Assert.Contains($"{section}.min_lr_ratio must be in [0, 1], got 2", Assert.Throws<RecipeException>(() => Bind("min_lr_ratio: 2")).Message);
    }
}

public class RlRecipeTests
{
    [Theory]
    [InlineData("grpo-countdown.yaml", "grpo")]
    [InlineData("dr-grpo-countdown.yaml", "dr_grpo")]
    [InlineData("ppo-countdown.yaml", "ppo")]
    [InlineData("remax-countdown.yaml", "remax")]
    [InlineData("rloo-countdown.yaml", "rloo")]
    [InlineData("reinforce-countdown.yaml", "reinforce")]
    [InlineData("topr-countdown.yaml", "topr")]
    [InlineData("dapo-countdown.yaml", "grpo")]
    public void Shipped_rl_recipes_parse_over_their_presets(string file, string algorithm)
    {
        var r = Recipe.Load(RepoPaths.Of("recipes", file));
        var o = r.RlOptions();
        Assert.Equal(algorithm, o.Algorithm);
        Assert.Equal(60, o.Iterations);
        Assert.Equal(5e-5, o.LearningRate);
        Assert.Equal(0.7, o.Temperature);
    }

    [Fact]
    public void The_dapo_recipe_sets_the_papers_four_changes_to_grpo()
    {
        var o = Recipe.Load(RepoPaths.Of("recipes", "dapo-countdown.yaml")).RlOptions();
        Assert.Equal((0.2, 0.28), (o.ClipLow, o.ClipHigh));                 // clip-higher
        Assert.True(o.DynamicSampling);
        Assert.Equal(Sharpen.Algorithms.LossAggregation.TokenMean, o.Aggregation);  // token-level loss
        Assert.Equal(0.0, o.Beta);                                          // no KL
        Assert.True(o.MaskTruncatedCompletions);                            // overlong filtering
        Assert.Equal((12, 1.0), (o.OverlongBuffer, o.OverlongPenalty));     // soft overlong punishment over the last quarter
        Assert.False((RlOptions.Grpo()).DynamicSampling);                     // plain GRPO keeps none of them
        Assert.Equal(0.2, RlOptions.Grpo().ClipHigh);
    }

    [Fact]
    public void Rl_keys_override_the_preset_and_unknown_keys_fail()
    {
        const string head = "kind: rl\nmodel: { path: m }\ntask: { name: countdown }\n";
        var o = Recipe.Parse(head + "rl: { algorithm: ppo, epochs: 2 }\n").RlOptions();
        Assert.Equal(2, o.Epochs);
        Assert.True(o.WhitenAdvantages);   // from the PPO preset
        Assert.Equal(0.95, o.Lambda);
        Assert.Contains("'rl.epocs'", Assert.Throws<RecipeException>(() => Recipe.Parse(head + "rl: { algorithm: ppo, epocs: 2 }\n", "r.yaml")).Message);
        Assert.Contains("known: ppo", Assert.Throws<RecipeException>(() => Recipe.Parse(head + "rl: { algorithm: a3c }\n", "r.yaml")).Message);
        Assert.Contains("needs a 'task'", Assert.Throws<RecipeException>(() => Recipe.Parse("kind: rl\nmodel: { path: m }\ndata: { train: x }\n", "r.yaml")).Message);
    }
}
