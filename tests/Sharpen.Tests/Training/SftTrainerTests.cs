using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using static TorchSharp.torch;
using Sharpen.Training.Sft;

namespace Sharpen.Tests.Training;

public class SftTrainerTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("0123456789+= ");

    static CausalLM Model(long seed = 1) => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 64 }, seed);

    // "a+b=" → "c": a fixed addition dataset with completions of varying length.
    static List<SftExample> Data(int n, int seed = 0)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ =>
        {
            int a = rng.Next(0, 50), b = rng.Next(0, 50);
            return new SftExample($"{a}+{b}=", (a + b).ToString(), new Dictionary<string, string>());
        }).ToList();
    }

    static Dictionary<string, float[]> Snapshot(CausalLM m) => WeightValues.Of(m);

    [Fact]
    public void Gradient_accumulation_gives_the_gradient_of_the_whole_batch()
    {
        var data = Data(8);
        using var model = Model();
        var big = new SftTrainer(model, Tok, new SftOptions { BatchSize = 8, GradientAccumulation = 1 });
        var small = new SftTrainer(model, Tok, new SftOptions { BatchSize = 2, GradientAccumulation = 4 });
        model.zero_grad();
        var (lossBig, tokens) = big.Backward(data);
        var gradBig = model.parameters().Select(p => p.grad!.clone().contiguous().data<float>().ToArray()).ToList();
        model.zero_grad();
        var (lossSmall, tokensSmall) = small.Backward(data);
        var gradSmall = model.parameters().Select(p => p.grad!.contiguous().data<float>().ToArray()).ToList();
        Assert.Equal(tokens, tokensSmall);
        // Completion tokens: the digits of each sum plus EOS.
        Assert.Equal(data.Sum(e => e.Completion.Length + 1), tokens);
        Assert.True(Math.Abs(lossBig - lossSmall) < 1e-6);
        for (int i = 0; i < gradBig.Count; i++)
            for (int j = 0; j < gradBig[i].Length; j++)
                Assert.True(Math.Abs(gradBig[i][j] - gradSmall[i][j]) < 1e-6, $"param {i} element {j}: {gradBig[i][j]} vs {gradSmall[i][j]}");
    }

    [Fact]
    public void Loss_falls_and_every_parameter_moves_on_a_fixed_dataset()
    {
        using var dir = new TempDir();
        using var model = Model();
        var before = Snapshot(model);
        var o = new SftOptions { MaxSteps = 60, BatchSize = 16, LearningRate = 1e-2, WarmupSteps = 5, LogEvery = 5, EvalEvery = 0, CheckpointEvery = 0 };
        var result = new SftTrainer(model, Tok, o).Run(Data(16), Data(16, seed: 9), dir.Path);   // 16 examples: memorisable
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        double first = rows[0]["loss"]!.GetValue<double>(), last = rows[^1]["loss"]!.GetValue<double>();
        Assert.True(last < 0.5 * first, $"loss went from {first} to {last}");
        Assert.True(double.IsFinite(result.FinalLoss));
        var after = Snapshot(model);
        foreach (var (name, w) in before) Assert.False(w.SequenceEqual(after[name]), $"{name} did not change");
        Assert.True(File.Exists(Path.Combine(dir.Path, "summary.json")));
        Assert.True(File.Exists(Path.Combine(dir.Path, "final", "model.safetensors")));
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal(60, summary["steps"]!.GetValue<int>());
        Assert.Equal(12, rows.Count);
    }

    [Fact]
    public void A_stopped_and_resumed_run_ends_with_the_weights_of_an_uninterrupted_run()
    {
        var data = Data(40);
        var o = new SftOptions { MaxSteps = 8, BatchSize = 6, GradientAccumulation = 2, LearningRate = 2e-3, WarmupSteps = 2, LogEvery = 1, EvalEvery = 0, CheckpointEvery = 3, KeepCheckpoints = 1 };

        using var straightDir = new TempDir();
        using var straight = Model(seed: 5);
        new SftTrainer(straight, Tok, o).Run(data, [], straightDir.Path);

        using var stoppedDir = new TempDir();
        using (var first = Model(seed: 5))
        {
            using var cts = new CancellationTokenSource();
            var trainer = new SftTrainer(first, Tok, o) { Log = line => { if (line.StartsWith("step 7/")) cts.Cancel(); } };
            Assert.Throws<OperationCanceledException>(() => trainer.Run(data, [], stoppedDir.Path, cancel: cts.Token));
        }
        // Only the newest checkpoint (step 6) is kept; the run died after step 7.
        var kept = Directory.GetDirectories(Path.Combine(stoppedDir.Path, "checkpoints"));
        Assert.Equal(["checkpoint-6"], kept.Select(Path.GetFileName));

        using var resumed = Model(seed: 99);   // different init: everything must come from the checkpoint
        new SftTrainer(resumed, Tok, o).Run(data, [], stoppedDir.Path, resume: true);
        var a = Snapshot(straight);
        var b = Snapshot(resumed);
        foreach (var (name, w) in a)
            for (int i = 0; i < w.Length; i++)
                Assert.True(Math.Abs(w[i] - b[name][i]) < 1e-6, $"{name}[{i}]: {w[i]} vs {b[name][i]}");
        // Metrics rows after the checkpoint were replaced, not duplicated.
        var steps = new RunLog(stoppedDir.Path, append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>()).ToList();
        Assert.Equal(Enumerable.Range(1, 8), steps);
    }

    [Fact]
    public void Warmup_then_cosine_schedule_matches_hand_values()
    {
        var s = new LrSchedule(Peak: 1.0, WarmupSteps: 10, TotalSteps: 110, MinRatio: 0.1);
        Assert.Equal(0.1, s.At(0), 12);
        Assert.Equal(1.0, s.At(9), 12);
        Assert.Equal(1.0, s.At(10), 12);
        Assert.Equal(0.55, s.At(60), 12);       // half way: 0.1 + 0.9 · (1 + cos π/2) / 2
        Assert.Equal(0.1, s.At(110), 12);
        Assert.Equal(0.1, s.At(500), 12);
    }

    [Fact]
    public void Bad_options_name_the_recipe_key()
    {
        Assert.Contains("sft.batch_size", Assert.Throws<ArgumentException>(() => new SftOptions { BatchSize = 0 }.Validate()).Message);
        Assert.Contains("sft.min_lr_ratio", Assert.Throws<ArgumentException>(() => new SftOptions { MinLrRatio = 2 }.Validate()).Message);
    }
}
