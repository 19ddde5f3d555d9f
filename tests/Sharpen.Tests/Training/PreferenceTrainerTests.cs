using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Training.Preference;

namespace Sharpen.Tests.Training;

public class PreferenceTrainerTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcd");

    static CausalLM Model(long seed = 1) => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 16 }, seed);

    // After "a", "c" is preferred to "d"; after "b", "b" is preferred to "a".
    static List<PreferenceExample> Toy() =>
        [.. Enumerable.Repeat(new PreferenceExample("a", "c", "d"), 8), .. Enumerable.Repeat(new PreferenceExample("b", "b", "a"), 8)];

    static PreferenceOptions Quick(string loss = "dpo") =>
        new() { Loss = loss, MaxSteps = 3, BatchSize = 4, LearningRate = 1e-3, WarmupSteps = 0, LogEvery = 1 };

    static string Key(string dir) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(dir, PreferenceTrainer.ReferenceFile)))!["key"]!.GetValue<string>();

    // log π(chosen) − log π(rejected), summed over completion tokens (EOS included), for one pair.
    static double Margin(CausalLM model, PreferenceExample e)
    {
        IReadOnlyList<int> prompt = Tok.Encode(e.Prompt).ToArray();
        IReadOnlyList<int> c = Tok.Encode(e.Chosen, addSpecialTokens: false).Append(Tok.EosTokenId!.Value).ToArray();
        IReadOnlyList<int> r = Tok.Encode(e.Rejected, addSpecialTokens: false).Append(Tok.EosTokenId!.Value).ToArray();
        var s = Scoring.Score(model, [prompt, prompt], [c, r], Tok.PadTokenId ?? 0);
        return s[0].Sum() - s[1].Sum();
    }

    [Fact]
    public void The_first_logged_dpo_loss_is_ln2_because_the_policy_starts_as_the_reference()
    {
        using var dir = new TempDir();
        using var model = Model();
        new PreferenceTrainer(model, Tok, Quick() with { LearningRate = 1e-2 }).Run(Toy(), dir.Path);
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal(3, rows.Count);
        Assert.Equal(Math.Log(2), rows[0]["loss"]!.GetValue<double>(), 1e-4);
        Assert.Equal(0.0, rows[0]["margin"]!.GetValue<double>(), 1e-4);
        Assert.NotEqual(rows[0]["loss"]!.GetValue<double>(), rows[2]["loss"]!.GetValue<double>());
    }

    [Fact]
    public void Dpo_learns_the_toy_preferences_and_widens_the_margin_over_the_reference()
    {
        using var dir = new TempDir();
        using var model = Model(seed: 2);
        using var reference = Model(seed: 2);
        var o = new PreferenceOptions { MaxSteps = 40, BatchSize = 8, LearningRate = 1e-2, WarmupSteps = 2, LogEvery = 10 };
        var result = new PreferenceTrainer(model, Tok, o).Run(Toy(), dir.Path);
        Assert.Equal(40, result.Steps);
        Assert.Equal(1.0, result.FinalAccuracy);
        Assert.True(result.FinalLoss < 0.5 * Math.Log(2), $"final loss {result.FinalLoss}");
        foreach (var e in new[] { Toy()[0], Toy()[^1] })
        {
            double before = Margin(reference, e), after = Margin(model, e);
            Assert.True(after > before + 1, $"{e.Prompt}: margin {before} → {after}");
        }
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal([10, 20, 30, 40], rows.Select(r => r["step"]!.GetValue<int>()));
        foreach (var k in new[] { "loss", "accuracy", "margin", "chosen_reward", "rejected_reward", "lr", "grad_norm" })
            Assert.NotNull(rows[^1][k]);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal(40, summary["steps"]!.GetValue<int>());
        Assert.Equal("dpo", summary["loss_name"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(dir.Path, "final", "model.safetensors")));
    }

    [Fact]
    public void Reference_log_probs_are_cached_and_recomputed_when_a_pair_changes()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, PreferenceTrainer.ReferenceFile);
        List<string> Train(List<PreferenceExample> pairs)
        {
            var lines = new List<string>();
            using var model = Model();
            new PreferenceTrainer(model, Tok, Quick()) { Log = lines.Add }.Run(pairs, dir.Path);
            return lines;
        }

        var first = Train(Toy());
        Assert.Contains(first, l => l.StartsWith("reference log-probs: computed"));
        var key = Key(dir.Path);
        var written = File.GetLastWriteTimeUtc(path);
        var text = File.ReadAllText(path);

        var second = Train(Toy());
        Assert.Contains(second, l => l.StartsWith("reference log-probs: cached"));
        Assert.DoesNotContain(second, l => l.Contains("computed"));
        Assert.Equal(key, Key(dir.Path));
        Assert.Equal(written, File.GetLastWriteTimeUtc(path));
        Assert.Equal(text, File.ReadAllText(path));

        var changed = Toy();
        changed[3] = new PreferenceExample("a", "d", "c");
        var third = Train(changed);
        Assert.Contains(third, l => l.StartsWith("reference log-probs: computed"));
        Assert.NotEqual(key, Key(dir.Path));

        // Different starting weights (another reference) also change the key.
        var lines = new List<string>();
        using (var other = Model(seed: 7))
            new PreferenceTrainer(other, Tok, Quick()) { Log = lines.Add }.Run(changed, dir.Path);
        Assert.Contains(lines, l => l.StartsWith("reference log-probs: computed"));

        // A damaged cache file is recomputed, not trusted.
        File.WriteAllText(path, "{ not json");
        var fourth = Train(changed);
        Assert.Contains(fourth, l => l.StartsWith("reference log-probs: computed"));
        Assert.Equal(64, Key(dir.Path).Length);
    }

    [Theory]
    [InlineData("simpo")]
    [InlineData("orpo")]
    public void Reference_free_losses_run_without_a_reference(string loss)
    {
        using var dir = new TempDir();
        using var model = Model();
        var lines = new List<string>();
        var result = new PreferenceTrainer(model, Tok, Quick(loss)) { Log = lines.Add }.Run(Toy(), dir.Path);
        Assert.Equal(3, result.Steps);
        Assert.True(double.IsFinite(result.FinalLoss));
        Assert.False(File.Exists(Path.Combine(dir.Path, PreferenceTrainer.ReferenceFile)));
        Assert.DoesNotContain(lines, l => l.Contains("reference"));
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal(loss, summary["loss_name"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("cdpo")]
    [InlineData("rdpo")]
    [InlineData("ipo")]
    public void Other_reference_losses_run(string loss)
    {
        using var dir = new TempDir();
        using var model = Model();
        var result = new PreferenceTrainer(model, Tok, Quick(loss) with { LabelSmoothing = 0.1 }).Run(Toy(), dir.Path);
        Assert.True(double.IsFinite(result.FinalLoss));
        Assert.True(File.Exists(Path.Combine(dir.Path, PreferenceTrainer.ReferenceFile)));
    }

    [Fact]
    public void An_unknown_loss_fails_listing_the_known_ones()
    {
        using var model = Model();
        var e = Assert.Throws<ArgumentException>(() => new PreferenceTrainer(model, Tok, new PreferenceOptions { Loss = "kto" }));
        Assert.Contains("preference.loss", e.Message);
        Assert.Contains("kto", e.Message);
        Assert.Contains("dpo, cdpo, ipo, rdpo, orpo, simpo", e.Message);
    }

    [Fact]
    public void Bad_options_name_the_recipe_key()
    {
        Assert.Contains("preference.beta", Assert.Throws<ArgumentException>(() => new PreferenceOptions { Beta = 0 }.Validate()).Message);
        Assert.Contains("preference.flip_rate", Assert.Throws<ArgumentException>(() => new PreferenceOptions { FlipRate = 0.5 }.Validate()).Message);
        Assert.Contains("preference.batch_size", Assert.Throws<ArgumentException>(() => new PreferenceOptions { BatchSize = 0 }.Validate()).Message);
        Assert.Contains("preference.min_lr_ratio", Assert.Throws<ArgumentException>(() => new PreferenceOptions { MinLrRatio = 2 }.Validate()).Message);
    }
}
