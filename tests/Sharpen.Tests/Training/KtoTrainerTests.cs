using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Recipes;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Training.Preference;

namespace Sharpen.Tests.Training;

/// <summary>The KTO trainer on a tiny model: it learns the labelled preferences, its reference point starts at 0, it resumes exactly, and its recipe and data format work end to end.</summary>
public class KtoTrainerTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcd");

    static CausalLM Model(long seed) => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 16 }, seed);

    // After "a", "c" is desirable and "d" undesirable; after "b" the other way round. Unpaired: each row stands alone.
    static List<UnpairedExample> Examples() =>
    [
        new("a", "c", true), new("a", "d", false), new("b", "d", true), new("b", "c", false),
        new("ab", "c", true), new("ba", "c", false),
    ];

    /// <summary>log π(c|a) − log π(d|a) + log π(d|b) − log π(c|b): how much the model prefers the desirable completions.</summary>
    static double Preference(CausalLM m)
    {
        var eos = CompletionTokens.EosId(Tok, m.Config);
        IReadOnlyList<int> P(string s) => Tok.Encode(s).ToArray();
        IReadOnlyList<int> C(string s) => CompletionTokens.Ids(Tok, eos, s);
        var lp = Scoring.Score(m, [P("a"), P("a"), P("b"), P("b")], [C("c"), C("d"), C("d"), C("c")], Tok.PadTokenId ?? 0)
            .Select(xs => xs.Sum()).ToArray();
        return lp[0] - lp[1] + lp[2] - lp[3];
    }

    static KtoOptions Options(string referencePoint = "mismatched") => new()
    {
        MaxSteps = 12, BatchSize = 4, LearningRate = 1e-2, WarmupSteps = 1, LogEvery = 1, CheckpointEvery = 4, KeepCheckpoints = 1,
        Beta = 0.5, ReferencePoint = referencePoint, MaxNewTokens = 4,
    };

    [Theory]
    [InlineData("mismatched")]
    [InlineData("policy_samples")]
    [InlineData("zero")]
    public void Kto_raises_the_desirable_completions_over_the_undesirable_ones(string referencePoint)
    {
        using var dir = new TempDir();
        using var m = Model(3);
        var before = Preference(m);
        var result = new KtoTrainer(m, Tok, Options(referencePoint)).Run(Examples(), dir.Path);
        Assert.Equal(12, result.Steps);
        var after = Preference(m);
        Assert.True(after > before + 1.0, $"preference {before:F3} → {after:F3}");

        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal(Enumerable.Range(1, 12), rows.Select(r => r["step"]!.GetValue<int>()));
        // At step 1 the policy is the reference, so every log-ratio is 0 and so is z₀ (whatever the completions).
        Assert.Equal(0.0, rows[0]["kl"]!.GetValue<double>(), 6);
        Assert.All(rows, r => Assert.True(r["kl"]!.GetValue<double>() >= 0));
        if (referencePoint == "zero") Assert.All(rows, r => Assert.Equal(0.0, r["kl"]!.GetValue<double>()));
        Assert.True(File.Exists(Path.Combine(dir.Path, "final", "model.safetensors")));
    }

    [Fact]
    public void Kto_stopped_and_resumed_ends_with_the_weights_of_an_uninterrupted_run()
    {
        var o = Options() with { MaxSteps = 7, CheckpointEvery = 3 };
        using var straightDir = new TempDir();
        using var straight = Model(5);
        new KtoTrainer(straight, Tok, o).Run(Examples(), straightDir.Path);

        using var stoppedDir = new TempDir();
        using (var first = Model(5))
            PreferenceResumeTests.RunUntil("step 5/", (log, ct) => new KtoTrainer(first, Tok, o) { Log = log }.Run(Examples(), stoppedDir.Path, cancel: ct));
        using var resumed = Model(5);   // the starting model: the reference is copied from it before step 3 is loaded
        var result = new KtoTrainer(resumed, Tok, o).Run(Examples(), stoppedDir.Path, resume: true);
        Assert.Equal(7, result.Steps);
        PreferenceResumeTests.AssertSame(PreferenceResumeTests.Snapshot(straight.named_parameters()), PreferenceResumeTests.Snapshot(resumed.named_parameters()));
        Assert.Equal(Enumerable.Range(1, 7), new RunLog(stoppedDir.Path, append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>()));
    }

    [Fact]
    public void Unpaired_rows_load_in_text_and_conversational_form_and_a_bad_label_names_its_line()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "kto.jsonl");
        File.WriteAllLines(path,
        [
            """{"prompt": "a", "completion": "c", "label": true, "source": "x"}""",
            """{"prompt": [{"role": "user", "content": "b"}], "completion": [{"role": "assistant", "content": "d"}], "label": false}""",
        ]);
        var loaded = JsonlDataset.LoadUnpaired(path).Items;
        Assert.Equal(2, loaded.Count);
        Assert.Equal(("a", "c", true), (loaded[0].Prompt, loaded[0].Completion, loaded[0].Desirable));
        Assert.Equal("x", loaded[0].Fields["source"]);
        Assert.False(loaded[1].Desirable);
        Assert.Equal("d", loaded[1].Completion);

        File.AppendAllLines(path, ["""{"prompt": "a", "completion": "c", "label": "yes"}"""]);
        var e = Assert.Throws<DatasetFormatException>(() => JsonlDataset.LoadUnpaired(path));
        Assert.Contains(":3", e.Message);
        Assert.Contains("\"label\" is a string, not true or false", e.Message);
        Assert.Equal(2, JsonlDataset.LoadUnpaired(path, skipBadLines: true).Items.Count);
    }

    [Fact]
    public void A_kto_recipe_trains_from_unpaired_jsonl_and_bad_keys_are_named()
    {
        using var dir = new TempDir();
        var data = Path.Combine(dir.Path, "kto.jsonl");
        File.WriteAllLines(data, Examples().Select(x => $$"""{"prompt": "{{x.Prompt}}", "completion": "{{x.Completion}}", "label": {{(x.Desirable ? "true" : "false")}}}"""));
        var yaml = $"""
            kind: kto
            output: {Path.Combine(dir.Path, "run")}
            model: {"{"} init: {"{"} hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32 {"}"}, tokenizer: "chars:abcd" {"}"}
            data: {"{"} train: {data} {"}"}
            kto: {"{"} beta: 0.5, max_steps: 3, batch_size: 3, log_every: 1, desirable_weight: 1.0, undesirable_weight: 1.0 {"}"}

            """;
        var recipe = Recipe.Parse(yaml, "kto.yaml");
        Assert.Equal(0.5, recipe.KtoOptions().Beta);
        var result = KtoPipeline.Run(recipe);
        Assert.Equal((3, 6), (result.Result.Steps, result.Examples));
        var summary = new RunLog(Path.Combine(dir.Path, "run"), append: true).ReadSummary();
        Assert.Equal("kto", summary["loss_name"]!.GetValue<string>());
        Assert.Equal(3, summary["desirable"]!.GetValue<int>());

        var bad = Assert.Throws<RecipeException>(() => Recipe.Parse(yaml.Replace("beta: 0.5", "betta: 0.5"), "kto.yaml"));
        Assert.Contains("'kto.betta'", bad.Message);
        var badPoint = Assert.Throws<RecipeException>(() => Recipe.Parse(yaml.Replace("beta: 0.5", "reference_point: average"), "kto.yaml"));
        Assert.Contains("kto.reference_point: unknown 'average'", badPoint.Message);
    }

    [Fact]
    public void The_shipped_kto_and_cpo_recipes_parse()
    {
        var kto = Recipe.Load(RepoPaths.Of("recipes", "kto.yaml"));
        Assert.Equal(("kto", "mismatched"), (kto.Kind, kto.KtoOptions().ReferencePoint));
        var cpo = Recipe.Load(RepoPaths.Of("recipes", "cpo.yaml"));
        Assert.Equal(("preference", "cpo"), (cpo.Kind, cpo.PreferenceOptions().Loss));
        Assert.False(cpo.PreferenceOptions().NeedsReference);
    }
}
