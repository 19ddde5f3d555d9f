using System.Text.Json.Nodes;
using Sharpen.Cli.Commands;
using Sharpen.Training;
using Sharpen.Recipes;
using Sharpen.Training.Rl;
using Sharpen.Data;

namespace Sharpen.Tests.Cli;

/// <summary>
/// The shipped CoPG, A-LoL and C-RLFT recipes through <c>sharpen train</c>, tiny: the recipe text is used as shipped, with
/// only the model (a fresh tiny one), the data file, the output folder and the step counts replaced.
/// </summary>
[Collection("console")]
public class OfflineRecipeCommandTests
{
    const string Alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789: ";

    static string Tiny(string file, TempDir dir, string data, params (string From, string To)[] more)
    {
        var text = File.ReadAllText(RepoPaths.Of("recipes", file));
        (string, string)[] replacements =
        [
            ("  path: runs/sft-countdown/final", $"  init: {{ hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 64 }}\n  tokenizer: \"chars:{Alphabet}\""),
            ($"output: runs/{Path.GetFileNameWithoutExtension(file)}", $"output: {dir.File("run")}"),
            ($"  train: {data}", $"  train: {dir.File("data.jsonl")}"),
            .. more,
        ];
        foreach (var (from, to) in replacements)
        {
            Assert.Contains(from, text);
            text = text.Replace(from, to);
        }
        var path = dir.File(file);
        File.WriteAllText(path, text);
        return path;
    }

    static JsonNode Summary(TempDir dir) => JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("run"), "summary.json")))!;

    static void WriteScored(TempDir dir) => File.WriteAllLines(dir.File("data.jsonl"),
    [
        """{"prompt": "ab", "completion": "cd", "reward": 1.0}""",
        """{"prompt": "ab", "completion": "dc", "reward": 0.0, "logprob": -4.2}""",
        """{"prompt": "ab", "completion": "c", "reward": 0.5, "logprobs": [-1.0, -0.5]}""",
        """{"prompt": "ba", "completion": "a", "reward": 0.2}""",
        """{"prompt": "ba", "completion": "bb", "reward": 0.9}""",
    ]);

    [Fact]
    public void Copg_recipe_runs_and_resumes()
    {
        using var dir = new TempDir();
        WriteScored(dir);
        var recipe = Tiny("copg-scored.yaml", dir, "data/scored.jsonl", ("  max_steps: 200", "  max_steps: 4"),
            ("  batch_size: 16         # pairs per step", "  batch_size: 2"), ("  checkpoint_every: 100", "  checkpoint_every: 2"), ("  log_every: 10", "  log_every: 1"));
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), recipe);
        Assert.True(code == 0, err + output);
        // Pairs: prompt "ab" has 3 completions → 3 pairs; "ba" has 2 → 1 pair.
        Assert.Contains("copg: 4 steps on 4 pairs from 5 scored completions", output);
        var summary = Summary(dir);
        Assert.Equal(4, summary["pairs"]!.GetValue<int>());
        Assert.Equal(0, summary["skipped_lines"]!.GetValue<int>());
        Assert.True(File.Exists(Path.Combine(dir.File("run"), "final", "model.safetensors")));

        // --resume picks up the step-2 checkpoint and runs steps 3 and 4 again; the metrics keep one row per step.
        (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), recipe, "--resume");
        Assert.True(code == 0, err + output);
        Assert.Contains("resumed from", output);
        Assert.Equal([1, 2, 3, 4], new RunLog(dir.File("run"), append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>()));
    }

    [Fact]
    public void Alol_recipe_runs()
    {
        using var dir = new TempDir();
        WriteScored(dir);
        var recipe = Tiny("alol-scored.yaml", dir, "data/scored.jsonl", ("  max_steps: 200", "  max_steps: 3"),
            ("  batch_size: 16             # kept rows per step", "  batch_size: 2"), ("  value_fit_steps: 200", "  value_fit_steps: 20"));
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), recipe);
        Assert.True(code == 0, err + output);
        Assert.Contains("alol: 3 steps on", output);
        var summary = Summary(dir);
        Assert.Equal(5, summary["rows"]!.GetValue<int>());
        Assert.InRange(summary["kept_rows"]!.GetValue<int>(), 1, 5);
        Assert.NotNull(summary["value_mse"]);
    }

    [Fact]
    public void Crlft_recipe_runs_and_an_unknown_class_names_file_line()
    {
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("data.jsonl"),
        [
            """{"prompt": "ab", "completion": "cd", "source": "gpt4"}""",
            """{"prompt": "ba", "completion": "dc", "source": "gpt35"}""",
            """{"messages": [{"role": "user", "content": "abc"}, {"role": "assistant", "content": "d"}], "source": "gpt4"}""",
        ]);
        (string, string)[] small = [("  max_steps: 400", "  max_steps: 3"), ("  batch_size: 32", "  batch_size: 2"), ("  warmup_steps: 20", "  warmup_steps: 0")];
        var recipe = Tiny("crlft-sources.yaml", dir, "data/sources.jsonl", small);
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), recipe);
        Assert.True(code == 0, err + output);
        Assert.Equal(3, Summary(dir)["steps"]!.GetValue<int>());

        File.AppendAllLines(dir.File("data.jsonl"), ["""{"prompt": "ab", "completion": "cd", "source": "human"}"""]);
        (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), recipe);
        Assert.Equal(1, code);
        Assert.Contains("data.jsonl:4", err + output);
        Assert.Contains("known classes: \"gpt35\", \"gpt4\"", err + output);
    }

    [Theory]
    [InlineData("offline_pg: { bta: 0.1 }", "'offline_pg.bta'")]
    [InlineData("offline_pg: { loss: ppo }", "offline_pg.loss: unknown loss 'ppo'. Known: copg, alol, direct_advantage_po.")]
    [InlineData("offline_pg: { clip: 1.5 }", "offline_pg.clip must be in (0, 1)")]
    [InlineData("offline_pg: { alol_variant: ppo }", "'offline_pg.alol_variant'")]
    [InlineData("offline_pg: { alol_sampling: greedy }", "'offline_pg.alol_sampling'")]
    [InlineData("offline_pg: { value_folds: 0 }", "offline_pg.value_folds must be positive, got 0")]
    public void Bad_offline_pg_keys_are_named(string section, string expected)
    {
        var e = Assert.Throws<RecipeException>(() => Recipe.Parse($"kind: offline_pg\nmodel: {{ path: m }}\ndata: {{ train: d.jsonl }}\n{section}\n", "r.yaml"));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("r.yaml", e.Message);
    }

    [Theory]
    [InlineData("copg-scored.yaml", "offline_pg")]
    [InlineData("alol-scored.yaml", "offline_pg")]
    [InlineData("crlft-sources.yaml", "sft")]
    public void Shipped_recipes_parse_with_the_papers_defaults(string file, string kind)
    {
        var r = Recipe.Load(RepoPaths.Of("recipes", file));
        Assert.Equal(kind, r.Kind);
        if (file.StartsWith("copg")) Assert.Equal(("copg", 0.1), (r.OfflinePolicyOptions().Loss, r.OfflinePolicyOptions().Beta));
        if (file.StartsWith("alol"))
        {
            var o = r.OfflinePolicyOptions();
            Assert.Equal(("alol", 0.9, AlolVariant.Main, AlolSampling.Advantage, 5), (o.Loss, o.Clip, o.AlolVariant, o.AlolSampling, o.ValueFolds));
            // Every variant and sampling binds from its recipe spelling.
            OfflinePolicyOptions With(string key, string value) => Recipe.Parse(string.Join("\n",
                File.ReadAllLines(RepoPaths.Of("recipes", file)).Select(l => l.StartsWith($"  {key}:") ? $"  {key}: {value}" : l)), "r.yaml").OfflinePolicyOptions();
            Assert.Equal(AlolVariant.RefFree, With("alol_variant", "ref_free").AlolVariant);
            Assert.Equal(AlolVariant.Seq, With("alol_variant", "seq").AlolVariant);
            Assert.Equal(AlolVariant.Kl, With("alol_variant", "kl").AlolVariant);
            Assert.Equal(AlolSampling.Uniform, With("alol_sampling", "uniform").AlolSampling);
            Assert.Equal(3, With("value_folds", "3").ValueFolds);
        }
        if (file.StartsWith("crlft"))
        {
            Assert.Equal(1.0, r.Sft.ClassWeights!["gpt4"]);
            Assert.Equal(0.1, r.Sft.ClassWeights!["gpt35"]);
            Assert.Equal("gpt4", r.Sft.ExpertClass());
        }
    }
}
