using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Cli;
using Sharpen.Cli.Commands;
using Sharpen.Tests.Rewards;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Recipes;
using Sharpen.Data;

namespace Sharpen.Tests.Cli;

/// <summary>
/// Every bad input of issue 14 ends as one <c>error: ...</c> line naming what was wrong, exit code 1, and no stack trace
/// (which only <c>--debug</c> prints); a failed <c>train</c> marks its output folder.
/// </summary>
[Collection("console")]
public class ErrorLineTests
{
    const string TinyConfig = """
    {"model_type":"llama","vocab_size":40,"hidden_size":16,"intermediate_size":32,"num_hidden_layers":1,
     "num_attention_heads":2,"max_position_embeddings":64,"tie_word_embeddings":true}
    """;

    /// <summary>The error output is exactly one line starting "error: " and holding every one of <paramref name="parts"/>.</summary>
    static void OneLine(int code, string err, params string[] parts)
    {
        Assert.Equal(1, code);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, err);
        Assert.StartsWith("error: ", lines[0]);
        Assert.DoesNotContain("   at ", err);
        foreach (var p in parts) Assert.Contains(p, lines[0]);
    }

    static string InitModel(TempDir dir, string tokenizer = "chars:abcd")
    {
        File.WriteAllText(dir.File("config.json"), TinyConfig);
        var (code, _, err) = CliHarness.Invoke(InitCommand.Create(), "--config", dir.File("config.json"), "--tokenizer", tokenizer, "--out", dir.File("m"));
        Assert.True(code == 0, err);
        return dir.File("m");
    }

    [Fact]
    public void A_yaml_syntax_error_is_one_line_naming_file_and_line_and_debug_adds_the_stack()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("r.yaml"), "kind: sft\nmodel: { init: { hidden_size: 16\n");
        var (code, _, err) = CliHarness.Root("train", dir.File("r.yaml"));
        OneLine(code, err, "r.yaml:3: invalid YAML");
        var (code2, _, err2) = CliHarness.Root("train", dir.File("r.yaml"), "--debug");
        Assert.Equal(1, code2);
        Assert.Contains("RecipeException", err2);
        Assert.Contains("   at ", err2);
    }

    [Fact]
    public void A_lone_surrogate_escape_in_jsonl_is_a_bad_line_naming_file_and_line()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("train.jsonl"), "{\"prompt\": \"ab\", \"completion\": \"cd\"}\n{\"prompt\": \"a\\ud800\", \"completion\": \"b\"}\n");
        File.WriteAllText(dir.File("r.yaml"), $"""
            kind: sft
            output: {dir.File("run")}
            model: {"{"} init: {"{"} hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2 {"}"}, tokenizer: "chars:abcd" {"}"}
            data: {"{"} train: {dir.File("train.jsonl")} {"}"}
            sft: {"{"} max_steps: 1, batch_size: 1 {"}"}
            """);
        var (code, _, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        OneLine(code, err, "train.jsonl:2:", "\\ud800");
    }

    [Fact]
    public void Invalid_utf8_in_a_safetensors_tensor_name_is_one_line_naming_the_file()
    {
        using var dir = new TempDir();
        var model = InitModel(dir);
        var path = Path.Combine(model, "model.safetensors");
        var bytes = File.ReadAllBytes(path);
        var headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var at = Encoding.ASCII.GetString(bytes, 8, headerLength).IndexOf("embed_tokens", StringComparison.Ordinal);
        bytes[8 + at] = 0xFF;                                     // same length, not UTF-8
        File.WriteAllBytes(path, bytes);
        var (code, _, err) = CliHarness.Invoke(GenerateCommand.Create(), "--model", model, "--prompt", "ab", "--max-new-tokens", "2");
        OneLine(code, err, "model.safetensors", "not valid UTF-8");
    }

    [Fact]
    public void A_config_too_large_for_memory_is_a_clear_error_before_libtorch()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), TinyConfig.Replace("\"hidden_size\":16", "\"hidden_size\":1000000").Replace("\"num_hidden_layers\":1", "\"num_hidden_layers\":64"));
        var (code, _, err) = CliHarness.Invoke(InitCommand.Create(), "--config", dir.File("config.json"), "--tokenizer", "chars:abcd", "--out", dir.File("m"));
        // 64 layers of 4·10^12 + 3·10^6·32 parameters each: ~1e15 bytes, which no machine here has.
        OneLine(code, err, "config.json", "hidden_size 1000000", "GiB");
    }

    [Fact]
    public void A_tokenizer_with_more_ids_than_vocab_size_names_both_files()
    {
        using var dir = new TempDir();
        var model = InitModel(dir);
        CharTokenizer.Create(new string(Enumerable.Range(0, 60).Select(i => (char)('A' + i)).ToArray())).Save(model);   // 60 letters + specials > 40
        var (code, _, err) = CliHarness.Invoke(GenerateCommand.Create(), "--model", model, "--prompt", "AB", "--max-new-tokens", "2");
        OneLine(code, err, "char_tokenizer.json", "config.json", "vocab_size 40");
    }

    [Fact]
    public void Nan_weights_in_a_checkpoint_are_named_before_sampling()
    {
        using var dir = new TempDir();
        var model = InitModel(dir);
        var path = Path.Combine(model, "model.safetensors");
        var header = Safetensors.ReadHeader(path);
        var entry = header.Tensors["model.norm.weight"];
        var bytes = File.ReadAllBytes(path);
        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan((int)(header.DataStart + entry.Begin)), float.NaN);
        File.WriteAllBytes(path, bytes);
        var (code, _, err) = CliHarness.Invoke(GenerateCommand.Create(), "--model", model, "--prompt", "ab", "--max-new-tokens", "2");
        OneLine(code, err, "model.safetensors", "'model.norm.weight'", "1 non-finite value");
    }

    [Fact]
    public void An_empty_data_file_is_named_and_the_failed_run_leaves_no_half_made_folder()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("empty.jsonl"), "");
        File.WriteAllText(dir.File("r.yaml"), $"""
            kind: sft
            output: {dir.File("run")}
            model: {"{"} init: {"{"} hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2 {"}"}, tokenizer: "chars:abcd" {"}"}
            data: {"{"} train: {dir.File("empty.jsonl")} {"}"}
            """);
        var (code, _, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        OneLine(code, err, dir.File("empty.jsonl"), "no rows");
        // Either removed (nothing was written) or marked failed; never a folder that looks like a run.
        if (Directory.Exists(dir.File("run")))
            Assert.Equal("failed", JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("run"), "summary.json")))!["status"]!.GetValue<string>());
    }

    static string RlRecipe(string run, string url, string extra = "") => $"""
        kind: rl
        output: {run}
        model:
          init: {"{"} hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 96 {"}"}
        task: {"{"} name: countdown, min_numbers: 3, max_numbers: 3 {"}"}
        data: {"{"} train_problems: 8, test_problems: 2 {"}"}
        rewards:
          - {"{"} name: countdown {"}"}
          - {"{"} url: "{url}", name: judge, retries: 0{extra} {"}"}
        rl: {"{"} algorithm: grpo, iterations: 2, prompts_per_iteration: 2, samples_per_prompt: 3, max_new_tokens: 6, eval_every: 0, seed: 3 {"}"}
        eval: {"{"} problems: 2, samples: 1, max_new_tokens: 6 {"}"}
        """;

    /// <summary>A server that answers <paramref name="value"/> (raw JSON number text) for every item.</summary>
    static RewardServer Answering(string value) => new((body, _) =>
        (200, "{\"rewards\": [" + string.Join(", ", body["items"]!.AsArray().Select(_ => value)) + "]}"));

    [Theory]
    [InlineData("1e39", "1E+39")]
    [InlineData("1e999", "Infinity")]
    public void A_reward_beyond_range_stops_the_run_naming_the_server_and_marks_it_failed(string answer, string shown)
    {
        using var server = Answering(answer);
        using var dir = new TempDir();
        File.WriteAllText(dir.File("r.yaml"), RlRecipe(dir.File("run"), server.Url));
        var (code, _, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        OneLine(code, err, "reward 'judge'", server.Url, shown, "clip");
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("run"), "summary.json")))!;
        Assert.Equal("failed", summary["status"]!.GetValue<string>());
        Assert.Equal(err.Trim()["error: ".Length..], summary["error"]!.GetValue<string>());
        Assert.False(Directory.Exists(Path.Combine(dir.File("run"), "final")));
    }

    [Fact]
    public void With_clip_the_same_rewards_are_clipped_and_the_run_completes()
    {
        using var server = Answering("1e39");
        using var dir = new TempDir();
        File.WriteAllText(dir.File("r.yaml"), RlRecipe(dir.File("run"), server.Url, ", clip: [-1, 2]"));
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.True(code == 0, err + output);
        var rows = new RunLog(dir.File("run"), append: true).ReadMetrics();
        Assert.All(rows, r => Assert.Equal(2.0, r["reward/judge"]!.GetValue<double>()));   // every score clipped to the upper bound
        Assert.Equal("completed", JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("run"), "summary.json")))!["status"]!.GetValue<string>());
    }

    [Fact]
    public void A_misspelled_model_init_key_is_an_error_suggesting_the_right_one()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("r.yaml"), """
            kind: sft
            model: { init: { hiden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 8 } }
            task: { name: countdown }
            """);
        var (code, _, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        OneLine(code, err, "r.yaml", "unknown key 'model.init.hiden_size'; did you mean 'hidden_size'?");
    }

    [Fact]
    public void A_resumed_run_drops_a_torn_last_metrics_line_with_a_warning()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("run"));
        File.WriteAllText(Path.Combine(dir.File("run"), "metrics.jsonl"), "{\"step\": 1, \"loss\": 2.5}\n{\"step\": 2, \"lo");
        File.WriteAllText(dir.File("r.yaml"), $"""
            kind: sft
            output: {dir.File("run")}
            model:
              init: {"{"} hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 96 {"}"}
            task: {"{"} name: countdown, min_numbers: 3, max_numbers: 3 {"}"}
            data: {"{"} train_problems: 20, test_problems: 2 {"}"}
            sft: {"{"} max_steps: 2, batch_size: 4, log_every: 1, eval_every: 0 {"}"}
            eval: {"{"} problems: 2, samples: 1, max_new_tokens: 4 {"}"}
            """);
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"), "--resume");
        Assert.True(code == 0, err + output);
        Assert.Contains("dropped a torn last line", err);
        var steps = new RunLog(dir.File("run"), append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>()).ToList();
        Assert.Equal(steps.Distinct().Count(), steps.Count);    // every row parsed; no step twice
        Assert.Contains(2, steps);
    }
}
