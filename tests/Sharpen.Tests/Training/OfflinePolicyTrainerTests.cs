using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Training;
using Sharpen.Training.Preference;
using Sharpen.Training.Rl;

namespace Sharpen.Tests.Training;

/// <summary>CoPG and A-LoL trainers on the one-token bandit (prompt "a", reward 1 for "c" only), and their resume.</summary>
public class OfflinePolicyTrainerTests
{
    static readonly IReadOnlyDictionary<string, string> NoFields = new Dictionary<string, string>();

    // The four one-token completions of prompt "a", reward 1 for "c"; no behaviour log-probs (CoPG and A-LoL do not need them).
    static List<ScoredCompletion> BanditRows() =>
        new[] { "a", "b", "c", "d" }.Select(c => new ScoredCompletion("a", c, c == "c" ? 1.0 : 0.0, null, NoFields)).ToList();

    static JsonNode Summary(string dir) => JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")))!;

    [Fact]
    public void Copg_pairs_every_two_completions_of_a_prompt_and_raises_the_probability_of_the_rewarded_one()
    {
        using var dir = new TempDir();
        using var model = Bandit.Model(seed: 3);
        double before = Bandit.ProbabilityOfC(model);
        // Rows of a second prompt "b" with one completion form no pair: 4 choose 2 = 6 pairs in all.
        var rows = BanditRows().Append(new ScoredCompletion("b", "a", 1.0, null, NoFields)).ToList();
        var o = new OfflinePolicyOptions { Loss = "copg", Beta = 0.1, MaxSteps = 30, BatchSize = 6, LearningRate = 1e-2, WarmupSteps = 0, LogEvery = 10 };
        var result = new OfflinePolicyTrainer(model, Bandit.Tok, o).Run(rows, dir.Path);
        double after = Bandit.ProbabilityOfC(model);
        Assert.Equal(6, result.Items);
        Assert.True(before < 0.2 && after > 0.5, $"p(c) {before} → {after}");
        var summary = Summary(dir.Path);
        Assert.Equal(6, summary["pairs"]!.GetValue<int>());
        Assert.Equal(30, summary["steps"]!.GetValue<int>());
        var metrics = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal([10, 20, 30], metrics.Select(m => m["step"]!.GetValue<int>()));
        // Step 10 onwards: the implicit margin β·h has moved towards the reward margins, so |residual| < mean |ΔR| of a batch.
        // The first batch holds all 6 pairs: |ΔR| is 1 for the 3 pairs with "c", 0 otherwise → mean |ΔR| = 0.5.
        Assert.True(metrics[^1]["abs_residual"]!.GetValue<double>() < 0.5);
        Assert.True(File.Exists(Path.Combine(dir.Path, PreferenceTrainer.ReferenceFile)));
        Assert.True(File.Exists(Path.Combine(dir.Path, "final", "model.safetensors")));
    }

    [Fact]
    public void Copg_without_any_prompt_with_two_completions_says_so()
    {
        using var dir = new TempDir();
        using var model = Bandit.Model();
        var rows = new List<ScoredCompletion> { new("a", "c", 1, null, NoFields), new("b", "c", 0, null, NoFields) };
        var e = Assert.Throws<ArgumentException>(() => new OfflinePolicyTrainer(model, Bandit.Tok, new OfflinePolicyOptions()).Run(rows, dir.Path));
        Assert.Contains("two scored completions of the same prompt", e.Message);
    }

    [Theory]
    [InlineData(AlolVariant.Main)]
    [InlineData(AlolVariant.RefFree)]
    [InlineData(AlolVariant.Seq)]
    [InlineData(AlolVariant.Kl)]
    public void Alol_fits_the_reference_value_keeps_only_positive_advantages_and_raises_the_rewarded_completion(AlolVariant variant)
    {
        using var dir = new TempDir();
        using var model = Bandit.Model(seed: 3);
        double before = Bandit.ProbabilityOfC(model);
        // One prompt cannot be cross-fitted, so value_folds: 1 (in-sample). One prompt → one feature, so the MSE-optimal value
        // is the mean reward 1/4, with MSE = Var(R) = 1/4·3/4 = 0.1875. A = R − V: +0.75 for "c", −0.25 for the others → only
        // the "c" row is kept.
        var o = new OfflinePolicyOptions
        {
            Loss = "alol", AlolVariant = variant, ValueFolds = 1, MaxSteps = 30, BatchSize = 2, LearningRate = 1e-2, WarmupSteps = 0,
            LogEvery = 10, ValueFitSteps = 300,
        };
        var result = new OfflinePolicyTrainer(model, Bandit.Tok, o).Run(BanditRows(), dir.Path);
        Assert.Equal(0.1875, result.ValueMse, 3);
        Assert.Equal(1, result.Items);
        double after = Bandit.ProbabilityOfC(model);
        Assert.True(before < 0.2 && after > 0.5, $"p(c) {before} → {after}");
        var summary = Summary(dir.Path);
        Assert.Equal(1, summary["kept_rows"]!.GetValue<int>());
        Assert.Equal(0.25, summary["kept_fraction"]!.GetValue<double>(), 6);
        Assert.Equal((1, "advantage"), (summary["value_folds"]!.GetValue<int>(), summary["alol_sampling"]!.GetValue<string>()));
        Assert.Equal(variant.ToString().ToLowerInvariant(), summary["alol_variant"]!.GetValue<string>().Replace("_", ""));
        var first = new RunLog(dir.Path, append: true).ReadMetrics()[0];
        Assert.Equal(0.75, first["advantage"]!.GetValue<double>(), 3);
        // The sequence weight π/π_ref starts at 1 and rises for "c", clipped to at most 1 + ε = 1.9; ref_free and kl have
        // none (1); seq's per-token weights (of "c" and EOS) stay within [1 − ε, 1 + ε].
        var weight = first["weight"]!.GetValue<double>();
        if (variant is AlolVariant.RefFree or AlolVariant.Kl) Assert.Equal(1.0, weight);
        else Assert.InRange(weight, variant == AlolVariant.Seq ? 0.1 - 1e-6 : 1.0, 1.9 + 1e-6);
    }

    [Fact]
    public void Alol_with_one_prompt_and_the_default_cross_fit_says_what_to_do()
    {
        using var dir = new TempDir();
        using var model = Bandit.Model();
        var e = Assert.Throws<ArgumentException>(() => new OfflinePolicyTrainer(model, Bandit.Tok, new OfflinePolicyOptions { Loss = "alol" }).Run(BanditRows(), dir.Path));
        Assert.Contains("offline_pg.value_folds = 5", e.Message);
        Assert.Contains("value_folds: 1", e.Message);
    }

    [Fact]
    public void Alol_cross_fits_the_value_over_the_prompts_it_has()
    {
        // Three prompts < value_folds 5 → three folds of one prompt each; the log and summary say so.
        using var dir = new TempDir();
        using var model = Bandit.Model(seed: 2);
        var rows = new List<ScoredCompletion>
        {
            new("a", "c", 1, null, NoFields), new("a", "d", 0, null, NoFields), new("b", "a", 0.2, null, NoFields),
            new("b", "bb", 1, null, NoFields), new("ca", "d", 0.7, null, NoFields), new("ca", "ab", 0.1, null, NoFields),
        };
        var log = new List<string>();
        var o = new OfflinePolicyOptions { Loss = "alol", MaxSteps = 2, BatchSize = 2, WarmupSteps = 0, LogEvery = 1, ValueFitSteps = 50 };
        new OfflinePolicyTrainer(model, Bandit.Tok, o) { Log = log.Add }.Run(rows, dir.Path);
        Assert.Contains(log, l => l.Contains("3 distinct prompts < value_folds 5; cross-fitting with 3 folds"));
        Assert.Contains(log, l => l.Contains("3-fold cross-fitted value MSE"));
        var summary = Summary(dir.Path);
        Assert.Equal(3, summary["value_folds"]!.GetValue<int>());
        Assert.Equal(("main", "advantage"), (summary["alol_variant"]!.GetValue<string>(), summary["alol_sampling"]!.GetValue<string>()));
    }

    [Theory]
    [InlineData("copg", AlolVariant.Main, AlolSampling.Advantage)]
    [InlineData("alol", AlolVariant.Main, AlolSampling.Advantage)]
    [InlineData("alol", AlolVariant.Seq, AlolSampling.Uniform)]
    public void Stopped_and_resumed_ends_with_the_weights_of_an_uninterrupted_run(string loss, AlolVariant variant, AlolSampling sampling)
    {
        // Two prompts with three completions each: CoPG has 6 pairs, A-LoL keeps the rows above each prompt's value.
        var rows = new List<ScoredCompletion>
        {
            new("a", "c", 1, null, NoFields), new("a", "d", 0, null, NoFields), new("a", "cd", 0.5, null, NoFields),
            new("b", "a", 0.2, null, NoFields), new("b", "bb", 1, null, NoFields), new("b", "ab", 0.9, null, NoFields),
        };
        var o = new OfflinePolicyOptions { Loss = loss, AlolVariant = variant, AlolSampling = sampling, MaxSteps = 7, BatchSize = 2, LearningRate = 1e-2, WarmupSteps = 2, LogEvery = 1, CheckpointEvery = 3, KeepCheckpoints = 1, ValueFitSteps = 50 };
        using var straightDir = new TempDir();
        using var straight = Bandit.Model(5);
        new OfflinePolicyTrainer(straight, Bandit.Tok, o).Run(rows, straightDir.Path);

        using var stoppedDir = new TempDir();
        using (var first = Bandit.Model(5))
            PreferenceResumeTests.RunUntil("step 5/", (log, ct) => new OfflinePolicyTrainer(first, Bandit.Tok, o) { Log = log }.Run(rows, stoppedDir.Path, cancel: ct));
        using var resumed = Bandit.Model(5);   // the starting model: reference and value come from it, the weights from step 3
        var result = new OfflinePolicyTrainer(resumed, Bandit.Tok, o).Run(rows, stoppedDir.Path, resume: true);
        Assert.Equal(7, result.Steps);
        PreferenceResumeTests.AssertSame(PreferenceResumeTests.Snapshot(straight.named_parameters()), PreferenceResumeTests.Snapshot(resumed.named_parameters()));
        Assert.Equal(Enumerable.Range(1, 7), new RunLog(stoppedDir.Path, append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>()));
    }

    [Fact]
    public void Bad_options_name_the_recipe_key()
    {
        Assert.Contains("offline_pg.loss", Assert.Throws<ArgumentException>(() => new OfflinePolicyOptions { Loss = "ppo" }.Validate()).Message);
        Assert.Contains("offline_pg.clip", Assert.Throws<ArgumentException>(() => new OfflinePolicyOptions { Clip = 1 }.Validate()).Message);
        Assert.Contains("offline_pg.beta", Assert.Throws<ArgumentException>(() => new OfflinePolicyOptions { Beta = 0 }.Validate()).Message);
        Assert.Contains("offline_pg.value_folds must be positive, got 0", Assert.Throws<ArgumentException>(() => new OfflinePolicyOptions { ValueFolds = 0 }.Validate()).Message);
        Assert.Contains("offline_pg.alol_variant", Assert.Throws<ArgumentException>(() => new OfflinePolicyOptions { AlolVariant = (AlolVariant)9 }.Validate()).Message);
        Assert.Contains("offline_pg.alol_sampling", Assert.Throws<ArgumentException>(() => new OfflinePolicyOptions { AlolSampling = (AlolSampling)9 }.Validate()).Message);
        var d = new OfflinePolicyOptions();
        Assert.Equal((AlolVariant.Main, AlolSampling.Advantage, 5, 0.9, 0.1), (d.AlolVariant, d.AlolSampling, d.ValueFolds, d.Clip, d.Beta));
    }
}
