using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Recipes;
using Sharpen.Training;
using Sharpen.Training.RewardModels;
using Sharpen.Training.Rl;

namespace Sharpen.Tests.Recipes;

/// <summary>TRL's config names in recipes (<see cref="TrlNames"/>) and flat TRL configs (<see cref="TrlConfig"/>), without training.</summary>
public class TrlNamesTests
{
    const string Tiny = "model: { init: { hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32 }, tokenizer: \"chars:ab\" }\n";

    [Fact]
    public void Sft_section_takes_trl_names()
    {
        var r = Recipe.Parse("""
            kind: sft
            output_dir: runs/x
            data: { train: t.jsonl }
            model: { init: { hidden_size: 16 } }
            sft: { per_device_train_batch_size: 8, gradient_accumulation_steps: 2, logging_steps: 5, save_steps: 50, save_total_limit: 3,
                   adam_beta1: 0.8, adam_beta2: 0.99, max_length: 128, eval_steps: 7, num_train_epochs: 2.5, warmup_ratio: 0.1, learning_rate: 0.002 }
            """);
        Assert.Equal("runs/x", r.Output);
        var o = r.Sft;
        Assert.Equal((8, 2, 5, 50, 3), (o.BatchSize, o.GradientAccumulation, o.LogEvery, o.CheckpointEvery, o.KeepCheckpoints));
        Assert.Equal((0.8, 0.99, 128, 7, 2.5, 0.1, 0.002), (o.Beta1, o.Beta2, o.MaxSequenceLength, o.EvalEvery, o.Epochs, o.WarmupRatio, o.LearningRate));
    }

    [Fact]
    public void Model_name_or_path_is_model_path()
    {
        var r = Recipe.Parse("kind: sft\nmodel_name_or_path: some/folder\ndata: { train: t.jsonl }\n");
        Assert.Equal("some/folder", r.Model.Path);
        var e = Assert.Throws<RecipeException>(() => Recipe.Parse("kind: sft\nmodel_name_or_path: a\nmodel: { path: b }\ndata: { train: t.jsonl }\n", "r.yaml"));
        Assert.Contains("'model_name_or_path'", e.Message);
        Assert.Contains("'model.path'", e.Message);
    }

    [Fact]
    public void Alias_and_own_key_must_agree()
    {
        var same = Recipe.Parse(Tiny + "kind: preference\ndata: { train: p.jsonl }\npreference: { per_device_train_batch_size: 4, batch_size: 4.0 }\n");
        Assert.Equal(4, same.PreferenceOptions().BatchSize);
        var e = Assert.Throws<RecipeException>(() =>
            Recipe.Parse(Tiny + "kind: preference\ndata: { train: p.jsonl }\npreference: { per_device_train_batch_size: 4, batch_size: 8 }\n", "r.yaml"));
        Assert.StartsWith("r.yaml: 'preference.per_device_train_batch_size' is the TRL name of 'preference.batch_size'", e.Message);
        Assert.Contains("(4 and 8)", e.Message);
    }

    [Theory]
    [InlineData("cosine", 0.0, 10)]
    [InlineData("constant_with_warmup", 1.0, 10)]
    [InlineData("constant", 1.0, 0)]
    public void Lr_scheduler_type_sets_the_cosine_floor(string type, double minRatio, int warmup)
    {
        var o = Recipe.Parse(Tiny + $"kind: reward_model\ndata: {{ train: p.jsonl }}\nreward_model: {{ lr_scheduler_type: {type} }}\n").RewardModelOptions();
        Assert.Equal(minRatio, o.MinLrRatio);
        Assert.Equal(warmup, o.WarmupSteps);   // 10 is the default
        var floor = Recipe.Parse(Tiny + "kind: reward_model\ndata: { train: p.jsonl }\nreward_model: { lr_scheduler_type: cosine_with_min_lr, lr_scheduler_kwargs: { min_lr_rate: 0.05 } }\n");
        Assert.Equal(0.05, floor.RewardModelOptions().MinLrRatio);
    }

    [Fact]
    public void Unimplemented_schedule_is_an_error()
    {
        var e = Assert.Throws<RecipeException>(() => Recipe.Parse("kind: sft\ndata: { train: t.jsonl }\nmodel: { path: m }\nsft: { lr_scheduler_type: linear }\n", "r.yaml"));
        Assert.Contains("'sft.lr_scheduler_type' is 'linear'", e.Message);
        var both = Assert.Throws<RecipeException>(() => Recipe.Parse("kind: sft\ndata: { train: t.jsonl }\nmodel: { path: m }\nsft: { lr_scheduler_type: cosine, min_lr_ratio: 0.1 }\n", "r.yaml"));
        Assert.Contains("min_lr_ratio", both.Message);
    }

    [Fact]
    public void Dpo_loss_types_map_to_sharpen_losses()
    {
        var dpo = Opt("loss_type: sigmoid, beta: 0.2");
        Assert.Equal(("dpo", 0.2), (dpo.Loss, dpo.Beta));
        var cdpo = Opt("loss_type: sigmoid, label_smoothing: 0.1");
        Assert.Equal(("cdpo", 0.1), (cdpo.Loss, cdpo.LabelSmoothing));
        var ipo = Opt("loss_type: ipo, beta: 0.3");
        Assert.Equal(("ipo", 0.3), (ipo.Loss, ipo.Tau));     // TRL's IPO reads beta as tau: (h − 1/(2β))²
        var rdpo = Opt("loss_type: robust, label_smoothing: 0.2");
        Assert.Equal(("rdpo", 0.2, 0.0), (rdpo.Loss, rdpo.FlipRate, rdpo.LabelSmoothing));
        var e = Assert.Throws<RecipeException>(() => Opt("loss_type: hinge"));
        Assert.Contains("'preference.loss_type' is 'hinge'", e.Message);
        var accumulated = Opt("per_device_train_batch_size: 3, gradient_accumulation_steps: 4");
        Assert.Equal(12, accumulated.BatchSize);

        static global::Sharpen.Training.Preference.PreferenceOptions Opt(string keys) =>
            Recipe.Parse(Tiny + $"kind: preference\ndata: {{ train: p.jsonl }}\npreference: {{ {keys} }}\n", "r.yaml").PreferenceOptions();
    }

    [Fact]
    public void Grpo_names_and_batch_sizes()
    {
        // per_device 4 × accumulation 2 = 8 completions per step and per generation round (steps_per_generation = accumulation):
        // 8 / num_generations 4 = 2 prompts, one optimizer step per round (mini_batch 0), × num_iterations 2 epochs = 2 steps per
        // iteration; max_steps 10 → 5 iterations; warmup_ratio 0.25 of 10 steps → 3.
        var o = Rl("per_device_train_batch_size: 4, gradient_accumulation_steps: 2, num_generations: 4, max_steps: 10, num_iterations: 2, " +
            "loss_type: dr_grpo, scale_rewards: false, epsilon: 0.15, epsilon_high: 0.28, max_completion_length: 32, warmup_ratio: 0.25, beta: 0.0");
        Assert.Equal((2, 4, 0, 4, 5, 2), (o.PromptsPerIteration, o.SamplesPerPrompt, o.MiniBatchSize, o.MicroBatchSize, o.Iterations, o.Epochs));
        Assert.Equal((LossAggregation.SeqMeanTokenSumNorm, false, 0.15, 0.28, 32, 3, 0.0),
            (o.Aggregation, o.ScaleByStd, o.ClipLow, o.ClipHigh, o.MaxNewTokens, o.WarmupSteps, o.Beta));

        // steps_per_generation 4: a round is 16 completions = 4 prompts of 4, optimizer steps of 8 → 2 per epoch, 1 epoch;
        // max_steps 5 → ⌈5 / 2⌉ = 3 iterations.
        var s = Rl("per_device_train_batch_size: 4, gradient_accumulation_steps: 2, steps_per_generation: 4, num_generations: 4, max_steps: 5");
        Assert.Equal((4, 8, 3), (s.PromptsPerIteration, s.MiniBatchSize, s.Iterations));

        Assert.Equal(LossAggregation.TokenMean, Rl("loss_type: dapo").Aggregation);
        Assert.True(Rl("scale_rewards: group").ScaleByStd);
        var e = Assert.Throws<RecipeException>(() => Rl("per_device_train_batch_size: 3, num_generations: 2"));
        Assert.Contains("multiple of num_generations (2)", e.Message);

        static global::Sharpen.Training.Rl.RlOptions Rl(string keys) =>
            Recipe.Parse($"kind: rl\ntask: {{ name: countdown }}\nmodel: {{ path: m }}\nrl: {{ {keys} }}\n", "r.yaml").RlOptions();
    }

    [Fact]
    public void Epochs_become_steps_as_transformers_counts_them()
    {
        Assert.Equal(5, EpochSteps.Steps(1.5, 10, 4, 1));   // ⌈10/4⌉ = 3 batches per epoch, ⌈1.5 × 3⌉ = 5
        Assert.Equal(4, EpochSteps.Steps(2, 10, 2, 2));     // 5 batches, ⌊5/2⌋ = 2 steps per epoch, × 2
        Assert.Equal(1, EpochSteps.Steps(0.5, 3, 4, 1));    // 1 batch; ⌈0.5⌉ = 1
        Assert.Equal(1, EpochSteps.Steps(1, 3, 1, 8));      // 3 batches, ⌊3/8⌋ = 0 → at least one step per epoch
        Assert.Equal(3, EpochSteps.Warmup(0.25, 10));
        var sized = new global::Sharpen.Training.Sft.SftOptions { Epochs = 0.5, BatchSize = 4, GradientAccumulation = 1, WarmupRatio = 0.5 }.Sized(17);
        Assert.Equal((3, 2, (double?)null), (sized.MaxSteps, sized.WarmupSteps, sized.Epochs));  // ⌈17/4⌉ = 5 batches, ⌈2.5⌉ = 3; ⌈1.5⌉ = 2
    }

    [Fact]
    public void Trl_config_places_every_key()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("ds"));
        File.WriteAllText(dir.File("ds/train.jsonl"), "{\"prompt\": \"a\", \"completion\": \"b\"}\n");
        File.WriteAllText(dir.File("ds/test.jsonl"), "{\"prompt\": \"a\", \"completion\": \"b\"}\n");
        var flat = JsonNode.Parse($$"""
            {"model_name_or_path": "m", "output_dir": "o", "seed": 7, "dataset_name": "{{dir.File("ds")}}", "dataset_test_split": "test",
             "learning_rate": 0.0001, "per_device_train_batch_size": 2, "use_peft": true, "lora_r": 4, "bf16": false, "report_to": "none"}
            """)!.AsObject();
        var recipe = Recipe.FromJson(TrlConfig.Translate(flat, "sft", "c.yaml"), "c.yaml");
        Assert.Equal(("m", "o", 7, 7), (recipe.Model.Path, recipe.Output, recipe.Seed, recipe.Sft.Seed));
        Assert.Equal(Path.GetFullPath(dir.File("ds/train.jsonl")), recipe.Data.Train);
        Assert.Equal(Path.GetFullPath(dir.File("ds/test.jsonl")), recipe.Data.Test);
        Assert.Equal((0.0001, 2), (recipe.Sft.LearningRate, recipe.Sft.BatchSize));
        Assert.Equal((4, 32.0, 0.05), (recipe.Model.Lora!.R, recipe.Model.Lora.Alpha, recipe.Model.Lora.Dropout));
        Assert.Equal(["q_proj", "v_proj"], recipe.Model.Lora.TargetModules);
        // TRL's SFTConfig defaults: assistant_only_loss false (a "messages" row trains its whole text), completion_only_loss None.
        Assert.Equal((false, (bool?)null), (recipe.Sft.AssistantOnlyLoss, recipe.Sft.CompletionOnlyLoss));
        flat["assistant_only_loss"] = true;
        flat["completion_only_loss"] = false;
        recipe = Recipe.FromJson(TrlConfig.Translate(flat, "sft", "c.yaml"), "c.yaml");
        Assert.Equal((true, (bool?)false), (recipe.Sft.AssistantOnlyLoss, recipe.Sft.CompletionOnlyLoss));
    }

    [Fact]
    public void Epochs_are_accepted_by_every_step_counted_trainer()
    {
        // 10 items at batch 4: ⌈10/4⌉ = 3 steps per epoch; 1.5 epochs → ⌈4.5⌉ = 5 steps; warm-up ⌈0.2 × 5⌉ = 1.
        StepSchedule[] schedules =
        [
            new PrmOptions { BatchSize = 4, Epochs = 1.5, WarmupRatio = 0.2 }.Validate(),
            new ImplicitPrmOptions { BatchSize = 4, Epochs = 1.5, WarmupRatio = 0.2 }.Validate(),
            new OfflinePolicyOptions { BatchSize = 4, Epochs = 1.5, WarmupRatio = 0.2 }.Validate(),
            new Sharpen.Training.Preference.PreferenceOptions { BatchSize = 4, Epochs = 1.5, WarmupRatio = 0.2 },
        ];
        foreach (var s in schedules)
        {
            var sized = StepSchedule.Sized(s, 10);
            Assert.Equal((5, 1), (sized.MaxSteps, sized.WarmupSteps));
        }
    }

    [Theory]
    [InlineData("{\"use_vllm\": true, \"packing\": true}", "sft", "TRL keys that Sharpen's sft does not implement: use_vllm, packing")]
    [InlineData("{\"bf16\": true}", "dpo", "does not implement: bf16: true")]
    [InlineData("{\"beta\": 0.1}", "sft", "does not implement: beta")]
    [InlineData("{\"learning_rte\": 0.1}", "sft", "unknown key (neither TRL's nor Sharpen's) 'learning_rte'; did you mean 'learning_rate'?")]
    [InlineData("{\"lora_r\": 8}", "sft", "without 'use_peft: true'")]
    [InlineData("{\"dataset_name\": \"trl-lib/Capybara\"}", "sft", "'dataset_name' is 'trl-lib/Capybara', which is not a local JSONL file or folder")]
    [InlineData("{}", "ppo", "--trainer is 'ppo'; known: sft, dpo, reward, grpo")]
    public void Trl_config_errors_name_the_key(string json, string trainer, string expected)
    {
        var e = Assert.Throws<RecipeException>(() => TrlConfig.Translate(JsonNode.Parse(json)!.AsObject(), trainer, "c.yaml"));
        Assert.StartsWith("c.yaml: ", e.Message);
        Assert.Contains(expected, e.Message);
    }
}
