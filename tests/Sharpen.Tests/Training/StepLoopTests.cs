using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Training.RewardModels;
using Sharpen.Training.Sft;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>
/// The shared step driver: a non-finite step leaves weights and AdamW state as if it had not been taken, is counted, and
/// past the limit stops the run naming the step; runs stopped before and after their first checkpoint resume to the
/// weights of an uninterrupted run with each step logged once.
/// </summary>
public class StepLoopTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcd");

    static CausalLM Model(long seed = 3) => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 16 }, seed);

    // Six (prompt, completion) rows; the test work's loss is their mean completion NLL.
    static readonly (int[] Prompt, int[] Completion)[] Rows =
        new[] { ("a", "bc"), ("b", "d"), ("ab", "cd"), ("ca", "a"), ("d", "bb"), ("cc", "ad") }
            .Select(r => (Tok.Encode(r.Item1).ToArray(), Tok.Encode(r.Item2).ToArray())).ToArray();

    static readonly StepLoopSettings Settings = new()
    {
        Name = "test", MaxSteps = 6, ItemsPerStep = 2, Lr = new LrSchedule(1e-2, 2, 6), MaxGradNorm = 1.0, LogEvery = 1, CheckpointEvery = 0,
    };

    /// <summary>The mean completion NLL of the batch's rows, backpropagated.</summary>
    static StepOutcome NllBackward(CausalLM model, IReadOnlyList<int> batch)
    {
        var sb = SequenceBatch.Build(batch.Select(i => (IReadOnlyList<int>)Rows[i].Prompt).ToList(),
            batch.Select(i => (IReadOnlyList<int>)Rows[i].Completion).ToList(), Tok.PadTokenId ?? 0);
        var loss = -Scoring.CompletionLogProbs(model, sb).sum() / batch.Sum(i => Rows[i].Completion.Length);
        loss.backward();
        return new StepOutcome(loss.item<float>(), []);
    }

    /// <summary>Work whose steps for which <paramref name="poisoned"/> (of the 1-based call count) holds get a NaN loss, or a finite loss with an infinite gradient.</summary>
    static StepWork Work(CausalLM model, Func<int, bool> poisoned, bool infiniteGradient = false)
    {
        int calls = 0;
        return new StepWork
        {
            Items = Rows.Length,
            Backward = batch =>
            {
                var outcome = NllBackward(model, batch);
                if (!poisoned(++calls)) return outcome;
                if (infiniteGradient)
                {
                    using var _ = no_grad();
                    model.parameters().First().grad!.fill_(double.PositiveInfinity);
                    return outcome;
                }
                return outcome with { Loss = double.NaN };
            },
            Summary = r => new JsonObject { ["steps"] = r.Steps },
        };
    }

    static optim.Optimizer AdamW(CausalLM model) => optim.AdamW(model.parameters(), lr: 1e-2, weight_decay: 0.0);

    static byte[] OptimizerState(optim.Optimizer opt, TempDir dir)
    {
        var path = dir.File($"opt-{Guid.NewGuid():N}.bin");
        ((TorchSharp.Modules.OptimizerHelper)opt).save_state_dict(path);
        return File.ReadAllBytes(path);
    }

    [Fact]
    public void A_non_finite_step_is_skipped_leaving_weights_and_optimizer_state_as_if_it_were_not_taken()
    {
        using var dir = new TempDir();
        using var model = Model();
        using var opt = AdamW(model);
        var result = new StepLoop(model, Tok, opt, model.parameters(), Settings).Run(Work(model, call => call == 3), dir.File("run"), resume: false);
        Assert.Equal((6, 1), (result.Steps, result.SkippedNonFiniteSteps));

        // The oracle: the same schedule and batches written out by hand, with step 3 not taken at all (no optimizer step).
        using var oracle = Model();
        using var oracleOpt = AdamW(oracle);
        var cursor = new DataCursor(Rows.Length, Settings.Seed);
        for (int step = 0; step < 6; step++)
        {
            var batch = cursor.Next(2);
            foreach (var g in oracleOpt.ParamGroups) g.LearningRate = Settings.Lr.At(step);
            if (step == 2) continue;   // 0-based: the third step
            oracleOpt.zero_grad();
            NllBackward(oracle, batch);
            nn.utils.clip_grad_norm_(oracle.parameters(), 1.0);
            oracleOpt.step();
        }
        AssertIdentical(WeightValues.Of(oracle), WeightValues.Of(model));
        Assert.Equal(OptimizerState(oracleOpt, dir), OptimizerState(opt, dir));

        var rows = new RunLog(dir.File("run"), append: true).ReadMetrics();
        Assert.Equal([0, 0, 1, 1, 1, 1], rows.Select(r => r["skipped_nonfinite_steps"]!.GetValue<int>()));
        Assert.Null(rows[2]["loss"]);   // NaN is written as null
        Assert.True(rows.Where((_, i) => i != 2).All(r => double.IsFinite(r["loss"]!.GetValue<double>())));
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("run"), "summary.json")))!;
        Assert.Equal(1, summary["skipped_nonfinite_steps"]!.GetValue<int>());
    }

    [Theory]
    [InlineData(false, "non-finite loss")]
    [InlineData(true, "non-finite gradient norm")]
    public void Past_the_limit_the_run_stops_naming_the_step(bool infiniteGradient, string what)
    {
        using var dir = new TempDir();
        using var model = Model();
        using var opt = AdamW(model);
        var settings = Settings with { MaxNonFiniteSteps = 2 };
        // Steps 3, 4 and 5 are spoilt: 3 and 4 are skipped, the third skip (step 5) is past the limit of 2.
        var e = Assert.Throws<NonFiniteTrainingException>(() =>
            new StepLoop(model, Tok, opt, model.parameters(), settings).Run(Work(model, call => call >= 3, infiniteGradient), dir.Path, resume: false));
        Assert.Contains("test: step 5 had a " + what, e.Message);
        Assert.Contains("limit 2", e.Message);
        Assert.All(WeightValues.Of(model).Values, w => Assert.All(w, x => Assert.True(float.IsFinite(x))));
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "final")));
        Assert.Equal([1, 2, 3, 4], new RunLog(dir.Path, append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>()));
    }

    [Fact]
    public void The_skip_count_survives_a_resume()
    {
        var settings = Settings with { CheckpointEvery = 3 };
        using var straightDir = new TempDir();
        using var straight = Model();
        using (var opt = AdamW(straight))
            new StepLoop(straight, Tok, opt, straight.parameters(), settings).Run(Work(straight, call => call == 2), straightDir.Path, resume: false);

        using var stoppedDir = new TempDir();
        using (var first = Model())
        using (var opt = AdamW(first))
            PreferenceResumeTests.RunUntil("step 4/", (log, ct) =>
                new StepLoop(first, Tok, opt, first.parameters(), settings) { Log = log }.Run(Work(first, call => call == 2), stoppedDir.Path, false, ct));
        using var resumed = Model(seed: 77);
        using var resumedOpt = AdamW(resumed);
        // The resumed work's calls start at step 4, so nothing is poisoned again: the count comes from the checkpoint.
        var result = new StepLoop(resumed, Tok, resumedOpt, resumed.parameters(), settings).Run(Work(resumed, _ => false), stoppedDir.Path, resume: true);
        Assert.Equal(1, result.SkippedNonFiniteSteps);
        AssertIdentical(WeightValues.Of(straight), WeightValues.Of(resumed));
        var rows = new RunLog(stoppedDir.Path, append: true).ReadMetrics();
        Assert.Equal([1, 2, 3, 4, 5, 6], rows.Select(r => r["step"]!.GetValue<int>()));
        Assert.Equal([0, 1, 1, 1, 1, 1], rows.Select(r => r["skipped_nonfinite_steps"]!.GetValue<int>()));
    }

    // ---- Resume through the loop, stopped before the first checkpoint, then after it -------------------------------------

    static List<SftExample> SftData() =>
        Enumerable.Range(0, 9).Select(i => new SftExample("abcd"[i % 4] + "a", "bcd"[..(1 + i % 3)], new Dictionary<string, string>())).ToList();

    [Fact]
    public void Sft_stopped_before_and_after_its_first_checkpoint_resumes_to_the_uninterrupted_weights_logging_each_step_once()
    {
        var o = new SftOptions { MaxSteps = 7, BatchSize = 2, GradientAccumulation = 2, LearningRate = 5e-3, WarmupSteps = 2, LogEvery = 1,
            EvalEvery = 0, CheckpointEvery = 3, KeepCheckpoints = 1 };
        using var straightDir = new TempDir();
        using var straight = Model(5);
        new SftTrainer(straight, Tok, o).Run(SftData(), [], straightDir.Path);

        using var dir = new TempDir();
        using (var a = Model(5))   // dies at step 2: no checkpoint yet
            PreferenceResumeTests.RunUntil("step 2/", (log, ct) => new SftTrainer(a, Tok, o) { Log = log }.Run(SftData(), [], dir.Path, resume: false, cancel: ct));
        Assert.Empty(TrainingCheckpoint.List(Path.Combine(dir.Path, "checkpoints")));
        using (var b = Model(5))   // starts over (rows 1-2 dropped), dies at step 5 after checkpoint 3
            PreferenceResumeTests.RunUntil("step 5/", (log, ct) => new SftTrainer(b, Tok, o) { Log = log }.Run(SftData(), [], dir.Path, resume: true, cancel: ct));
        Assert.Equal([1, 2, 3, 4, 5], Steps(dir.Path));
        using var c = Model(99);   // different init: everything must come from checkpoint 3
        new SftTrainer(c, Tok, o).Run(SftData(), [], dir.Path, resume: true);

        PreferenceResumeTests.AssertSame(WeightValues.Of(straight), WeightValues.Of(c));
        Assert.Equal(Enumerable.Range(1, 7), Steps(dir.Path));
    }

    [Fact]
    public void Prm_stopped_before_and_after_its_first_checkpoint_resumes_to_the_uninterrupted_weights_logging_each_step_once()
    {
        var data = new List<StepLabelledExample>
        {
            new("a", ["b", "c"], [1, 0], NoFields), new("b", ["d"], [1], NoFields), new("ab", ["c", "a", "d"], [1, 1, 0], NoFields),
            new("cd", ["a"], [0], NoFields),
        };
        var o = new PrmOptions { MaxSteps = 6, BatchSize = 3, LearningRate = 1e-2, WarmupSteps = 1, LogEvery = 1, CheckpointEvery = 3, KeepCheckpoints = 1 };
        using var straightDir = new TempDir();
        using var straight = Model(5);
        using var straightHead = new ScalarHead(straight.Config.HiddenSize);
        new PrmTrainer(straight, straightHead, Tok, o).Run(data, [], straightDir.Path);

        using var dir = new TempDir();
        using (var a = Model(5))
        using (var aHead = new ScalarHead(a.Config.HiddenSize))
            PreferenceResumeTests.RunUntil("step 1/", (log, ct) => new PrmTrainer(a, aHead, Tok, o) { Log = log }.Run(data, [], dir.Path, resume: false, ct));
        using (var b = Model(5))
        using (var bHead = new ScalarHead(b.Config.HiddenSize))
            PreferenceResumeTests.RunUntil("step 4/", (log, ct) => new PrmTrainer(b, bHead, Tok, o) { Log = log }.Run(data, [], dir.Path, resume: true, ct));
        Assert.Equal([1, 2, 3, 4], Steps(dir.Path));
        using var c = Model(99);
        using var cHead = new ScalarHead(c.Config.HiddenSize, initStd: 0.5);
        new PrmTrainer(c, cHead, Tok, o).Run(data, [], dir.Path, resume: true);

        PreferenceResumeTests.AssertSame(WeightValues.Of(straight), WeightValues.Of(c));
        PreferenceResumeTests.AssertSame(PreferenceResumeTests.Snapshot(straightHead.named_parameters()), PreferenceResumeTests.Snapshot(cHead.named_parameters()));
        Assert.Equal(Enumerable.Range(1, 6), Steps(dir.Path));
    }

    static readonly Dictionary<string, string> NoFields = [];

    /// <summary>Bit-for-bit equal weights.</summary>
    static void AssertIdentical(Dictionary<string, float[]> a, Dictionary<string, float[]> b)
    {
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, w) in a) Assert.True(w.SequenceEqual(b[name]), $"{name} differs");
    }

    static List<int> Steps(string dir) => new RunLog(dir, append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>()).ToList();
}
