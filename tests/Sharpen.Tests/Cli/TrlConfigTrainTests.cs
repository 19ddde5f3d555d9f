using System.Text.Json.Nodes;
using Sharpen.Cli.Commands;

namespace Sharpen.Tests.Cli;

/// <summary><c>sharpen train --trl-config FILE --trainer sft|dpo|reward|grpo</c> end to end on a tiny model folder, with TRL's key
/// names and a local <c>dataset_name</c> folder. Step counts are worked out from the TRL keys by hand in each test.</summary>
[Collection("console")]
public class TrlConfigTrainTests
{
    const string Config = """
        {"model_type":"llama","vocab_size":8,"hidden_size":16,"intermediate_size":32,"num_hidden_layers":1,
         "num_attention_heads":2,"num_key_value_heads":2,"max_position_embeddings":64,"tie_word_embeddings":true}
        """;

    static string Model(TempDir dir)
    {
        File.WriteAllText(dir.File("config.json"), Config);
        return InitCommand.Run(dir.File("config.json"), "chars:abcd", dir.File("model"), seed: 1);
    }

    static JsonNode Summary(string run) => JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
    static int MetricRows(string run) => File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Count(l => l.Trim().Length > 0);

    static void WritePairs(string folder)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllLines(Path.Combine(folder, "train.jsonl"),
        [
            """{"prompt": "ab", "chosen": "cd", "rejected": "dc"}""",
            """{"prompt": "ba", "chosen": "dd", "rejected": "cc"}""",
            """{"prompt": "a", "chosen": "bc", "rejected": "ca"}""",
            """{"prompt": "c", "chosen": "ab", "rejected": "ba"}""",
            """{"prompt": "d", "chosen": "aa", "rejected": "bb"}""",
        ]);
    }

    static (int Code, string Out, string Err) Train(string config, string trainer, params string[] extra) =>
        CliHarness.Invoke(TrainCommand.Create(), ["--trl-config", config, "--trainer", trainer, .. extra]);

    [Fact]
    public void Sft_config_runs_fractional_epochs()
    {
        using var dir = new TempDir();
        var model = Model(dir);
        Directory.CreateDirectory(dir.File("data"));
        File.WriteAllLines(dir.File("data/train.jsonl"), Enumerable.Range(0, 10).Select(i => $$"""{"prompt": "{{"ab"[i % 2]}}", "completion": "{{"cd"[i % 2]}}"}"""));
        var run = dir.File("run");
        // 10 examples, per_device 2 → 5 micro-batches per epoch, ⌊5 / accumulation 2⌋ = 2 steps per epoch, 1.5 epochs → ⌈3⌉ = 3 steps.
        File.WriteAllText(dir.File("sft.yaml"), $"""
            model_name_or_path: {model}
            dataset_name: {dir.File("data")}
            output_dir: {run}
            per_device_train_batch_size: 2
            gradient_accumulation_steps: 2
            num_train_epochs: 1.5
            learning_rate: 1.0e-3
            lr_scheduler_type: cosine
            warmup_ratio: 0.1
            logging_steps: 1
            save_steps: 2
            max_length: 32
            seed: 3
            report_to: tensorboard
            bf16: false
            """);
        var (code, output, err) = Train(dir.File("sft.yaml"), "sft");
        Assert.True(code == 0, err + output);
        Assert.Equal(3, Summary(run)["steps"]!.GetValue<int>());
        Assert.Equal(3, MetricRows(run));
        Assert.True(File.Exists(Path.Combine(run, "final", "model.safetensors")));

        // save_steps 2 → checkpoints/checkpoint-2 with transformers' trainer_state.json fields; rows of steps 1 and 2 in log_history.
        var state = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "checkpoints", "checkpoint-2", "trainer_state.json")))!;
        Assert.Equal(2, state["global_step"]!.GetValue<int>());
        Assert.True(state.AsObject().ContainsKey("best_model_checkpoint"));
        var history = state["log_history"]!.AsArray();
        Assert.Equal([1, 2], history.Select(h => h!["step"]!.GetValue<int>()));
        // epoch as a fraction of passes, as TRL logs it: 4 of the 10 examples per step → 0.4, 0.8; the state's epoch is 0.8.
        Assert.Equal([0.4, 0.8], history.Select(h => h!["epoch"]!.GetValue<double>()));
        Assert.Equal(0.8, state["epoch"]!.GetValue<double>());
        Assert.All(history, h => Assert.True(h!["loss"]!.GetValue<double>() > 0));
        Assert.All(history, h => Assert.Equal(h!["lr"]!.GetValue<double>(), h["learning_rate"]!.GetValue<double>()));
        // Model card with the config as given, and a TensorBoard file beside metrics.jsonl.
        var card = File.ReadAllText(Path.Combine(run, "final", "README.md"));
        Assert.StartsWith("---\nlibrary_name: sharpen\n", card);
        Assert.Contains($"base_model: \"{model}\"", card);
        Assert.Contains("num_train_epochs: 1.5", card);
        Assert.Contains("| steps | 3 |", card);
        Assert.Single(Directory.GetFiles(run, "events.out.tfevents.*"));
    }

    [Fact]
    public void Dpo_config_runs_with_trl_loss_type()
    {
        using var dir = new TempDir();
        var model = Model(dir);
        WritePairs(dir.File("pairs"));
        var run = dir.File("run");
        // 5 pairs; per_device 2 × accumulation 2 = 4 pairs per step → ⌈5/4⌉ = 2 steps per epoch, 2 epochs → 4 steps.
        File.WriteAllText(dir.File("dpo.yaml"), $"""
            model_name_or_path: {model}
            dataset_name: {dir.File("pairs")}
            output_dir: {run}
            per_device_train_batch_size: 2
            gradient_accumulation_steps: 2
            num_train_epochs: 2
            loss_type: ipo
            beta: 0.5
            learning_rate: 1.0e-3
            warmup_steps: 0
            logging_steps: 1
            """);
        var (code, output, err) = Train(dir.File("dpo.yaml"), "dpo");
        Assert.True(code == 0, err + output);
        var s = Summary(run);
        Assert.Equal(4, s["steps"]!.GetValue<int>());
        Assert.Equal("ipo", s["loss_name"]!.GetValue<string>());
        Assert.Equal(4, MetricRows(run));
    }

    [Fact]
    public void Reward_then_grpo_configs_run()
    {
        using var dir = new TempDir();
        var model = Model(dir);
        WritePairs(dir.File("pairs"));
        var rm = dir.File("rm");
        File.WriteAllText(dir.File("reward.yaml"), $"""
            model_name_or_path: {model}
            dataset_name: {dir.File("pairs")}
            output_dir: {rm}
            per_device_train_batch_size: 2
            max_steps: 3
            learning_rate: 1.0e-3
            warmup_steps: 0
            logging_steps: 1
            """);
        var (code, output, err) = Train(dir.File("reward.yaml"), "reward");
        Assert.True(code == 0, err + output);
        Assert.Equal(3, Summary(rm)["steps"]!.GetValue<int>());

        File.WriteAllLines(dir.File("prompts.jsonl"), ["""{"prompt": "ab"}""", """{"prompt": "ba"}""", """{"prompt": "c"}"""]);
        var run = dir.File("grpo");
        // per_device 4 = one generation round of 4 completions = 2 prompts × num_generations 2; one step per round; max_steps 2 → 2 iterations.
        File.WriteAllText(dir.File("grpo.yaml"), $"""
            model_name_or_path: {model}
            dataset_name: {dir.File("prompts.jsonl")}
            reward_model_name_or_path: {rm}/final
            output_dir: {run}
            per_device_train_batch_size: 4
            num_generations: 2
            max_completion_length: 4
            max_steps: 2
            beta: 0.0
            learning_rate: 1.0e-4
            loss_type: dr_grpo
            """);
        (code, output, err) = Train(dir.File("grpo.yaml"), "grpo");
        Assert.True(code == 0, err + output);
        var s = Summary(run);
        Assert.Equal(2, s["iterations"]!.GetValue<int>());
        Assert.Equal("grpo", s["algorithm"]!.GetValue<string>());
    }

    [Fact]
    public void Bad_invocations_are_one_line_errors()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("c.yaml"), "use_vllm: true\nlearning_rate: 0.001\n");
        var (code, _, err) = Train(dir.File("c.yaml"), "grpo");
        Assert.NotEqual(0, code);
        Assert.Contains("c.yaml: TRL keys that Sharpen's grpo does not implement: use_vllm", err);
        (code, _, err) = CliHarness.Invoke(TrainCommand.Create(), "--trl-config", dir.File("c.yaml"));
        Assert.NotEqual(0, code);
        Assert.Contains("--trl-config needs --trainer", err);
    }
}
