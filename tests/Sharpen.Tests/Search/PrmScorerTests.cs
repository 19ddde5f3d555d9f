using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Cli.Commands;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Search;
using Sharpen.Tasks;
using Sharpen.Tests.Cli;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Training.RewardModels;

namespace Sharpen.Tests.Search;

/// <summary>The <c>prm:DIR</c> and <c>implicit-prm:DIR</c> scorer kinds, <see cref="ImplicitPrmValues"/>, and <c>bench search --quick</c>.</summary>
[Collection("console")]
public class PrmScorerTests
{
    sealed class FixedRewards(params double[][] rewards) : IStepScorer
    {
        public string Name => "fixed";
        public double[][] ScoreSteps(IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)> items) => rewards;
    }

    static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    [Fact]
    public void Implicit_prm_values_are_the_sigmoid_of_the_running_sum_of_step_rewards()
    {
        var v = new ImplicitPrmValues(new FixedRewards([0.5, -1.0, 2.0], [])).ScoreSteps([("p", ["a", "b", "c"]), ("p", [])]);
        // q = 0.5, 0.5 − 1 = −0.5, −0.5 + 2 = 1.5
        Assert.Equal(Sigmoid(0.5), v[0][0], 12);
        Assert.Equal(Sigmoid(-0.5), v[0][1], 12);
        Assert.Equal(Sigmoid(1.5), v[0][2], 12);
        Assert.Empty(v[1]);
    }

    [Fact]
    public void Empty_steps_are_not_sent_to_the_model_and_take_the_previous_score()
    {
        List<IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)>> seen = [];
        var inner = new Recording(seen, [0.2, 0.7], []);
        var v = new NonEmptySteps(inner).ScoreSteps([("p", ["a", "", "b"]), ("p", [""])]);
        Assert.Equal(["a", "b"], seen[0][0].Steps);
        Assert.Empty(seen[0][1].Steps);
        Assert.Equal([0.2, 0.2, 0.7], v[0]);
        Assert.True(double.IsNaN(v[1][0]));
    }

    sealed class Recording(List<IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)>> seen, params double[][] rewards) : IStepScorer
    {
        public string Name => "recording";
        public double[][] ScoreSteps(IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)> items) { seen.Add(items); return rewards; }
    }

    sealed class CountingPolicy : ISearchPolicy
    {
        public int Calls;
        public int MaxStepTokens => 4;
        public int MaxTotalTokens => 8;
        public IReadOnlyList<IReadOnlyList<Continuation>> Sample(IReadOnlyList<ContinuationRequest> requests, long seed, SearchMeter meter)
        {
            Calls++;
            meter.AddGeneration(10, 3);
            return requests.Select(r => (IReadOnlyList<Continuation>)Enumerable.Range(0, r.Count).Select(i => new Continuation($"s{seed}:{i}", 5, 5, -1, true)).ToList()).ToList();
        }
    }

    [Fact]
    public void Shared_sample_policy_replays_identical_calls_and_charges_each_meter_the_same()
    {
        var inner = new CountingPolicy();
        var shared = new Sharpen.Bench.SharedSamplePolicy(inner);
        ContinuationRequest[] req = [new("p", "", 2, OneStep: false, 8)];
        var (m1, m2, m3) = (new SearchMeter(new SearchBudget(100)), new SearchMeter(new SearchBudget(100)), new SearchMeter(new SearchBudget(100)));
        var a = shared.Sample(req, 7, m1);
        var b = shared.Sample(req, 7, m2);
        Assert.Equal(1, inner.Calls);
        Assert.Same(a, b);
        Assert.Equal((10L, 3L), (m1.GeneratedTokens, m1.ForwardPasses));
        Assert.Equal((10L, 3L), (m2.GeneratedTokens, m2.ForwardPasses));
        shared.Sample(req, 8, m3);                                   // another seed: a new call
        shared.Sample([req[0] with { Count = 3 }], 7, m3);           // another request: a new call
        Assert.Equal(3, inner.Calls);
        shared.Clear();
        shared.Sample(req, 7, m3);
        Assert.Equal(4, inner.Calls);
        Assert.Equal(30L, m3.GeneratedTokens);
    }

    /// <summary>A tiny Countdown policy (random weights) saved into <paramref name="dir"/>.</summary>
    internal static string TinyPolicy(TempDir dir, string name = "policy")
    {
        var tok = CharTokenizer.Create(new CountdownTask().Alphabet);
        var path = dir.File(name);
        using var m = new CausalLM(new ModelConfig
        {
            VocabSize = tok.VocabSize, HiddenSize = 16, IntermediateSize = 32, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 2,
            MaxPositionEmbeddings = 128, EosTokenIds = [tok.EosTokenId!.Value], BosTokenId = tok.BosTokenId, PadTokenId = tok.PadTokenId,
        }, seed: 1);
        HfCheckpoint.Save(path, m, tok);
        return path;
    }

    // Trains a 2-step PRM and a 2-step implicit PRM from the tiny policy; returns their folders.
    static (string Prm, string Implicit) TrainTinyPrms(TempDir dir, string policy)
    {
        var split = StepSplitter.Countdown;
        var rows = new List<StepLabelledExample>
        {
            new("3 5 7 -> 15:", split.Split(" 3+5=8, 8+7=15. answer: 3+5+7"), [1, 1, 1], new Dictionary<string, string>()),
            new("3 5 7 -> 15:", split.Split(" 3*5=15, 15-7=8. answer: 3*5-7"), [1, 0, 0], new Dictionary<string, string>()),
        };
        var loaded = HfCheckpoint.Load(policy, requireTokenizer: true);
        using (loaded.Model)
        using (var head = new ScalarHead(loaded.Model.Config.HiddenSize, initStd: 0.5))
            new PrmTrainer(loaded.Model, head, loaded.Tokenizer!, new PrmOptions { MaxSteps = 2, BatchSize = 2, WarmupSteps = 0, StepSplitter = "countdown" })
                .Run(rows, [], dir.File("prm"));
        var outcomes = rows.Select(r => new OutcomeExample(r.Prompt, string.Concat(r.Steps), r.Labels[^1], new Dictionary<string, string>())).ToList();
        loaded = HfCheckpoint.Load(policy, requireTokenizer: true);
        using (loaded.Model)
            new ImplicitPrmTrainer(loaded.Model, loaded.Tokenizer!, new ImplicitPrmOptions { MaxSteps = 2, BatchSize = 2, WarmupSteps = 0, LearningRate = 1e-2, StepSplitter = "countdown" })
                .Run(outcomes, dir.File("iprm"));
        return (dir.File("prm/final"), dir.File("iprm/final"));
    }

    [Fact]
    public void Prm_and_implicit_prm_specs_score_with_the_trained_folders()
    {
        using var dir = new TempDir();
        var (prmDir, implicitDir) = TrainTinyPrms(dir, TinyPolicy(dir));
        var task = new CountdownTask();
        var problem = new SearchProblem("3 5 7 -> 15:", new Dictionary<string, string>(), task.ExtractFinalAnswer);
        string[] completions = [" 3+5=8, 8+7=15. answer: 3+5+7", " 3*5=15. answer: 3*5"];
        var steps = completions.Select(c => (problem.Prompt, StepSplitter.Countdown.Split(c))).ToList();

        // prm:DIR — step scores are the PRM's own; the outcome (last aggregation) is the last step's score.
        double[][] expected;
        using (var prm = new ProcessRewardModel(prmDir)) expected = prm.ScoreSteps(steps);
        using (var s = SearchScorerRegistry.Create("prm:" + prmDir, task, StepSplitter.Countdown, StepAggregation.Last))
        {
            var got = s.StepsFor(problem).ScoreSteps(steps);
            for (int i = 0; i < 2; i++) Assert.Equal(expected[i], got[i]);
            var outcome = s.Outcome.Score(problem, completions.Select(c => (c, 0)).ToList());
            Assert.Equal(expected[0][^1], outcome[0], 9);
            Assert.Equal(expected[1][^1], outcome[1], 9);
        }

        // implicit-prm:DIR — outcome (last) = σ(sum of the implicit PRM's step rewards); min = the smallest σ(q_t).
        double[][] rewards;
        using (var ip = ImplicitPrm.Load(implicitDir)) rewards = ip.ScoreSteps(steps);
        Assert.Contains(rewards.SelectMany(r => r), r => r != 0);   // two steps at lr 1e-2 moved the policy away from the reference
        using (var s = SearchScorerRegistry.Create("implicit-prm:" + implicitDir, task, StepSplitter.Countdown, StepAggregation.Min))
        {
            var outcome = s.Outcome.Score(problem, completions.Select(c => (c, 0)).ToList());
            for (int i = 0; i < 2; i++)
            {
                double q = 0, min = double.PositiveInfinity;
                foreach (var r in rewards[i]) { q += r; min = Math.Min(min, Sigmoid(q)); }
                Assert.Equal(min, outcome[i], 6);
            }
        }
        using (var s = SearchScorerRegistry.Create("implicit-prm:" + implicitDir, task, StepSplitter.Countdown, StepAggregation.Last))
        {
            var outcome = s.Outcome.Score(problem, completions.Select(c => (c, 0)).ToList());
            for (int i = 0; i < 2; i++) Assert.Equal(Sigmoid(rewards[i].Sum()), outcome[i], 6);
        }
        // A completion without a final answer (cut off) is not scored: NaN, below every score in best-of-N.
        foreach (var spec in new[] { "prm:" + prmDir, "implicit-prm:" + implicitDir })
        {
            using var s = SearchScorerRegistry.Create(spec, task, StepSplitter.Countdown, StepAggregation.Last);
            var outcome = s.Outcome.Score(problem, [(" 3+5=8, 8+7", 0), (completions[0], 0)]);
            Assert.True(double.IsNaN(outcome[0]));
            Assert.False(double.IsNaN(outcome[1]));
        }

        var e = Assert.Throws<CheckpointException>(() => SearchScorerRegistry.Create("prm:" + implicitDir, task, StepSplitter.Countdown));
        Assert.Contains(ProcessRewardModel.MarkerFile, e.Message);
        e = Assert.Throws<CheckpointException>(() => SearchScorerRegistry.Create("implicit-prm:" + prmDir, task, StepSplitter.Countdown));
        Assert.Contains(ImplicitPrm.MarkerFile, e.Message);
        var a = Assert.Throws<ArgumentException>(() => SearchScorerRegistry.Create("prm", task, StepSplitter.Countdown));
        Assert.Contains("prm:DIR", a.Message);
    }

    [Theory]
    [InlineData("bon", "prm")]
    [InlineData("beam", "implicit-prm")]
    public void Eval_searches_with_a_prm_scorer(string strategy, string kind)
    {
        using var dir = new TempDir();
        var policy = TinyPolicy(dir);
        var (prmDir, implicitDir) = TrainTinyPrms(dir, policy);
        var spec = kind + ":" + (kind == "prm" ? prmDir : implicitDir);
        var (code, output, err) = CliHarness.Invoke(EvalCommand.Create(), "--model", policy, "--task", "countdown", "--n", "3", "--strategy", strategy,
            "--scorer", spec, "--budget-tokens", "24", "--max-new-tokens", "8", "--max-step-tokens", "4", "--beam-width", "2", "--expansions", "2", "--out", dir.File("e"));
        Assert.True(code == 0, err + output);
        var summary = JsonNode.Parse(File.ReadAllText(dir.File("e/summary.json")))!;
        Assert.Equal(spec, summary["scorer"]!.GetValue<string>());
        Assert.Equal(strategy, summary["strategy"]!.GetValue<string>());
        var rows = File.ReadAllLines(dir.File("e/metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(3, rows.Count);
        Assert.All(rows, r => Assert.InRange(r["tokens"]!.GetValue<long>(), 1, 24));
        Assert.All(rows, r => Assert.True(r["scorer_calls"]!.GetValue<long>() >= 1));   // the PRM was consulted on every problem
        Assert.Equal(rows.Count(r => r["correct"]!.GetValue<bool>()) / 3.0, summary["accuracy"]!.GetValue<double>(), 9);
    }

    [Fact]
    public void Bench_search_quick_writes_well_formed_results()
    {
        using var dir = new TempDir();
        var policy = TinyPolicy(dir);
        var (code, output, err) = CliHarness.Invoke(BenchCommand.Create(), "search", "--quick", "--policy", policy, "--dir", dir.File("bench"), "--work", dir.File("work"));
        Assert.True(code == 0, err + output);
        var r = JsonNode.Parse(File.ReadAllText(dir.File("bench/results/search.json")))!;
        Assert.Equal("search", r["benchmark"]!.GetValue<string>());
        Assert.True(r["quick"]!.GetValue<bool>());
        var rows = r["rows"]!.AsArray();
        Assert.Equal(1 + 7 * 2, rows.Count);   // greedy once, the other 7 configurations at 2 budgets
        foreach (var row in rows)
            foreach (var k in new[] { "label", "accuracy", "stderr", "budget_tokens", "mean_generated_tokens", "mean_forward_passes", "mean_seconds", "accuracy_by_difficulty" })
                Assert.NotNull(row![k]);
        Assert.Equal(2, r["prms"]!.AsArray().Count);
        Assert.NotEmpty(r["best"]!.AsArray());
        Assert.True(new FileInfo(dir.File("bench/results/search.png")).Length > 0);
        Assert.Contains("Test-time search", SearchReportText(r));
    }

    static string SearchReportText(JsonNode r) => Sharpen.Bench.SearchReport.Tables(r);
}
