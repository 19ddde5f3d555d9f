using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training.Preference;

namespace Sharpen.Tests.Training;

/// <summary>UPO's certainty column from an ensemble of reward functions, checked against BALD's mutual information worked
/// out by hand, then read by the <c>upo</c> loss from a real file.</summary>
public class UpoCertaintyTests
{
    static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));
    static double H(double p) => -(p * Math.Log(p) + (1 - p) * Math.Log(1 - p));

    /// <summary>Three members scoring by completion text: they agree on pair 1 (Δ = 2 each), split on pair 2 (Δ = 3, −3, 0).</summary>
    static IReadOnlyList<IRewardFunction> Ensemble() =>
    [
        new DelegateReward("rm0", c => c.Completion switch { "c" => 2, "d" => 0, "ab" => 3, _ => 0 }),
        new DelegateReward("rm1", c => c.Completion switch { "c" => 1, "d" => -1, "ab" => 0, _ => 3 }),
        new DelegateReward("rm2", c => c.Completion switch { "c" => 5, "d" => 3, "ab" => 1, _ => 1 }),
    ];

    static List<PreferenceExample> Pairs() => [new("a", "c", "d"), new("b", "ab", "ba")];

    [Fact]
    public async Task Certainty_is_one_minus_the_bald_mutual_information_over_ln2()
    {
        var annotated = await UpoCertainty.AnnotateAsync(Pairs(), Ensemble());
        // Pair 1: every P_m = σ(2): no disagreement, u = 0, certainty 1, p̄ = σ(2).
        Assert.Equal(1.0, double.Parse(annotated[0].Fields["certainty"]), 9);
        Assert.Equal(Sigmoid(2), double.Parse(annotated[0].Fields["label_probability"]), 9);
        // Pair 2: P = σ(3), σ(−3), σ(0); p̄ = ½; u = H(½) − (H(σ(3)) + H(σ(−3)) + H(½))/3.
        double[] p = [Sigmoid(3), Sigmoid(-3), 0.5];
        double pbar = p.Average(), u = H(pbar) - p.Select(H).Average();
        Assert.Equal(0.5, double.Parse(annotated[1].Fields["label_probability"]), 9);
        Assert.Equal(u, double.Parse(annotated[1].Fields["label_mutual_information"]), 9);
        Assert.Equal(1 - u / Math.Log(2), double.Parse(annotated[1].Fields["certainty"]), 9);
        Assert.InRange(1 - u / Math.Log(2), 0.4, 0.6);
        // Reliable sampling of one pair draws the certain one far more often (∝ certainty: 1 against ≈ 0.52).
        int first = Enumerable.Range(0, 200).Count(s => UpoCertainty.SampleReliable(annotated, 1, s)[0].Prompt == "a");
        Assert.InRange(first, 110, 160);   // expected 200·1/1.517 ≈ 132
    }

    [Fact]
    public async Task A_member_without_a_score_is_named()
    {
        var ensemble = Ensemble().Append(new DelegateReward("broken", c => c.Completion == "ba" ? null : 1.0)).ToList();
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => UpoCertainty.AnnotateAsync(Pairs(), ensemble));
        Assert.Contains("reward 'broken' gave no score for the rejected completion of pair 2", e.Message);
        await Assert.ThrowsAsync<ArgumentException>(() => UpoCertainty.AnnotateAsync(Pairs(), [Ensemble()[0]]));
    }

    [Fact]
    public async Task The_written_column_is_what_the_upo_loss_reads()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "pairs.jsonl");
        Assert.Equal(2, UpoCertainty.Write(path, await UpoCertainty.AnnotateAsync(Pairs(), Ensemble())));
        var rows = JsonlDataset.LoadPreferences(path).Items;
        Assert.Equal(1.0, double.Parse(rows[0].Fields["certainty"]), 9);
        var tok = CharTokenizer.Create("abcd");
        using var model = new CausalLM(CausalLMTests.Tiny() with { VocabSize = tok.VocabSize, MaxPositionEmbeddings = 16 }, 3);
        var o = new PreferenceOptions { Loss = "upo", Beta = 0.5, MaxSteps = 2, BatchSize = 2, LearningRate = 1e-2, WarmupSteps = 0, LogEvery = 1 };
        new PreferenceTrainer(model, tok, o).Run(rows, Path.Combine(dir.Path, "run"));
        // At the start π_θ = π_ref: Σ c·ln 2 / Σ c = ln 2 whatever the certainties.
        var metrics = new RunLog(Path.Combine(dir.Path, "run"), append: true).ReadMetrics();
        Assert.Equal(Math.Log(2), metrics[0]["loss"]!.GetValue<double>(), 1e-4);
    }
}
