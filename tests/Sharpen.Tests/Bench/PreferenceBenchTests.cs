using System.Text.Json.Nodes;
using Sharpen.Bench;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Bench;

public class PreferenceBenchTests
{
    [Fact]
    public void Lexicon_reward_counts_positive_minus_negative_over_the_first_six_words()
    {
        // good, great, superb, love = +4; bad = -1; the = 0  →  3/6
        Assert.Equal(0.5, LexiconTask.Reward("good bad the great superb love"), 12);
        // "goood" is malformed (0), bad = -1  →  -1/6
        Assert.Equal(-1.0 / 6, LexiconTask.Reward("goood bad"), 12);
        // the 7th word is ignored: six goods → 1
        Assert.Equal(1.0, LexiconTask.Reward("good good good good good good bad"), 12);
        // all negative → -1; empty → 0; a double space makes an empty (malformed) word that takes a slot
        Assert.Equal(-1.0, LexiconTask.Reward("hate awful dull poor boring bad"), 12);
        Assert.Equal(0.0, LexiconTask.Reward(""), 12);
        // slots: fun, "", fun, fun, fun, fun | fun (7th, ignored) → 5/6
        Assert.Equal(5.0 / 6, LexiconTask.Reward("fun  fun fun fun fun fun"), 12);
        // every word and prompt character is in the tokenizer's alphabet (no <unk>)
        var tok = LexiconTask.Tokenizer();
        foreach (var w in LexiconTask.Words.Append(LexiconTask.Prompt(1234)))
            Assert.DoesNotContain(Sharpen.Tokenizers.CharTokenizer.UnkId, tok.Encode(w, addSpecialTokens: false));
    }

    [Fact]
    public void Noisy_bradley_terry_labels_with_sigmoid_then_flips()
    {
        var bt = new NoisyBradleyTerry(Scale: 6, FlipRate: 0.25);
        double p = 1 / (1 + Math.Exp(-6 * 0.5));                     // σ(s·Δ) with Δ = 0.5: 0.952574
        Assert.True(bt.FirstChosen(0.5, 0.0, uLabel: p - 1e-6, uFlip: 0.9));
        Assert.False(bt.FirstChosen(0.5, 0.0, uLabel: p + 1e-6, uFlip: 0.9));
        Assert.False(bt.FirstChosen(0.5, 0.0, uLabel: p - 1e-6, uFlip: 0.1));   // flipped (0.1 < ε)
        Assert.Equal(p * 0.75 + (1 - p) * 0.25, bt.ProbabilityFirstChosen(0.5, 0.0), 12);

        // Empirical rate over many labels: σ(4·0.5)(1−0.3) + (1−σ(4·0.5))·0.3 = 0.880797·0.7 + 0.119203·0.3 = 0.652319
        var noisy = new NoisyBradleyTerry(4, 0.3);
        double expected = 0.880797 * 0.7 + 0.119203 * 0.3;
        var rng = new Random(1);
        int n = 40_000, first = 0;
        for (int i = 0; i < n; i++) if (noisy.Label([0.5, 0.0], rng) == (0, 1)) first++;
        double sd = Math.Sqrt(expected * (1 - expected) / n);         // ≈ 0.0024
        Assert.InRange(first / (double)n, expected - 4 * sd, expected + 4 * sd);
        Assert.Null(noisy.Label([0.5], rng));
    }

    [Fact]
    public void Options_name_the_bad_key()
    {
        string Bad(PreferenceBenchOptions o) => Assert.Throws<ArgumentException>(() => o.Validate()).Message;
        var d = new PreferenceBenchOptions();
        Assert.Contains("preferences.seeds", Bad(d with { Seeds = 1 }));
        Assert.Contains("preferences.epsilons", Bad(d with { Epsilons = [0.5] }));
        Assert.Contains("preferences.pairs", Bad(d with { Pairs = 100 }));
        Assert.Contains("preferences.steps", Bad(d with { Steps = 70 }));
        Assert.Contains("preferences.heads", Bad(d with { Heads = 5 }));
        Assert.Contains("'x'", Assert.Throws<ArgumentException>(() => PreferenceBenchOptions.ParseEpsilons("0,x")).Message);
        Assert.Equal([0.0, 0.25], PreferenceBenchOptions.ParseEpsilons("0, 0.25"));
        // slope of y = 2 − 3x is −3
        Assert.Equal(-3.0, PreferenceBench.Slope([0.0, 0.1, 0.4], [2.0, 1.7, 0.8]), 9);
    }

    [Fact]
    public void Quick_run_writes_well_formed_results_a_table_and_plots()
    {
        using var dir = new TempDir();
        var bench = Path.Combine(dir.Path, "bench");
        Directory.CreateDirectory(bench);
        File.WriteAllText(Path.Combine(bench, "README.md"), "# b\n<!-- results:begin -->\n<!-- results:end -->\n");
        var options = PreferenceBenchOptions.Quick with { Epsilons = [0.2] };
        var result = PreferenceBench.Run(_ => { }, Path.Combine(dir.Path, "work"), options);
        BenchReport.Write(bench, result);
        PreferenceReport.Plot(bench, result);

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(bench, "results", "preferences.json")))!;
        Assert.Equal("preferences", json["benchmark"]!.GetValue<string>());
        foreach (var key in new[] { "config", "reference", "rows", "aggregates", "claims", "machine", "date", "total_seconds" })
            Assert.NotNull(json[key]);
        var rows = json["rows"]!.AsArray();
        Assert.Equal(PreferenceBench.Methods.Length * 2, rows.Count);      // 7 methods × 1 ε × 2 seeds
        foreach (var r in rows)
        {
            foreach (var key in new[] { "true_reward", "kl", "seconds" }) Assert.True(double.IsFinite(r![key]!.GetValue<double>()), key);
            Assert.InRange(r!["true_reward"]!.GetValue<double>(), -1.0, 1.0);
            Assert.Equal(options.Steps, r["steps"]!.GetValue<int>());
            // every method gets the same number of labelled pairs (online: 2 iterations × 8 prompts)
            Assert.Equal(options.Pairs, r["pairs"]!.GetValue<int>());
        }
        var aggregates = json["aggregates"]!.AsArray();
        Assert.Equal(PreferenceBench.Methods.Length, aggregates.Count);
        Assert.All(aggregates, a => Assert.Equal(2, a!["seeds"]!.GetValue<int>()));
        Assert.All(aggregates, a => Assert.True(double.IsFinite(a!["true_reward_mean"]!.GetValue<double>()) && double.IsFinite(a["kl_mean"]!.GetValue<double>())));
        Assert.True(double.IsFinite(json["claims"]!["online_vs_offline_dpo"]!["mean_difference"]!.GetValue<double>()));
        Assert.True(File.Exists(Path.Combine(bench, "results", "preferences.png")));
        Assert.True(File.Exists(Path.Combine(bench, "results", "preferences_kl.png")));
        var readme = File.ReadAllText(Path.Combine(bench, "README.md"));
        Assert.Contains("| online_dpo |", readme);
        Assert.True(File.Exists(Path.Combine(dir.Path, "work", "metrics.jsonl")));
        Assert.True(File.Exists(Path.Combine(dir.Path, "work", "summary.json")));
    }

    [Fact]
    public void Quick_four_way_run_writes_its_own_results_and_the_differences_of_its_rows()
    {
        using var dir = new TempDir();
        var bench = Path.Combine(dir.Path, "bench");
        Directory.CreateDirectory(bench);
        File.WriteAllText(Path.Combine(bench, "README.md"), "# b\n<!-- results:begin -->\n<!-- results:end -->\n");
        var options = PreferenceBenchOptions.Quick with { Epsilons = [0.0], Methods = PreferenceBench.FourWayMethods };
        Assert.True(options.FourWay);
        var result = PreferenceBench.Run(_ => { }, Path.Combine(dir.Path, "work"), options);
        BenchReport.Write(bench, result);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(bench, "results", "preferences-four-way.json")))!;
        var rows = json["rows"]!.AsArray();
        Assert.Equal(4 * 2, rows.Count);                                   // 4 methods × 1 ε × 2 seeds
        Assert.All(rows, r => Assert.Equal(options.Pairs, r!["pairs"]!.GetValue<int>()));   // equal labelled pairs
        double Get(string m, int seed) => rows.First(r => r!["method"]!.GetValue<string>() == m && r["seed"]!.GetValue<int>() == seed)!["true_reward"]!.GetValue<double>();
        var perSeed = json["claims"]!["negative_gradient_on_policy"]!["per_epsilon"]![0]!["per_seed"]!.AsArray().Select(x => x!.GetValue<double>()).ToList();
        Assert.Equal(Get("online_dpo", 1) - Get("online_filtered_bc", 1), perSeed[0], 3);
        Assert.Equal(Get("online_dpo", 2) - Get("online_filtered_bc", 2), perSeed[1], 3);
        var readme = File.ReadAllText(Path.Combine(bench, "README.md"));
        Assert.Contains("| 0.0 | on-policy | online_filtered_bc:", readme);
        Assert.Contains("Unknown", Assert.Throws<ArgumentException>(() => (options with { Methods = ["grpo"] }).Validate()).Message, StringComparison.OrdinalIgnoreCase);
    }
}
