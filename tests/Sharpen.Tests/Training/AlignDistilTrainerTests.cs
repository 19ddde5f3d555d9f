using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Recipes;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Training.Preference;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>
/// The AlignDistil trainer end to end on tiny checkpoints written by the test: a reference, a DPO model trained from it on
/// real pairs (and a reverse DPO model on the swapped pairs). The student starts as the reference; the checks are the
/// teacher mix π* ∝ exp(log π_ref + α(log π_dpo − log π_ref)) worked out in plain doubles from the saved models' logits.
/// </summary>
public class AlignDistilTrainerTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcd");

    static CausalLM Model(long seed) => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 16 }, seed);

    // After "a", "c" is preferred to "d"; after "b" the other way round; after "c", "a" to "b"; after "d", "b" to "a".
    static readonly (string Prompt, string Chosen, string Rejected)[] Pairs = [("a", "c", "d"), ("b", "d", "c"), ("c", "a", "b"), ("d", "b", "a")];

    /// <summary>A DPO model trained from <paramref name="reference"/>'s weights on <see cref="Pairs"/> (swapped with <paramref name="reverse"/>); returns its final/ folder.</summary>
    static string TrainDpo(string referenceDir, string outDir, bool reverse)
    {
        using var m = HfCheckpoint.Load(referenceDir).Model;
        var pairs = Pairs.Select(p => reverse ? new PreferenceExample(p.Prompt, p.Rejected, p.Chosen) : new PreferenceExample(p.Prompt, p.Chosen, p.Rejected)).ToList();
        var o = new PreferenceOptions { Beta = 0.5, MaxSteps = 15, BatchSize = 4, LearningRate = 2e-2, WarmupSteps = 1, LogEvery = 5, CheckpointEvery = 0 };
        new PreferenceTrainer(m, Tok, o).Run(pairs, outDir);
        return Path.Combine(outDir, "final");
    }

    /// <summary>The next-token distribution after <paramref name="context"/> as doubles (softmax done here, not by the library).</summary>
    static double[] NextToken(CausalLM m, string context)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        m.eval();
        var ids = Tok.Encode(context).Select(i => (long)i).ToArray();
        var logits = m.Forward(tensor(ids).unsqueeze(0)).Logits[0, ids.Length - 1].to(ScalarType.Float64).data<double>().ToArray();
        double max = logits.Max();
        var e = logits.Select(x => Math.Exp(x - max)).ToArray();
        double z = e.Sum();
        return e.Select(x => x / z).ToArray();
    }

    /// <summary>π* ∝ π_ref^(1−α) · π_dpo^α, normalised.</summary>
    static double[] Mix(double[] pRef, double[] pDpo, double alpha)
    {
        var u = pRef.Select((r, v) => Math.Exp((1 - alpha) * Math.Log(r) + alpha * Math.Log(pDpo[v]))).ToArray();
        double z = u.Sum();
        return u.Select(x => x / z).ToArray();
    }

    static double Kl(double[] p, double[] q) => p.Select((pv, v) => pv * (Math.Log(pv) - Math.Log(q[v]))).Sum();

    static string Yaml(string dir, string student, string dpo, string extra) => $"""
        kind: align_distil
        output: {Path.Combine(dir, "run")}
        model: {"{"} path: {student} {"}"}
        data: {"{"} train: {Path.Combine(dir, "rows.jsonl")} {"}"}
        align_distil: {"{"} dpo_model: {dpo}, {extra}max_steps: 40, batch_size: 4, learning_rate: 0.02, warmup_steps: 1, log_every: 1, checkpoint_every: 0 {"}"}

        """;

    static void WriteRows(string dir) =>
        File.WriteAllLines(Path.Combine(dir, "rows.jsonl"), Pairs.Select(p => $$"""{"prompt": "{{p.Prompt}}", "completion": "{{p.Chosen}}"}"""));

    [Fact]
    public void AlignDistil_recipe_moves_the_student_to_the_dpo_reference_logit_mix()
    {
        using var dir = new TempDir();
        var refDir = Path.Combine(dir.Path, "reference");
        using (var r = Model(3)) HfCheckpoint.Save(refDir, r, Tok);
        var dpoDir = TrainDpo(refDir, Path.Combine(dir.Path, "dpo"), reverse: false);
        WriteRows(dir.Path);
        const double alpha = 2.0;   // extrapolates beyond the DPO model, so the teacher is neither model
        var recipe = Recipe.Parse(Yaml(dir.Path, refDir, dpoDir, $"reference_model: {refDir}, alpha: {alpha}, "), "align-distil.yaml");

        // The teacher and the starting student at one position (after prompt "a", predicting the response's first token), by hand.
        double[] pRef, pDpo;
        using (var r = HfCheckpoint.Load(refDir).Model) pRef = NextToken(r, "a");
        using (var d = HfCheckpoint.Load(dpoDir).Model) pDpo = NextToken(d, "a");
        var teacher = Mix(pRef, pDpo, alpha);
        double klBefore = Kl(teacher, pRef);
        Assert.True(klBefore > 0.01, $"the DPO model barely moved from the reference (KL(π*‖π_ref) = {klBefore:G3}); the test would prove nothing");

        // Step 1 (student = reference, every row in the batch): the loss is the mean over response tokens of KL(π*‖π_ref),
        // worked out here position by position (each row: its completion's token, then EOS).
        double expectedFirst = 0;
        int positions = 0;
        using (var r = HfCheckpoint.Load(refDir).Model)
        using (var d = HfCheckpoint.Load(dpoDir).Model)
            foreach (var p in Pairs)
                foreach (var context in new[] { p.Prompt, p.Prompt + p.Chosen })
                {
                    expectedFirst += Kl(Mix(NextToken(r, context), NextToken(d, context), alpha), NextToken(r, context));
                    positions++;
                }
        expectedFirst /= positions;

        var result = AlignDistilPipeline.Run(recipe);
        Assert.Equal((40, 4), (result.Result.Steps, result.Examples));
        var rows = new RunLog(Path.Combine(dir.Path, "run"), append: true).ReadMetrics();
        double first = rows[0]["loss"]!.GetValue<double>(), last = rows[^1]["loss"]!.GetValue<double>();
        Assert.Equal(expectedFirst, first, 3);
        Assert.True(last < 0.2 * first, $"the distillation loss did not fall: {first:G4} → {last:G4}");
        var summary = new RunLog(Path.Combine(dir.Path, "run"), append: true).ReadSummary();
        Assert.Equal(("align_distil", "dpo_reference_mix"), (summary["loss_name"]!.GetValue<string>(), summary["teacher"]!.GetValue<string>()));

        using var after = HfCheckpoint.Load(Path.Combine(dir.Path, "run", "final")).Model;
        var pAfter = NextToken(after, "a");
        double klAfter = Kl(teacher, pAfter);
        Assert.True(klAfter < 0.2 * klBefore, $"KL(π*‖student) after prompt \"a\": {klBefore:G4} → {klAfter:G4}");
        // The student went to the mix, not to the DPO model itself (α = 2 puts π* beyond π_dpo).
        Assert.True(klAfter < Kl(pDpo, pAfter), $"KL(π*‖student) = {klAfter:G4} but KL(π_dpo‖student) = {Kl(pDpo, pAfter):G4}");
    }

    [Fact]
    public void AlignDistil_with_a_reverse_dpo_model_distils_the_contrastive_adaptive_teacher()
    {
        using var dir = new TempDir();
        var refDir = Path.Combine(dir.Path, "reference");
        using (var r = Model(4)) HfCheckpoint.Save(refDir, r, Tok);
        var dpoDir = TrainDpo(refDir, Path.Combine(dir.Path, "dpo"), reverse: false);
        var revDir = TrainDpo(refDir, Path.Combine(dir.Path, "rdpo"), reverse: true);
        WriteRows(dir.Path);
        var recipe = Recipe.Parse(Yaml(dir.Path, refDir, dpoDir, $"reverse_model: {revDir}, alpha: 0.2, alpha_max: 2.0, "), "align-distil.yaml");
        var result = AlignDistilPipeline.Run(recipe);
        Assert.Equal(40, result.Result.Steps);
        var rows = new RunLog(Path.Combine(dir.Path, "run"), append: true).ReadMetrics();
        Assert.True(rows[^1]["loss"]!.GetValue<double>() < 0.3 * rows[0]["loss"]!.GetValue<double>(),
            $"loss {rows[0]["loss"]} → {rows[^1]["loss"]}");
        // α_t = min(α_max, α / TV_t) with TV_t ≤ 1, so its mean over response tokens lies in [α, α_max].
        Assert.All(rows, r => Assert.InRange(r["alpha_mean"]!.GetValue<double>(), 0.2 - 1e-6, 2.0 + 1e-6));
        var summary = new RunLog(Path.Combine(dir.Path, "run"), append: true).ReadSummary();
        Assert.Equal("contrastive_adaptive", summary["teacher"]!.GetValue<string>());
    }

    [Fact]
    public void AlignDistil_stopped_and_resumed_ends_with_the_weights_of_an_uninterrupted_run()
    {
        var o = new AlignDistilOptions { DpoModel = "in-memory", Alpha = 1.5, MaxSteps = 7, BatchSize = 2, LearningRate = 1e-2, WarmupSteps = 1, LogEvery = 1, CheckpointEvery = 3, KeepCheckpoints = 1 };
        var rows = Pairs.Select(p => (p.Prompt, p.Chosen)).ToList();
        using var dpo = Model(8);
        using var reference = Model(7);
        using var straightDir = new TempDir();
        using var straight = Model(7);
        new AlignDistilTrainer(straight, Tok, dpo, reference, null, o).Run(rows, straightDir.Path);

        using var stoppedDir = new TempDir();
        using (var first = Model(7))
            PreferenceResumeTests.RunUntil("step 5/", (log, ct) => new AlignDistilTrainer(first, Tok, dpo, reference, null, o) { Log = log }.Run(rows, stoppedDir.Path, cancel: ct));
        using var resumed = Model(7);
        var result = new AlignDistilTrainer(resumed, Tok, dpo, reference, null, o).Run(rows, stoppedDir.Path, resume: true);
        Assert.Equal(7, result.Steps);
        PreferenceResumeTests.AssertSame(PreferenceResumeTests.Snapshot(straight.named_parameters()), PreferenceResumeTests.Snapshot(resumed.named_parameters()));
        Assert.Equal(Enumerable.Range(1, 7), new RunLog(stoppedDir.Path, append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>()));
    }

    [Fact]
    public void Bad_align_distil_config_is_one_error_naming_the_key()
    {
        using var dir = new TempDir();
        var refDir = Path.Combine(dir.Path, "reference");
        using (var r = Model(5)) HfCheckpoint.Save(refDir, r, Tok);
        WriteRows(dir.Path);
        string Error(string yaml) => Assert.Throws<RecipeException>(() => AlignDistilPipeline.Run(Recipe.Parse(yaml, "align-distil.yaml"))).Message;

        Assert.Contains("align_distil.dpo_model is required",
            Assert.Throws<RecipeException>(() => Recipe.Parse(Yaml(dir.Path, refDir, refDir, "").Replace($"dpo_model: {refDir}, ", ""), "align-distil.yaml")).Message);
        Assert.Contains("'align_distil.alpah'", Assert.Throws<RecipeException>(() => Recipe.Parse(Yaml(dir.Path, refDir, refDir, "alpah: 1, "), "a.yaml")).Message);
        Assert.Contains("align_distil.alpha_max", Assert.Throws<RecipeException>(() => Recipe.Parse(Yaml(dir.Path, refDir, refDir, "alpha_max: 3, "), "a.yaml")).Message);
        Assert.Contains("align_distil.alpha must be", Assert.Throws<RecipeException>(() => Recipe.Parse(Yaml(dir.Path, refDir, refDir, "alpha: -1, "), "a.yaml")).Message);
        Assert.Contains("an align-distil recipe needs 'data.train'",
            Assert.Throws<RecipeException>(() => Recipe.Parse(Yaml(dir.Path, refDir, refDir, "").Replace($"data: {{ train: {Path.Combine(dir.Path, "rows.jsonl")} }}", ""), "a.yaml")).Message);

        var missing = Error(Yaml(dir.Path, refDir, Path.Combine(dir.Path, "nowhere"), ""));
        Assert.Contains("'align_distil.dpo_model'", missing);
        Assert.Contains("checkpoint folder not found", missing);

        var otherVocab = Path.Combine(dir.Path, "other");
        using (var o = new CausalLM(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize + 3, MaxPositionEmbeddings = 16 }, 6)) HfCheckpoint.Save(otherVocab, o);
        var vocab = Error(Yaml(dir.Path, refDir, otherVocab, ""));
        Assert.Contains("align_distil.dpo_model", vocab);
        Assert.Contains("vocabulary", vocab);
    }

    [Fact]
    public void The_shipped_align_distil_recipe_parses()
    {
        var r = Recipe.Load(RepoPaths.Of("recipes", "align-distil.yaml"));
        var o = r.AlignDistilOptions();
        Assert.Equal(("align_distil", "runs/dpo/final", 1.0), (r.Kind, o.DpoModel, o.Alpha));
    }
}
