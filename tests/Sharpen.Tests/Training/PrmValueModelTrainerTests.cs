using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Training.ExpertIteration;
using Sharpen.Training.RewardModels;

namespace Sharpen.Tests.Training;

/// <summary>ReST-MCTS*'s PRM value model: trained per iteration on the value targets, continued from the previous
/// iteration's, and loaded rather than retrained when its folder is complete (what a resumed run relies on).</summary>
public class PrmValueModelTrainerTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create(" :0123456789abcdns");

    static (CausalLM, ITokenizer) Base() => (new CausalLM(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 32 }, 3), Tok);

    // Targets of SearchStrategyTests' tree: the path "b c ans:7" rises to 1, the wrong branches fall to 0.
    static string Targets(TempDir dir, int k)
    {
        var iterDir = Path.Combine(dir.Path, $"iter-{k}");
        Directory.CreateDirectory(iterDir);
        var path = Path.Combine(iterDir, MctsExpertSampler.TargetsFile);
        var none = new Dictionary<string, string>();
        StepLabelledExample.Write(path,
        [
            new("Q:", ["b ", "c ", "ans:7"], [1.0 / 3, 2.0 / 3, 1], none),
            new("Q:", ["b ", "d ", "ans:2"], [1.0 / 3, 0, 0], none),
            new("Q:", ["a ", "ans:1"], [0, 0], none),
        ]);
        return path;
    }

    static readonly (string, IReadOnlyList<string>)[] Probe = [("Q:", ["b ", "c ", "ans:7"]), ("Q:", ["a ", "ans:1"])];

    [Fact]
    public void Trains_on_the_targets_continues_from_the_previous_iteration_and_reloads_a_finished_folder()
    {
        using var dir = new TempDir();
        var o = new PrmOptions { MaxSteps = 30, BatchSize = 3, LearningRate = 3e-2, WarmupSteps = 0, StepSplitter = "delimiter: ", LogEvery = 10 };
        int baseLoads = 0;
        double[][] first;
        using (var trainer = new PrmValueModelTrainer(() => { baseLoads++; return Base(); }, o))
        {
            var scorer = trainer.Train(1, Targets(dir, 1), Path.Combine(dir.Path, "iter-1"))!;
            first = scorer.ScoreSteps(Probe);
            // The head starts at zero (σ = 0.5 everywhere); 30 steps on the targets separate the right path from the wrong one.
            Assert.True(first[0][^1] > 0.6 && first[1][^1] < 0.4, $"{first[0][^1]} vs {first[1][^1]}");
            Assert.Equal(1, baseLoads);
            // An empty step (a path that ended at once) is not sent to the PRM: it takes the score of the step before it.
            var withEmpty = scorer.ScoreSteps([("Q:", ["b ", "c ", "", "ans:7"])])[0];
            Assert.Equal(4, withEmpty.Length);
            Assert.Equal(first[0][0], withEmpty[0], 6);
            Assert.Equal(first[0][1], withEmpty[1], 6);
            Assert.Equal(first[0][1], withEmpty[2], 6);
            Assert.Equal(first[0][2], withEmpty[3], 6);

            trainer.Train(2, Targets(dir, 2), Path.Combine(dir.Path, "iter-2"));
            Assert.Equal(1, baseLoads);                        // iteration 2 starts from iteration 1's value model, not the base
        }
        var iter1 = Path.Combine(dir.Path, "iter-1", PrmValueModelTrainer.Folder, "final", ProcessRewardModel.MarkerFile);
        var written = File.GetLastWriteTimeUtc(iter1);

        // A resumed run asks again for iteration 1: the folder is loaded, not retrained, and scores the same.
        using var again = new PrmValueModelTrainer(() => { baseLoads++; return Base(); }, o);
        var reloaded = again.Train(1, Path.Combine(dir.Path, "iter-1", MctsExpertSampler.TargetsFile), Path.Combine(dir.Path, "iter-1"))!.ScoreSteps(Probe);
        Assert.Equal(1, baseLoads);
        Assert.Equal(written, File.GetLastWriteTimeUtc(iter1));
        for (int i = 0; i < first.Length; i++)
            for (int t = 0; t < first[i].Length; t++) Assert.Equal(first[i][t], reloaded[i][t], 6);
    }

    [Fact]
    public void No_targets_keeps_the_previous_value_model()
    {
        using var dir = new TempDir();
        var iterDir = Path.Combine(dir.Path, "iter-1");
        Directory.CreateDirectory(iterDir);
        var empty = Path.Combine(iterDir, MctsExpertSampler.TargetsFile);
        File.WriteAllText(empty, "");
        using var trainer = new PrmValueModelTrainer(Base, new PrmOptions { MaxSteps = 2 });
        Assert.Null(trainer.Train(1, empty, iterDir));
        Assert.False(Directory.Exists(Path.Combine(iterDir, PrmValueModelTrainer.Folder)));
    }
}
