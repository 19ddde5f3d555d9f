using System.CommandLine;
using System.Text.Json.Nodes;
using Sharpen.Cli.Commands;
using Sharpen.Training;
using Sharpen.Tasks;
using Sharpen.Data;

namespace Sharpen.Tests.Cli;

/// <summary>The commands run end to end on real files (tiny sizes).</summary>
[Collection("console")]
public class CommandTests
{
    static (int Code, string Out, string Err) Invoke(Command cmd, params string[] args) => CliHarness.Invoke(cmd, args);

    const string TinyConfig = """
    {"model_type":"qwen2","vocab_size":40,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,
     "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":128,"tie_word_embeddings":true}
    """;

    [Fact]
    public void Init_then_generate_prints_completions()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), TinyConfig);
        var (code, _, err) = Invoke(InitCommand.Create(), "--config", dir.File("config.json"), "--tokenizer", "chars:0123456789+-*/=() ", "--out", dir.File("m"));
        Assert.True(code == 0, err);
        foreach (var f in new[] { "config.json", "generation_config.json", "model.safetensors", "char_tokenizer.json" })
            Assert.True(File.Exists(Path.Combine(dir.File("m"), f)), f);

        var (code2, output, err2) = Invoke(GenerateCommand.Create(), "--model", dir.File("m"), "--prompt", "12+3=", "--samples", "3", "--max-new-tokens", "5", "--temperature", "0");
        Assert.True(code2 == 0, err2);
        Assert.Equal(3, output.Split('\n').Count(l => l.StartsWith("--- sample ")));
    }

    [Fact]
    public void Generate_with_chat_renders_the_prompt_with_the_checkpoint_template()
    {
        using var dir = new TempDir();
        var tok = dir.File("tok");
        Directory.CreateDirectory(tok);
        File.WriteAllText(Path.Combine(tok, "tokenizer.json"), Sharpen.Tests.Tokenizers.Gpt2TokenizerJson.Gpt2());
        // A template that reports what it was given: the run fails with its message only when --chat renders through it.
        File.WriteAllText(Path.Combine(tok, "tokenizer_config.json"),
            """{"eos_token": "<|endoftext|>", "chat_template": "{{ raise_exception('rendered ' + messages[0].role + ': ' + messages[0].content) }}"}""");
        File.WriteAllText(dir.File("config.json"), TinyConfig.Replace("\"vocab_size\":40", "\"vocab_size\":50257"));
        var (code, _, err) = Invoke(InitCommand.Create(), "--config", dir.File("config.json"), "--tokenizer", tok, "--out", dir.File("m"));
        Assert.True(code == 0, err);
        Assert.True(File.Exists(Path.Combine(dir.File("m"), "tokenizer_config.json")));

        var (plain, _, plainErr) = Invoke(GenerateCommand.Create(), "--model", dir.File("m"), "--prompt", "Hi", "--max-new-tokens", "2", "--temperature", "0");
        Assert.True(plain == 0, plainErr);
        var (chat, _, chatErr) = Invoke(GenerateCommand.Create(), "--model", dir.File("m"), "--prompt", "Hi", "--chat", "--max-new-tokens", "2");
        Assert.Equal(1, chat);
        Assert.Contains("rendered user: Hi", chatErr);
    }

    [Fact]
    public void Init_with_a_vocabulary_smaller_than_the_tokenizer_is_a_clear_error()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), TinyConfig.Replace("\"vocab_size\":40", "\"vocab_size\":5"));
        var (code, _, err) = Invoke(InitCommand.Create(), "--config", dir.File("config.json"), "--tokenizer", "chars:0123456789", "--out", dir.File("m"));
        Assert.Equal(1, code);
        Assert.Contains("'vocab_size' is 5 but the tokenizer has 14 tokens", err);
    }

    [Fact]
    public void Train_runs_a_recipe_and_resumes_it()
    {
        using var dir = new TempDir();
        var recipe = $"""
        kind: sft
        output: {dir.File("run")}
        model:
          init: {"{"} hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 96 {"}"}
        task: {"{"} name: countdown, min_numbers: 3, max_numbers: 3 {"}"}
        data: {"{"} train_problems: 120, test_problems: 10 {"}"}
        sft: {"{"} max_steps: 4, batch_size: 8, warmup_steps: 1, log_every: 1, eval_every: 2, eval_problems: 5, eval_max_new_tokens: 8, checkpoint_every: 2 {"}"}
        eval: {"{"} problems: 10, samples: 2, max_new_tokens: 8 {"}"}
        """;
        File.WriteAllText(dir.File("r.yaml"), recipe);
        var (code, output, err) = Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.True(code == 0, err + output);
        var run = dir.File("run");
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal(4, summary["steps"]!.GetValue<int>());
        foreach (var key in new[] { "accuracy", "pass_at_k", "maj_at_k", "n", "samples" }) Assert.NotNull(summary[key]);
        Assert.Equal(10, summary["n"]!.GetValue<int>());
        Assert.Equal(2, summary["samples"]!.GetValue<int>());
        Assert.True(File.Exists(Path.Combine(run, "report.md")));
        Assert.True(File.Exists(Path.Combine(run, "loss.png")));
        Assert.True(File.Exists(Path.Combine(run, "final", "model.safetensors")));
        Assert.Equal(["checkpoint-2"], Directory.GetDirectories(Path.Combine(run, "checkpoints")).Select(Path.GetFileName));
        Assert.Equal(4, new RunLog(run, append: true).ReadMetrics().Count);

        // Resuming a finished run continues from its last checkpoint (step 2) to the end again.
        var (code2, output2, err2) = Invoke(TrainCommand.Create(), dir.File("r.yaml"), "--resume");
        Assert.True(code2 == 0, err2);
        Assert.Contains("resumed from", output2);
        Assert.Equal([1, 2, 3, 4], new RunLog(run, append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>()));
    }

    [Fact]
    public void Train_stops_at_a_malformed_line_unless_told_to_skip_and_count()
    {
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("d.jsonl"), [
            """{"prompt":"1+1=","completion":"2"}""", """{"prompt":"2+2=","completion":"4"}""", """{"prompt":"3+3=" """, """{"prompt":"4+4=","completion":"8"}""",
        ]);
        File.WriteAllText(dir.File("r.yaml"), $"""
        kind: sft
        output: {dir.File("run")}
        model: {"{"} init: {"{"} hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2 {"}"}, tokenizer: "chars:0123456789+=" {"}"}
        data: {"{"} train: {dir.File("d.jsonl")} {"}"}
        sft: {"{"} max_steps: 2, batch_size: 2, warmup_steps: 0, eval_every: 0, checkpoint_every: 0 {"}"}
        """);
        var (code, _, err) = Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.Equal(1, code);
        Assert.Contains("d.jsonl:3:", err);
        var (code2, output, err2) = Invoke(TrainCommand.Create(), dir.File("r.yaml"), "--skip-bad-lines");
        Assert.True(code2 == 0, err2);
        Assert.Contains("skipped 1 malformed lines", output);
        Assert.Equal(1, JsonNode.Parse(File.ReadAllText(dir.File("run/summary.json")))!["skipped_lines"]!.GetValue<int>());
    }

    [Fact]
    public void A_bad_recipe_is_one_error_line_naming_the_key()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("r.yaml"), "model: { path: m }\ntask: { name: countdown }\nsft: { batch_sise: 2 }\n");
        var (code, output, err) = Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.Equal(1, code);
        Assert.StartsWith("error: ", err);
        Assert.Contains("'sft.batch_sise'", err);
        Assert.DoesNotContain("   at ", err + output);   // no stack trace
    }

    [Fact]
    public void Eval_writes_summary_fields_and_a_row_per_problem()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), TinyConfig);
        var task = Sharpen.Tasks.TaskRegistry.Create("countdown");
        Assert.Equal(0, Invoke(InitCommand.Create(), "--config", dir.File("config.json"), "--tokenizer", "chars:" + task.Alphabet, "--out", dir.File("m")).Code);
        var (code, _, err) = Invoke(EvalCommand.Create(), "--model", dir.File("m"), "--task", "countdown", "--n", "6", "--samples", "3",
            "--temperature", "1.0", "--max-new-tokens", "6", "--out", dir.File("e"));
        Assert.True(code == 0, err);
        var summary = JsonNode.Parse(File.ReadAllText(dir.File("e/summary.json")))!;
        Assert.Equal(6, summary["n"]!.GetValue<int>());
        Assert.Equal(3, summary["samples"]!.GetValue<int>());
        foreach (var key in new[] { "accuracy", "pass_at_k", "maj_at_k", "mean_completion_tokens", "verdicts" }) Assert.NotNull(summary[key]);
        Assert.Equal(6, File.ReadAllLines(dir.File("e/metrics.jsonl")).Length);
    }

    [Fact]
    public void Quickstart_records_its_stages()
    {
        using var dir = new TempDir();
        var summary = QuickstartCommand.Run(new QuickstartCommand.Settings
        {
            Out = dir.Path, TrainProblems = 100, TestProblems = 8, SftSteps = 3, BatchSize = 8, HiddenSize = 32, Layers = 1,
            RlIterations = 2, RlPrompts = 4, RlSamples = 2,
        }, _ => { });
        var stages = summary["stages"]!.AsArray();
        Assert.Equal(["sft", "grpo"], stages.Select(s => s!["name"]!.GetValue<string>()));
        foreach (var stage in stages)
        {
            Assert.Equal(8, stage!["n"]!.GetValue<int>());
            Assert.InRange(stage["accuracy"]!.GetValue<double>(), 0, 1);
            Assert.True(stage["seconds"]!.GetValue<double>() > 0);
        }
        Assert.True(File.Exists(Path.Combine(dir.Path, "summary.json")));
        Assert.True(File.Exists(Path.Combine(dir.Path, "report.md")));
        Assert.True(File.Exists(Path.Combine(dir.Path, "metrics.jsonl")));
    }

    [Fact]
    public void Quickstart_settings_reach_the_model_and_the_task()
    {
        var recipe = QuickstartCommand.SftRecipe(new QuickstartCommand.Settings { HiddenSize = 64, Layers = 2, UseAllNumbers = true });
        Assert.Equal(64, recipe.Model.Init!["hidden_size"]!.GetValue<int>());
        Assert.Equal(2, recipe.Model.Init["num_hidden_layers"]!.GetValue<int>());
        Assert.Equal(2, recipe.Model.Init["num_attention_heads"]!.GetValue<int>());   // 64 / 32
        // With every number used, each reference answer has exactly the three given numbers; by default some use two.
        static int[] NumbersUsed(Sharpen.Tasks.IVerifiableTask t) => t.Generate(200, 5)
            .Select(p => System.Text.RegularExpressions.Regex.Matches(p.Answer, "[0-9]+").Count).ToArray();
        Assert.All(NumbersUsed(recipe.Task!.Build("test")), n => Assert.Equal(3, n));
        Assert.Contains(2, NumbersUsed(QuickstartCommand.SftRecipe(new QuickstartCommand.Settings()).Task!.Build("test")));
    }

    [Fact]
    public void Quickstart_flags_reach_its_settings()
    {
        QuickstartCommand.Settings? seen = null;
        var code = QuickstartCommand.Create(s => seen = s).Parse(["--train-problems", "2000", "--sft-steps", "300", "--rl-iterations", "80", "--rl-beta", "0"]).Invoke();
        Assert.Equal(0, code);
        Assert.Equal((2000, 300, 80, 0.0), (seen!.TrainProblems, seen.SftSteps, seen.RlIterations, seen.RlBeta));
        Assert.Equal(2000, QuickstartCommand.SftRecipe(seen).Data.TrainProblems);
        QuickstartCommand.Create(s => seen = s).Parse([]).Invoke();
        Assert.Equal(new QuickstartCommand.Settings(), seen);   // no flags: the documented defaults
    }

    [Fact]
    public void The_library_example_runs_with_tiny_settings()
    {
        using var dir = new TempDir();
        var (oldOut, w) = (Console.Out, new StringWriter());
        Console.SetOut(w);
        try { Assert.Equal(0, Sharpen.Examples.SftCountdown.Main(["--tiny", "--out", dir.Path])); }
        finally { Console.SetOut(oldOut); }
        Assert.Contains("held-out greedy accuracy", w.ToString());
        Assert.True(File.Exists(Path.Combine(dir.Path, "summary.json")));
    }

    [Fact]
    public void The_grpo_lora_example_runs_with_tiny_settings()
    {
        using var dir = new TempDir();
        var (oldOut, w) = (Console.Out, new StringWriter());
        Console.SetOut(w);
        try { Assert.Equal(0, Sharpen.Examples.GrpoLora.Main(["--tiny", "--out", dir.Path])); }
        finally { Console.SetOut(oldOut); }
        // Tiny model: hidden 32, MLP 64, 1 layer, 2 heads of 16; rank 8 on q, k, v, o (8·(32+32) each), gate, up (8·(32+64)), down (8·(64+32)).
        Assert.Contains($"LoRA: {4 * 8 * 64 + 3 * 8 * 96} of ", w.ToString());
        Assert.Contains("reward/short", File.ReadAllText(Path.Combine(dir.Path, "metrics.jsonl")));
        Assert.True(File.Exists(Path.Combine(dir.Path, "final", "adapter", "adapter_model.safetensors")));
    }

    [Fact]
    public async Task The_chat_client_example_runs_with_tiny_settings()
    {
        using var dir = new TempDir();
        var (oldOut, w) = (Console.Out, new StringWriter());
        Console.SetOut(w);
        try { Assert.Equal(0, await Sharpen.Examples.ChatClientExample.Main(["--tiny", "--out", dir.Path])); }
        finally { Console.SetOut(oldOut); }
        var text = w.ToString();
        Assert.Contains("user: And times 4?", text);
        Assert.Equal(8, text.Split('\n').Count(l => l.StartsWith("parallel ", StringComparison.Ordinal)));
        // 2 + 1 + 8 requests; the 8 parallel ones must not all have run alone.
        var batches = System.Text.RegularExpressions.Regex.Match(text, @"batches run: (\d+) for 11 requests");
        Assert.True(batches.Success, text);
        Assert.True(int.Parse(batches.Groups[1].Value) < 11);
    }
}
