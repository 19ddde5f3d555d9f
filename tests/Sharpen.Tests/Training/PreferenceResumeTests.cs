using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using TorchSharp;
using Sharpen.Training.Preference;
using Sharpen.Training.RewardModels;

namespace Sharpen.Tests.Training;

/// <summary>Stop-and-resume equals an uninterrupted run, for the DPO trainer and the reward-model trainer.</summary>
public class PreferenceResumeTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcd");

    static CausalLM Model(long seed) => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 16 }, seed);

    // Five different pairs, so the seeded order matters; batch 3 over 5 pairs wraps epochs mid-batch.
    static List<PreferenceExample> Pairs() =>
    [
        new("a", "c", "d"), new("b", "b", "a"), new("ab", "cd", "dc"), new("ba", "a", "bb"), new("c", "dd", "c"),
    ];

    internal static Dictionary<string, float[]> Snapshot(IEnumerable<(string name, TorchSharp.Modules.Parameter parameter)> ps) =>
        ps.ToDictionary(p => p.name, p => p.parameter.detach().contiguous().data<float>().ToArray());

    internal static void AssertSame(Dictionary<string, float[]> a, Dictionary<string, float[]> b)
    {
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, w) in a)
            for (int i = 0; i < w.Length; i++)
                Assert.True(Math.Abs(w[i] - b[name][i]) < 1e-6, $"{name}[{i}]: {w[i]} vs {b[name][i]}");
    }

    /// <summary>Runs <paramref name="run"/> and cancels it when a log line starts with <paramref name="stopAt"/>.</summary>
    internal static void RunUntil(string stopAt, Action<Action<string>, CancellationToken> run)
    {
        using var cts = new CancellationTokenSource();
        Assert.Throws<OperationCanceledException>(() => run(line => { if (line.StartsWith(stopAt)) cts.Cancel(); }, cts.Token));
    }

    [Fact]
    public void Dpo_stopped_and_resumed_ends_with_the_weights_of_an_uninterrupted_run()
    {
        var o = new PreferenceOptions { MaxSteps = 7, BatchSize = 3, LearningRate = 1e-2, WarmupSteps = 2, LogEvery = 1, CheckpointEvery = 3, KeepCheckpoints = 1 };
        using var straightDir = new TempDir();
        using var straight = Model(5);
        new PreferenceTrainer(straight, Tok, o).Run(Pairs(), straightDir.Path);

        using var stoppedDir = new TempDir();
        using (var first = Model(5))
            RunUntil("step 5/", (log, ct) => new PreferenceTrainer(first, Tok, o) { Log = log }.Run(Pairs(), stoppedDir.Path, ct));
        Assert.Equal(["checkpoint-3"], Directory.GetDirectories(Path.Combine(stoppedDir.Path, "checkpoints")).Select(Path.GetFileName));

        // The resumed trainer is handed the starting model (its weights key the reference cache), then loads step 3.
        using var resumed = Model(5);
        var result = new PreferenceTrainer(resumed, Tok, o).Run(Pairs(), stoppedDir.Path, resume: true);
        Assert.Equal(7, result.Steps);
        AssertSame(Snapshot(straight.named_parameters()), Snapshot(resumed.named_parameters()));
        var steps = new RunLog(stoppedDir.Path, append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>());
        Assert.Equal(Enumerable.Range(1, 7), steps);
    }

    [Fact]
    public void Reward_model_stopped_and_resumed_ends_with_the_weights_of_an_uninterrupted_run()
    {
        var o = new RewardModelOptions { MaxSteps = 7, BatchSize = 3, LearningRate = 1e-2, WarmupSteps = 2, LogEvery = 1, CheckpointEvery = 3, KeepCheckpoints = 1 };
        using var straightDir = new TempDir();
        using var straight = Model(5);
        using var straightHead = new ScalarHead(straight.Config.HiddenSize);
        new RewardModelTrainer(straight, straightHead, Tok, o).Run(Pairs(), straightDir.Path);

        using var stoppedDir = new TempDir();
        using (var first = Model(5))
        using (var firstHead = new ScalarHead(first.Config.HiddenSize))
            RunUntil("step 5/", (log, ct) => new RewardModelTrainer(first, firstHead, Tok, o) { Log = log }.Run(Pairs(), stoppedDir.Path, ct));

        using var resumed = Model(99);   // different init: backbone and head must come from the checkpoint
        using var resumedHead = new ScalarHead(resumed.Config.HiddenSize, initStd: 0.5);
        var result = new RewardModelTrainer(resumed, resumedHead, Tok, o).Run(Pairs(), stoppedDir.Path, resume: true);
        Assert.Equal(7, result.Steps);
        AssertSame(Snapshot(straight.named_parameters()), Snapshot(resumed.named_parameters()));
        AssertSame(Snapshot(straightHead.named_parameters()), Snapshot(resumedHead.named_parameters()));
        var steps = new RunLog(stoppedDir.Path, append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>());
        Assert.Equal(Enumerable.Range(1, 7), steps);
    }
}
