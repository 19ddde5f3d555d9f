using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Recipes;
using Sharpen.Rewards;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training.RewardModels;

namespace Sharpen.Tests.Recipes;

/// <summary>Easy-to-Hard's move: a process reward model named in an rl recipe's <c>rewards</c> scores completions step by step.</summary>
public class PrmRewardTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abx\n");

    /// <summary>A real PRM folder: a tiny backbone and head trained a few steps on newline-separated steps ("x" marks a wrong step).</summary>
    static string TrainPrm(string root)
    {
        var rows = new List<StepLabelledExample>
        {
            new("b", ["ab\n", "ba\n"], [1, 1], new Dictionary<string, string>()),
            new("b", ["ab\n", "ax\n"], [1, 0], new Dictionary<string, string>()),
            new("b", ["xa\n", "bb\n"], [0, 0], new Dictionary<string, string>()),
            new("b", ["aa\n"], [1], new Dictionary<string, string>()),
        };
        using var model = new CausalLM(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 32 }, 3);
        using var head = new ScalarHead(model.Config.HiddenSize, initStd: 0.5);
        var o = new PrmOptions { MaxSteps = 3, BatchSize = 4, LearningRate = 1e-2, WarmupSteps = 0, LogEvery = 1, StepSplitter = "newline" };
        new PrmTrainer(model, head, Tok, o).Run(rows, [], root);
        return Path.Combine(root, "final");
    }

    static RewardContext Ctx(string completion) => new("b", completion, new Dictionary<string, string>(), completion.Length);

    [Fact]
    public async Task A_prm_entry_scores_each_step_and_aggregates_as_asked()
    {
        using var dir = new TempDir();
        var folder = TrainPrm(dir.Path);
        using var prm = new ProcessRewardModel(folder);
        var steps = prm.ScoreSteps([("b", ["ab\n", "ax\n", "ba\n"])])[0];
        Assert.Equal(3, steps.Length);
        Assert.True(steps.Distinct().Count() == 3, "a head with random init scores three different steps differently");

        foreach (var (aggregate, expected) in new[] { ("min", steps.Min()), ("last", steps[2]), ("mean", (steps[0] + steps[1] + steps[2]) / 3), (null, steps.Min()) })
        {
            var yaml = $"kind: rl\nmodel: {{ path: m }}\ndata: {{ train: x.jsonl }}\nrewards: [{{ prm: '{folder}', weight: 2" + (aggregate is null ? "" : $", aggregate: {aggregate}") + " }]\n";
            var recipe = Recipe.Parse(yaml);
            var rewards = RlPipeline.BuildRewards(recipe.Rewards, null);
            try
            {
                var w = Assert.Single(rewards);
                Assert.Equal(2.0, w.Weight);
                Assert.Equal("prm", w.Function.Name);
                var scores = await w.Function.ScoreAsync([Ctx("ab\nax\nba\n"), Ctx("")]);
                Assert.Equal(expected, scores[0]!.Value, 6);
                Assert.Null(scores[1]);                  // no step: not applicable
            }
            finally { foreach (var d in rewards.Select(x => x.Function).OfType<IDisposable>()) d.Dispose(); }
        }
    }

    [Fact]
    public void Bad_prm_entries_are_errors_naming_the_entry()
    {
        using var dir = new TempDir();
        Recipe R(string entry) => Recipe.Parse($"kind: rl\nmodel: {{ path: m }}\ndata: {{ train: x.jsonl }}\nrewards: [{entry}]\n");
        var none = Assert.Throws<RecipeException>(() => RlPipeline.BuildRewards(R($"{{ prm: '{dir.Path}' }}").Rewards, null));
        Assert.Contains("'rewards[0].prm'", none.Message);
        Assert.Contains("prm.json", none.Message);
        var stray = Assert.Throws<RecipeException>(() => RlPipeline.BuildRewards(R("{ model: rm, aggregate: min }").Rewards, null));
        Assert.Contains("'aggregate' without 'prm'", stray.Message);
        var both = Assert.Throws<RecipeException>(() => RlPipeline.BuildRewards(R($"{{ prm: '{dir.Path}', url: 'http://127.0.0.1:1/' }}").Rewards, null));
        Assert.Contains("'prm' with 'model' or 'url'", both.Message);
        File.WriteAllText(Path.Combine(dir.Path, ProcessRewardModel.MarkerFile), "{\"kind\": \"prm\", \"step_splitter\": \"newline\"}");
        var agg = Assert.Throws<RecipeException>(() => RlPipeline.BuildRewards(R($"{{ prm: '{dir.Path}', aggregate: median }}").Rewards, null));
        Assert.Contains("'rewards[0].aggregate'", agg.Message);
        Assert.Contains("min, last", agg.Message);
    }
}
