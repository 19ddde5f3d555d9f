using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Training.RewardModels;

namespace Sharpen.Tests.Training;

public class PrmTrainerTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abx\n");

    static CausalLM Model(long seed = 1) => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 32 }, seed);

    static readonly string[] Good = ["ab\n", "ba\n", "aa\n", "bb\n"];
    static readonly string[] Bad = ["ax\n", "xa\n", "xb\n"];

    /// <summary>Solutions of 1–3 steps; a step with an "x" is wrong, and a solution stays wrong after it (label 0 from the first bad step on).</summary>
    static List<StepLabelledExample> Synthetic(int n, int seed)
    {
        var rng = new Random(seed);
        var rows = new List<StepLabelledExample>();
        for (int i = 0; i < n; i++)
        {
            int k = rng.Next(1, 4);
            var steps = new List<string>();
            var labels = new List<double>();
            bool ok = true;
            for (int t = 0; t < k; t++)
            {
                bool bad = rng.NextDouble() < 0.3;
                steps.Add(bad ? Bad[rng.Next(Bad.Length)] : Good[rng.Next(Good.Length)]);
                ok &= !bad;
                labels.Add(ok ? 1 : 0);
            }
            rows.Add(new StepLabelledExample("b", steps, labels, new Dictionary<string, string>()));
        }
        return rows;
    }

    [Fact]
    public void Stopped_and_resumed_ends_with_the_weights_of_an_uninterrupted_run()
    {
        var data = Synthetic(10, seed: 4);
        var o = new PrmOptions { MaxSteps = 7, BatchSize = 4, LearningRate = 1e-2, WarmupSteps = 2, LogEvery = 1, CheckpointEvery = 3, KeepCheckpoints = 1 };
        using var straightDir = new TempDir();
        using var straight = Model(5);
        using var straightHead = new ScalarHead(straight.Config.HiddenSize);
        new PrmTrainer(straight, straightHead, Tok, o).Run(data, [], straightDir.Path);

        using var stoppedDir = new TempDir();
        using (var first = Model(5))
        using (var firstHead = new ScalarHead(first.Config.HiddenSize))
            PreferenceResumeTests.RunUntil("step 5/", (log, ct) => new PrmTrainer(first, firstHead, Tok, o) { Log = log }.Run(data, [], stoppedDir.Path, ct));
        Assert.Equal(["checkpoint-3"], Directory.GetDirectories(Path.Combine(stoppedDir.Path, "checkpoints")).Select(Path.GetFileName));

        using var resumed = Model(99);                                  // another init: backbone and head come from the checkpoint
        using var resumedHead = new ScalarHead(resumed.Config.HiddenSize, initStd: 0.5);
        var result = new PrmTrainer(resumed, resumedHead, Tok, o).Run(data, [], stoppedDir.Path, resume: true);
        Assert.Equal(7, result.Steps);
        PreferenceResumeTests.AssertSame(PreferenceResumeTests.Snapshot(straight.named_parameters()), PreferenceResumeTests.Snapshot(resumed.named_parameters()));
        PreferenceResumeTests.AssertSame(PreferenceResumeTests.Snapshot(straightHead.named_parameters()), PreferenceResumeTests.Snapshot(resumedHead.named_parameters()));
        Assert.Equal(Enumerable.Range(1, 7), new RunLog(stoppedDir.Path, append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>()));
    }

    [Fact]
    public void The_first_loss_is_ln2_and_micro_batching_does_not_change_the_update()
    {
        var data = Synthetic(16, seed: 3);
        var losses = new List<double[]>();
        foreach (var micro in new[] { 0, 3 })
        {
            using var dir = new TempDir();
            using var model = Model();
            using var head = new ScalarHead(model.Config.HiddenSize);
            var o = new PrmOptions { MaxSteps = 2, BatchSize = 8, MicroBatchSize = micro, LearningRate = 1e-2, WarmupSteps = 0, LogEvery = 1 };
            new PrmTrainer(model, head, Tok, o).Run(data, [], dir.Path);
            losses.Add(new RunLog(dir.Path, append: true).ReadMetrics().Select(r => r["loss"]!.GetValue<double>()).ToArray());
        }
        // A zero head gives logit 0 at every step: BCE(0, y) = ln 2 for any label y.
        Assert.Equal(Math.Log(2), losses[0][0], 5);
        Assert.Equal(Math.Log(2), losses[1][0], 5);
        // The step-2 loss follows one update; with the loss divided by the batch's step count the update is the same.
        Assert.NotEqual(losses[0][0], losses[0][1], 4);
        Assert.Equal(losses[0][1], losses[1][1], 4);
    }

    [Fact]
    public async Task Learns_to_flag_steps_after_a_bad_marker_and_the_folder_scores_as_a_prm()
    {
        using var dir = new TempDir();
        var train = Synthetic(64, seed: 1);
        var heldOut = Synthetic(24, seed: 2);
        PrmResult result;
        using (var model = Model(seed: 2))
        using (var head = new ScalarHead(model.Config.HiddenSize))
        {
            var o = new PrmOptions { MaxSteps = 80, BatchSize = 16, LearningRate = 1e-2, WarmupSteps = 5, LogEvery = 20, EvalEvery = 40, StepSplitter = "newline" };
            result = new PrmTrainer(model, head, Tok, o).Run(train, heldOut, dir.Path);
        }
        Assert.True(result.HeldOutStepAccuracy > 0.9, $"held-out step accuracy {result.HeldOutStepAccuracy}");
        Assert.NotNull(result.HeldOutFirstError);

        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal([20, 40, 60, 80], rows.Select(r => r["step"]!.GetValue<int>()));
        Assert.NotNull(rows[1]["held_out_first_error_f1"]);
        Assert.Null(rows[0]["held_out_step_accuracy"]);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal(result.HeldOutStepAccuracy, summary["held_out_step_accuracy"]!.GetValue<double>(), 5);
        Assert.Equal(64, summary["solutions"]!.GetValue<int>());

        var final = Path.Combine(dir.Path, "final");
        Assert.True(File.Exists(Path.Combine(final, ProcessRewardModel.MarkerFile)));
        using var prm = new ProcessRewardModel(final, microBatch: 5);
        Assert.Equal("newline", prm.Splitter.Kind);
        var scores = prm.ScoreSteps(heldOut.Select(r => (r.Prompt, r.Steps)).ToList());
        // The loaded folder reproduces the trainer's held-out step accuracy.
        Assert.Equal(result.HeldOutStepAccuracy, PrmMetrics.StepAccuracy(heldOut.Select(r => r.Labels).ToList(), scores.Select(s => (IReadOnlyList<double>)s).ToList()), 6);
        Assert.Empty(prm.ScoreSteps([("b", Array.Empty<string>())])[0]);

        var reward = prm.AsReward(StepAggregation.Min);
        var ctx = new[] { "ab\nba\n", "ab\nax\n", "" }.Select(c => new RewardContext("b", c, new Dictionary<string, string>(), c.Length)).ToList();
        var r = await reward.ScoreAsync(ctx);
        var steps = prm.ScoreSteps([("b", ["ab\n", "ba\n"]), ("b", ["ab\n", "ax\n"])]);
        Assert.Equal(steps[0].Min(), r[0]!.Value, 6);
        Assert.Equal(steps[1].Min(), r[1]!.Value, 6);
        Assert.True(r[0] > r[1], $"good {r[0]} vs bad {r[1]}");
        Assert.Null(r[2]);
    }

    [Fact]
    public void A_folder_without_the_marker_is_an_error_naming_it()
    {
        using var dir = new TempDir();
        var folder = Path.Combine(dir.Path, "rm");
        using (var model = Model())
        using (var head = new ScalarHead(model.Config.HiddenSize))
            HfCheckpoint.Save(folder, model, Tok, head);
        var e = Assert.Throws<CheckpointException>(() => new ProcessRewardModel(folder));
        Assert.Contains(folder, e.Message);
        Assert.Contains(ProcessRewardModel.MarkerFile, e.Message);
        File.WriteAllText(Path.Combine(folder, ProcessRewardModel.MarkerFile), """{"kind": "prm", "step_splitter": "sideways"}""");
        e = Assert.Throws<CheckpointException>(() => new ProcessRewardModel(folder));
        Assert.Contains("sideways", e.Message);
    }

    [Fact]
    public void Options_are_validated_with_recipe_keys()
    {
        Assert.Contains("prm.threshold", Assert.Throws<ArgumentException>(() => new PrmOptions { Threshold = 1 }.Validate()).Message);
        Assert.Contains("prm.step_splitter", Assert.Throws<ArgumentException>(() => new PrmOptions { StepSplitter = "x" }.Validate()).Message);
        Assert.Contains("prm.batch_size", Assert.Throws<ArgumentException>(() => new PrmOptions { BatchSize = 0 }.Validate()).Message);
    }
}
