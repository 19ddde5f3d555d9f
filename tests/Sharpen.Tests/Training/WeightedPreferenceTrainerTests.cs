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
