using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Search;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training.Preference;

namespace Sharpen.Tests.Training;

/// <summary>The offline preference trainer with CREAM and UPO, which read a per-pair weight column of the dataset; and the
/// arg-max-Q choice of a step with real models.</summary>
public class WeightedPreferenceTrainerTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcd");

    static CausalLM Model(long seed = 1) => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 16 }, seed);

    static List<PreferenceExample> Rows(string field, string value) =>
        [.. Enumerable.Range(0, 8).Select(i => new PreferenceExample(i % 2 == 0 ? "a" : "b", "c", "d") { Fields = new Dictionary<string, string> { [field] = value } })];

    static float[] Flat(CausalLM m) => [.. m.parameters().SelectMany(p => p.detach().cpu().to_type(TorchSharp.torch.ScalarType.Float32).data<float>().ToArray())];

    [Fact]
    public void Cream_with_consistency_one_half_has_no_gradient_at_the_reference_and_with_one_trains()
    {
        // At the start π_θ = π_ref, so h = 0 and ∂loss/∂h = β(1 − 2C)/2 per pair: zero for C = ½, so one AdamW step moves nothing.
        using var dir = new TempDir();
        using var model = Model();
        var before = Flat(model);
        var o = new PreferenceOptions { Loss = "cream", MaxSteps = 1, BatchSize = 4, LearningRate = 1e-2, WarmupSteps = 0, LogEvery = 1 };
        var r = new PreferenceTrainer(model, Tok, o).Run(Rows("consistency", "0.5"), dir.Path);
        Assert.Equal(Math.Log(2), r.FinalLoss, 1e-4);                    // C·ln 2 + (1 − C)·ln 2 at h = 0
        Assert.Equal(before, Flat(model));

        using var dir2 = new TempDir();
        using var model2 = Model();
        new PreferenceTrainer(model2, Tok, o).Run(Rows("consistency", "1"), dir2.Path);
        Assert.NotEqual(before, Flat(model2));
    }

    [Fact]
    public void A_missing_or_bad_weight_column_names_the_pair_and_the_key()
    {
        using var dir = new TempDir();
        using var model = Model();
        var o = new PreferenceOptions { Loss = "upo", MaxSteps = 1, BatchSize = 4, WarmupSteps = 0 };
        var missing = Assert.Throws<ArgumentException>(() => new PreferenceTrainer(model, Tok, o).Run(Rows("consistency", "1"), dir.Path));
        Assert.Contains("pair 1", missing.Message); Assert.Contains("\"certainty\"", missing.Message);
        var bad = Assert.Throws<ArgumentException>(() => new PreferenceTrainer(model, Tok, o).Run(Rows("certainty", "1.5"), dir.Path));
        Assert.Contains("[0, 1]", bad.Message);
    }

    [Fact]
    public void Tpo_regroups_ranked_rows_into_lists_and_starts_at_lambda_times_ln2()
    {
        // Ranked rows of two completions and plain pairs are lists of two with ψ = [1, 0]: λ = (2 − 1)·(1 − 1/log2 3) = 0.3690702
        // whatever the model's order, and at the start (π_θ = π_ref) every z = 0, so the first loss is 0.3690702·ln 2 = 0.2558156.
        var ranked = new Dictionary<string, string> { ["rank_chosen"] = "1", ["rank_rejected"] = "2" };
        var rows = Enumerable.Range(0, 8).Select(i => i % 2 == 0
            ? new PreferenceExample("a", "c", "d") { Fields = ranked } : new PreferenceExample("b", "b", "a")).ToList();
        using var dir = new TempDir();
        using var model = Model(seed: 2);
        var o = new PreferenceOptions { Loss = "tpo", Beta = 0.5, MaxSteps = 30, BatchSize = 2, LearningRate = 1e-2, WarmupSteps = 0, LogEvery = 1 };
        var r = new PreferenceTrainer(model, Tok, o).Run(rows, dir.Path);
        var metrics = new Sharpen.Data.RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal(0.3690702 * Math.Log(2), metrics[0]["loss"]!.GetValue<double>(), 1e-4);
        Assert.Equal(1.0, r.FinalAccuracy);                              // the toy preferences are learnt
        // The four "a" rows are one list (same completions and ranks), the four "b" pairs four lists: 5 lists.
        var summary = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal(5, summary["lists"]!.GetValue<int>());
    }

    [Fact]
    public void Ranked_rows_of_three_become_one_list_best_first_with_labels_from_the_ranks()
    {
        var f = (int c, int r) => new Dictionary<string, string> { ["rank_chosen"] = c.ToString(), ["rank_rejected"] = r.ToString() };
        // The loader's expansion of {"completions": ["x", "y", "z"], "ranks": [2, 1, 3]}: y ≻ x, y ≻ z, x ≻ z.
        var rows = new List<PreferenceExample>
        {
            new("a", "y", "x") { Fields = f(1, 2) }, new("a", "y", "z") { Fields = f(1, 3) }, new("a", "x", "z") { Fields = f(2, 3) },
        };
        var lists = RankedLists.Group(rows, Tok, Tok.EosTokenId!.Value);
        var l = Assert.Single(lists);
        Assert.All(l.Completions, c => Assert.Equal(2, c.Length));                            // one char + EOS each
        Assert.Equal([2.0, 1.0, 0.0], l.Scores);                                              // ψ = maxRank − rank, best first
        Assert.Equal(Tok.Encode("y", addSpecialTokens: false)[0], l.Completions[0][0]);
        var clash = new List<PreferenceExample> { new("a", "y", "x") { Fields = f(1, 2) }, new("a", "x", "z") { Fields = f(3, 4) } };
        Assert.Contains("has ranks 2 and 3", Assert.Throws<ArgumentException>(() => RankedLists.Group(clash, Tok, Tok.EosTokenId!.Value)).Message);
    }

    [Fact]
    public void Pick_by_q_takes_the_step_of_largest_beta_log_ratio()
    {
        using var policy = Model(seed: 3);
        using var reference = Model(seed: 4);
        string[] steps = ["c", "dd", "ab"];
        var (best, q) = StepPreferences.PickByQ(policy, reference, Tok, "ab", steps, beta: 0.5);
        // Independently: Q_k = 0.5·(Σ log π(step_k | "ab") − Σ log π_ref(step_k | "ab")), step tokens without EOS.
        IReadOnlyList<int> prompt = Tok.Encode("ab").ToArray();
        var ids = steps.Select(s => (IReadOnlyList<int>)Tok.Encode(s, addSpecialTokens: false).ToArray()).ToList();
        var lp = Scoring.Score(policy, [prompt, prompt, prompt], ids, Tok.PadTokenId ?? 0);
        var lr = Scoring.Score(reference, [prompt, prompt, prompt], ids, Tok.PadTokenId ?? 0);
        var expected = lp.Select((x, k) => 0.5 * (x.Sum() - lr[k].Sum())).ToArray();
        for (int k = 0; k < 3; k++) Assert.Equal(expected[k], q[k], 1e-4);
        Assert.Equal(Array.IndexOf(expected, expected.Max()), best);
        // The same model as its own reference: every Q is 0 and the first candidate is taken.
        var (same, q0) = StepPreferences.PickByQ(policy, policy, Tok, "ab", steps);
        Assert.Equal(0, same); Assert.All(q0, v => Assert.Equal(0, v, 1e-6));
    }
}
