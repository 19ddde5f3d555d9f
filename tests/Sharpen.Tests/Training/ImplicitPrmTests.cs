using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using static TorchSharp.torch;
using Sharpen.Recipes;
using Sharpen.Training.RewardModels;

namespace Sharpen.Tests.Training;

public class ImplicitPrmTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abc\n");

    static CausalLM Model(long seed) => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 32 }, seed);

    /// <summary>log π(ids[t] | ids[..t]) for every t ≥ start, one unpadded forward pass per position (no batching, no gather tricks).</summary>
    static double[] NaiveLogProbs(CausalLM model, int[] ids, int start)
    {
        var result = new double[ids.Length - start];
        using var _ = no_grad();
        for (int t = start; t < ids.Length; t++)
        {
            using var scope = NewDisposeScope();
            var logits = model.Forward(tensor(ids.Take(t).Select(i => (long)i).ToArray()).view(1, t)).Logits;   // (1, t, V)
            var row = logits[0, t - 1].to(ScalarType.Float64).data<double>().ToArray();
            double max = row.Max(), lse = max + Math.Log(row.Sum(x => Math.Exp(x - max)));
            result[t - start] = row[ids[t]] - lse;
        }
        return result;
    }

    [Fact]
    public void Step_rewards_are_beta_times_each_steps_log_ratio_and_sum_to_the_outcome_reward()
    {
        using var policy = Model(seed: 1);
        using var reference = Model(seed: 2);
        const double beta = 0.5;
        var prm = new ImplicitPrm(policy, reference, Tok, beta, StepSplitter.Newline, microBatch: 2);
        (string Prompt, IReadOnlyList<string> Steps)[] items =
            [("ab", ["a\n", "bc\n", "c"]), ("c", ["ccc\n"]), ("a", ["b\n", "a"]), ("b", [])];
        var scores = prm.ScoreSteps(items);   // micro-batches of 2 with different lengths (padding)
        Assert.Empty(scores[3]);
        for (int i = 0; i < 3; i++)
        {
            var (prompt, steps) = items[i];
            var promptIds = Tok.Encode(prompt).ToArray();
            var ids = promptIds.Concat(steps.SelectMany(s => Tok.Encode(s, addSpecialTokens: false))).ToArray();
            var lp = NaiveLogProbs(policy, ids, promptIds.Length);
            var lr = NaiveLogProbs(reference, ids, promptIds.Length);
            Assert.Equal(steps.Count, scores[i].Length);
            int k = 0;
            for (int t = 0; t < steps.Count; t++)
            {
                double expected = 0;
                for (int j = 0; j < steps[t].Length; j++, k++) expected += beta * (lp[k] - lr[k]);   // one token per character
                Assert.Equal(expected, scores[i][t], 4);
            }
            double outcome = beta * (lp.Sum() - lr.Sum());
            Assert.Equal(outcome, scores[i].Sum(), 4);
            Assert.Equal(outcome, prm.OutcomeRewards([items[i]])[0], 4);
        }
    }

    static List<OutcomeExample> Outcomes()
    {
        var none = new Dictionary<string, string>();
        var rows = new List<OutcomeExample>();
        for (int i = 0; i < 4; i++)
        {
            rows.Add(new OutcomeExample("ab", "a\nc", 1, none));
            rows.Add(new OutcomeExample("ab", "b\nc", 0, none));
            rows.Add(new OutcomeExample("ba", "c\na", 1, none));
            rows.Add(new OutcomeExample("ba", "c\nb", 0, none));
        }
        return rows;
    }

    [Fact]
    public void Stopped_and_resumed_ends_with_the_weights_of_an_uninterrupted_run()
    {
        // 16 rows, batch 3: the order wraps epochs mid-batch; checkpoint at step 3, stop during step 5.
        var o = new ImplicitPrmOptions { Loss = "ce", Beta = 0.5, MaxSteps = 7, BatchSize = 3, LearningRate = 1e-2, WarmupSteps = 2, LogEvery = 1, CheckpointEvery = 3, KeepCheckpoints = 1 };
        using var straightDir = new TempDir();
        using var straight = Model(seed: 3);
        new ImplicitPrmTrainer(straight, Tok, o).Run(Outcomes(), straightDir.Path);

        using var stoppedDir = new TempDir();
        using (var first = Model(seed: 3))
            PreferenceResumeTests.RunUntil("step 5/", (log, ct) => new ImplicitPrmTrainer(first, Tok, o) { Log = log }.Run(Outcomes(), stoppedDir.Path, ct));
        Assert.Equal(["checkpoint-3"], Directory.GetDirectories(Path.Combine(stoppedDir.Path, "checkpoints")).Select(Path.GetFileName));

        using var resumed = Model(seed: 3);     // the starting model: the reference is its frozen copy, then step 3 is loaded
        var result = new ImplicitPrmTrainer(resumed, Tok, o).Run(Outcomes(), stoppedDir.Path, resume: true);
        Assert.Equal(7, result.Steps);
        PreferenceResumeTests.AssertSame(PreferenceResumeTests.Snapshot(straight.named_parameters()), PreferenceResumeTests.Snapshot(resumed.named_parameters()));
        Assert.Equal(Enumerable.Range(1, 7), new RunLog(stoppedDir.Path, append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>()));
        // The saved reference is the starting model, not the checkpoint's weights.
        using var savedRef = HfCheckpoint.Load(Path.Combine(result.FinalCheckpoint, ImplicitPrm.ReferenceFolder)).Model;
        using var start = Model(seed: 3);
        PreferenceResumeTests.AssertSame(PreferenceResumeTests.Snapshot(start.named_parameters()), PreferenceResumeTests.Snapshot(savedRef.named_parameters()));
    }

    [Theory]
    [InlineData("ce")]
    [InlineData("dpo")]
    public void Trains_on_outcome_labels_only_and_the_folder_gives_step_rewards(string loss)
    {
        using var dir = new TempDir();
        ImplicitPrmResult result;
        double[][] inMemory;
        (string, IReadOnlyList<string>)[] items = [("ab", ["a\n", "c"]), ("ab", ["b\n", "c"]), ("ba", ["c\n", "a"]), ("ba", ["c\n", "b"])];
        using (var policy = Model(seed: 3))
        {
            var o = new ImplicitPrmOptions { Loss = loss, Beta = 0.5, MaxSteps = 20, BatchSize = 4, MicroBatchSize = 3, LearningRate = 1e-2, WarmupSteps = 0, LogEvery = 5 };
            result = new ImplicitPrmTrainer(policy, Tok, o).Run(Outcomes(), dir.Path);
            using var reference = HfCheckpoint.Load(Path.Combine(result.FinalCheckpoint, ImplicitPrm.ReferenceFolder)).Model;
            inMemory = new ImplicitPrm(policy, reference, Tok, 0.5, StepSplitter.Newline).ScoreSteps(items);
        }
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal(5, rows[0]["step"]!.GetValue<int>());
        Assert.Equal(loss == "dpo" ? 32 : 16, result.Examples);   // dpo: 2 prompts × (4 correct × 4 incorrect) pairs
        Assert.True(result.FinalLoss < 0.5 * Math.Log(2), $"final loss {result.FinalLoss}");
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal(loss, summary["loss"]!.GetValue<string>());

        using var prm = ImplicitPrm.Load(result.FinalCheckpoint);
        Assert.Equal(0.5, prm.Beta);
        Assert.Equal("newline", prm.Splitter.Kind);
        var scores = prm.ScoreSteps(items);
        for (int i = 0; i < items.Length; i++) Assert.Equal(inMemory[i], scores[i], (a, b) => Math.Abs(a - b) < 1e-4);
        // An empty step (a search path that ended at once) leaves the prefix unchanged: step reward 0, the others as without it.
        var withEmpty = prm.ScoreSteps([("ab", ["a\n", "", "c"])])[0];
        Assert.Equal(3, withEmpty.Length);
        Assert.Equal(0.0, withEmpty[1]);
        Assert.Equal(scores[0][0], withEmpty[0], 4);   // float32, another batch shape: the 1e-4 of the comparison above
        Assert.Equal(scores[0][1], withEmpty[2], 4);
        // Trained on outcomes only, the correct solutions out-score the incorrect ones of the same prompt.
        Assert.True(scores[0].Sum() > scores[1].Sum(), $"{scores[0].Sum()} vs {scores[1].Sum()}");
        Assert.True(scores[2].Sum() > scores[3].Sum(), $"{scores[2].Sum()} vs {scores[3].Sum()}");
        // In "ab → a|b, c" the steps differ in the first step: the first step carries the difference.
        Assert.True(scores[0][0] > scores[1][0]);
    }

    [Fact]
    public void The_first_step_loss_is_ln2_because_the_policy_starts_as_the_reference()
    {
        using var dir = new TempDir();
        using var policy = Model(seed: 5);
        var o = new ImplicitPrmOptions { Beta = 0.3, MaxSteps = 1, BatchSize = 6, WarmupSteps = 0, LogEvery = 1 };
        var result = new ImplicitPrmTrainer(policy, Tok, o).Run(Outcomes(), dir.Path);
        Assert.Equal(Math.Log(2), result.FinalLoss, 5);
    }

    [Fact]
    public void Bad_folders_and_options_are_errors_naming_them()
    {
        using var dir = new TempDir();
        var folder = Path.Combine(dir.Path, "policy");
        using (var m = Model(1)) HfCheckpoint.Save(folder, m, Tok);
        var e = Assert.Throws<CheckpointException>(() => ImplicitPrm.Load(folder));
        Assert.Contains(ImplicitPrm.MarkerFile, e.Message);
        ImplicitPrm.WriteMarker(folder, 0.1, "newline", "ce");
        e = Assert.Throws<CheckpointException>(() => ImplicitPrm.Load(folder));
        Assert.Contains("reference", e.Message);
        Assert.Contains("implicit_prm.loss", Assert.Throws<ArgumentException>(() => new ImplicitPrmOptions { Loss = "mse" }.Validate()).Message);
        Assert.Contains("implicit_prm.beta", Assert.Throws<ArgumentException>(() => new ImplicitPrmOptions { Beta = 0 }.Validate()).Message);

        using var policy = Model(2);
        var onlyCorrect = Outcomes().Where(x => x.Label == 1).ToList();
        var ex = Assert.Throws<ArgumentException>(() => new ImplicitPrmTrainer(policy, Tok, new ImplicitPrmOptions { Loss = "dpo" }).Run(onlyCorrect, dir.Path));
        Assert.Contains("no prompt has both", ex.Message);
    }
}

public class ProcessRewardRecipeTests
{
    [Theory]
    [InlineData("kind: prm\nmodel: { path: m }\n", "a prm recipe needs 'data.train'")]
    [InlineData("kind: prm\nmodel: { path: m }\ndata: { train: x }\nprm: { max_stepz: 3 }\n", "'prm.max_stepz'")]
    [InlineData("kind: prm\nmodel: { path: m }\ndata: { train: x }\nprm: { step_splitter: sideways }\n", "prm.step_splitter")]
    [InlineData("kind: prm\nmodel: { init: { hidden_size: 16 } }\ndata: { train: x }\n", "needs 'model.tokenizer'")]
    [InlineData("kind: implicit_prm\nmodel: { path: m }\ndata: { train: x }\nimplicit_prm: { loss: mse }\n", "implicit_prm.loss is 'mse'")]
    [InlineData("kind: implicit_prm\nmodel: { path: m }\n", "an implicit-prm recipe needs 'data.train'")]
    public void Bad_process_reward_recipes_name_the_key(string yaml, string expected)
    {
        var e = Assert.Throws<RecipeException>(() => Recipe.Parse(yaml, "r.yaml"));
        Assert.StartsWith("r.yaml: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void The_shipped_process_reward_recipes_parse()
    {
        var prm = Recipe.Load(RepoPaths.Of("recipes", "prm-countdown.yaml"));
        Assert.Equal("prm", prm.Kind);
        Assert.Equal("countdown", prm.PrmOptions().StepSplitter);
        var implicitPrm = Recipe.Load(RepoPaths.Of("recipes", "implicit-prm-countdown.yaml"));
        Assert.Equal("implicit_prm", implicitPrm.Kind);
        Assert.Equal(0.05, implicitPrm.ImplicitPrmOptions().Beta);
        Assert.Equal("ce", implicitPrm.ImplicitPrmOptions().Loss);
    }
}
