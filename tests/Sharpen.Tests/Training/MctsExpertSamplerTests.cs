using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tasks;
using Sharpen.Tests.Models;
using Sharpen.Tests.Search;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Recipes;
using Sharpen.Training.ExpertIteration;
using Sharpen.Training.Sft;

namespace Sharpen.Tests.Training;

public class MctsExpertSamplerTests
{
    /// <summary>Answers are written "ans:X"; the right answer is the problem's.</summary>
    sealed class AnsTask : IVerifiableTask
    {
        public string Name => "ans";
        public string Alphabet => "abcd ans:0123456789";
        public IReadOnlyList<Problem> Generate(int count, int seed) => [new Problem("q7", "Q:", "7", new Dictionary<string, string>())];
        public string Solve(Problem problem) => "ans:" + problem.Answer;
        public string? ExtractFinalAnswer(string c) => c.IndexOf("ans:", StringComparison.Ordinal) is var i and >= 0 && i + 4 < c.Length ? c[(i + 4)..] : null;
        public Verdict Verify(Problem problem, string completion) => ExtractFinalAnswer(completion) is { } a
            ? (a == problem.Answer ? new Verdict(1, true, "correct", 1, a) : new Verdict(0, false, "wrong_value", 1, a))
            : new Verdict(0, false, "unparsable", 0, null);
    }

    // SearchStrategyTests' tree 1: the right answer 7 only through "b c ".
    static Dictionary<string, (string, double)[]> Tree() => new()
    {
        [""] = [("a ", 0.6), ("b ", 0.4)],
        ["a "] = [("ans:1", 1.0)],
        ["b "] = [("c ", 0.5), ("d ", 0.5)],
        ["b c "] = [("ans:7", 1.0)],
        ["b d "] = [("ans:2", 1.0)],
    };

    sealed class RecordingTrainer : IValueModelTrainer
    {
        public readonly List<(int Iteration, string Path)> Calls = [];
        readonly TableValueModelTrainer _table = new();
        public IStepScorer? Train(int iteration, string valueTargetsPath, string iterationDir)
        {
            Calls.Add((iteration, valueTargetsPath));
            return _table.Train(iteration, valueTargetsPath, iterationDir);
        }
    }

    static readonly ExpertIterationOptions StubOptions = new()
    {
        Method = "rest_mcts", Mcts = new RestMctsOptions { BudgetTokens = 300, Expansions = 3, MaxSteps = 8, Lambda = 0.5 },
    };

    // The search never touches the model or tokenizer: the stub policy replaces them.
    static ExpertSampleRequest Request(IVerifiableTask task, int iteration) =>
        new(null!, null!, task, task.Generate(1, 0), iteration, 11, StubOptions);

    [Fact]
    public void The_stub_tree_gives_the_correct_path_as_sft_data_and_value_targets_worked_by_hand()
    {
        using var dir = new TempDir();
        var task = new AnsTask();
        var trainer = new RecordingTrainer();
        var sampler = new MctsExpertSampler(dir.Path, trainer) { PolicyFactory = _ => new StubPolicy(Tree()) };

        var candidates = sampler.Sample(Request(task, 1));
        // A budget of 300 searches the 7-node tree exhaustively: its three finished paths, the correct one first.
        var c = Assert.Single(candidates);
        Assert.Equal(["b c ans:7", "a ans:1", "b d ans:2"], c.Take(1).Select(x => x.Completion).Concat(c.Skip(1).Select(x => x.Completion).Order()));
        Assert.Equal([true, false, false], c.Select(x => x.Correct));
        Assert.Equal(9, c[0].Tokens);                                // one token per character in the stub
        var kept = ExpertIterationTrainer.Keep(task.Generate(1, 0), candidates, maxPerProblem: 4, dedupe: true, iteration: 1);
        Assert.Equal(["b c ans:7"], kept.Select(e => e.Completion));

        // Value targets by hand (v_k = max(v_{k−1} + (1 − v_{k−1})/(m_k + 1)·(1 − 2r_k), 0), v_0 = 0):
        //   "b ": correct end 2 steps below → 1/3;  "b c ": 1 step → 1/3 + (2/3)/2 = 2/3;  "b c ans:7" → 1
        //   a wrong step takes m of its nearest ancestor with a correct end below (the root: 2 + 1 steps above "ans:7"):
        //   "b d ": ancestor "b " (m = 2) → 1/3 − (2/3)/3 = 1/9;  "b d ans:2": m = 2 → 1/9 − (8/9)/3 < 0 → 0
        //   "a ": the root (m = 3) → max(0 − 1/4, 0) = 0;  "a ans:1" → 0
        var path = Path.Combine(dir.Path, "iter-1", MctsExpertSampler.TargetsFile);
        var rows = ValueTargetRow.ReadAll(path).ToDictionary(r => string.Concat(r.Steps));
        Assert.Equal(3, rows.Count);
        Assert.Equal([1.0 / 3, 2.0 / 3, 1.0], rows["b c ans:7"].Labels.Select(x => Math.Round(x, 12)), new RoundedComparer());
        Assert.Equal([1.0 / 3, 1.0 / 9, 0], rows["b d ans:2"].Labels, new RoundedComparer());
        Assert.Equal([0.0, 0], rows["a ans:1"].Labels, new RoundedComparer());
        Assert.Equal([true, false, false], new[] { "b c ans:7", "b d ans:2", "a ans:1" }.Select(k => rows[k].Correct));
        Assert.All(rows.Values, r => Assert.Equal(("Q:", "q7"), (r.Prompt, r.Id)));
        Assert.Equal(["b ", "c ", "ans:7"], rows["b c ans:7"].Steps);
        Assert.Equal("[0.3333,0.6667,1]", c[0].Fields["step_values"]);

        // Step-level pairs from siblings with different values: under the root "b " (1/3) ≻ "a " (0); under "b " "c " (2/3) ≻ "d " (1/9).
        var pairs = Sharpen.Data.JsonlDataset.LoadPreferences(Path.Combine(dir.Path, "iter-1", MctsExpertSampler.StepPairsFile)).Items;
        Assert.Equal([("Q:", "b ", "a "), ("Q:b ", "c ", "d ")], pairs.Select(x => (x.Prompt, x.Chosen, x.Rejected)));
        Assert.Equal(["0.6667", "0.1111"], pairs.Skip(1).SelectMany(x => new[] { x.Fields["chosen_value"], x.Fields["rejected_value"] }));

        var report = sampler.LastReport!;
        Assert.Equal(2, report.Metrics["step_pairs"]!.GetValue<int>());
        Assert.Equal(3, report.Metrics["value_targets"]!.GetValue<int>());
        Assert.Equal(8, report.Metrics["value_labels"]!.GetValue<int>());
        Assert.Equal("rollouts", report.Metrics["value_model"]!.GetValue<string>());
        Assert.Equal(1.0, report.Metrics["search_accuracy"]!.GetValue<double>());
        Assert.True(report.GeneratedTokens >= 2 + 2 + 5 + 2 + 2 + 5 + 5, $"{report.GeneratedTokens} tokens");   // every node's step, plus rollouts
        Assert.Equal([(1, path)], trainer.Calls);

        // The fitted value model: the mean target per prefix seen, 0.5 elsewhere.
        var table = Assert.IsType<PrefixValueTable>(sampler.ValueModel);
        var s = table.ScoreSteps([("Q:", ["b ", "c "]), ("Q:", ["a "]), ("Q:", ["z "])]);
        Assert.Equal([1.0 / 3, 2.0 / 3], s[0], new RoundedComparer());
        Assert.Equal([0.0], s[1], new RoundedComparer());
        Assert.Equal([0.5], s[2], new RoundedComparer());

        // Iteration 2 searches with that value model.
        sampler.Sample(Request(task, 2));
        Assert.Equal("prefix_table", sampler.LastReport!.Metrics["value_model"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(dir.Path, "iter-2", MctsExpertSampler.TargetsFile)));

        // A fresh sampler (a resumed run) asked for iteration 2 first refits iteration 1's value model from its file.
        var resumedTrainer = new RecordingTrainer();
        var resumed = new MctsExpertSampler(dir.Path, resumedTrainer) { PolicyFactory = _ => new StubPolicy(Tree()) };
        resumed.Sample(Request(task, 2));
        Assert.Equal([1, 2], resumedTrainer.Calls.Select(x => x.Iteration));
        Assert.Equal(path, resumedTrainer.Calls[0].Path);
        Assert.Equal("prefix_table", resumed.LastReport!.Metrics["value_model"]!.GetValue<string>());
    }

    [Fact]
    public void Correct_traces_are_ranked_by_their_mean_inferred_step_value()
    {
        // Two correct answers: "b c ans:7" (3 steps, values 1/3, 2/3, 1: mean 2/3), listed first by the policy,
        // and "a ans:7" (2 steps, values 1/2, 1: mean 3/4). The shorter, higher-valued trace must come first.
        var tree = new Dictionary<string, (string, double)[]>
        {
            [""] = [("b ", 0.5), ("a ", 0.5)],
            ["b "] = [("c ", 1.0)],
            ["b c "] = [("ans:7", 1.0)],
            ["a "] = [("ans:7", 1.0)],
        };
        using var dir = new TempDir();
        var sampler = new MctsExpertSampler(dir.Path, new TableValueModelTrainer()) { PolicyFactory = _ => new StubPolicy(tree) };
        var c = Assert.Single(sampler.Sample(Request(new AnsTask(), 1)));
        Assert.Equal(["a ans:7", "b c ans:7"], c.Select(x => x.Completion));
        Assert.Equal(["[0.5,1]", "[0.3333,0.6667,1]"], c.Select(x => x.Fields["step_values"]));
    }

    sealed class RoundedComparer : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) < 1e-9;
        public int GetHashCode(double x) => 0;
    }

    /// <summary>
    /// Prompts are one letter of "ab"; steps end at ";", a completion is finished at "."; it is correct when its first character
    /// is the prompt's letter. A random tiny model writes any of the 7 tokens, so some paths are right and most are not.
    /// </summary>
    sealed class LetterTask : IVerifiableTask
    {
        public string Name => "letter";
        public string Alphabet => "ab;.";
        public IReadOnlyList<Problem> Generate(int count, int seed) =>
            new[] { "a", "b", "ab", "ba" }.Take(count).Select(p => new Problem("l:" + p, p, p[..1], new Dictionary<string, string>())).ToList();
        public string Solve(Problem problem) => problem.Answer + ".";
        public string? ExtractFinalAnswer(string c) => c.Contains('.') && c.Length > 0 ? c[..1] : null;
        public Verdict Verify(Problem problem, string completion) => completion.Length > 0 && completion[0] == problem.Answer[0]
            ? new Verdict(1, true, "correct", 1, completion[..1]) : new Verdict(0, false, "wrong_value", 1, null);
    }

    [Fact]
    public void Two_iterations_with_a_tiny_model_write_value_targets_data_and_one_metrics_row_each()
    {
        using var dir = new TempDir();
        var tok = CharTokenizer.Create("ab;.");
        var task = new LetterTask();
        using var policy = new CausalLM(CausalLMTests.Tiny() with { VocabSize = tok.VocabSize, InitializerRange = 0.02, MaxPositionEmbeddings = 32 }, seed: 5);
        var options = ExpertIterationOptions.For("rest_mcts") with
        {
            Iterations = 2, MaxNewTokens = 6, EvalProblems = 4, Seed = 3,
            Mcts = new RestMctsOptions { BudgetTokens = 40, Expansions = 2, MaxSteps = 4, MaxStepTokens = 3, StepSplitter = "delimiter:;" },
            Sft = new SftOptions { MaxSteps = 2, BatchSize = 4, LearningRate = 1e-2, WarmupSteps = 0, LogEvery = 1, EvalEvery = 0, CheckpointEvery = 0, MaxSequenceLength = 16 },
        };
        var problems = task.Generate(4, 0);
        var sampler = new MctsExpertSampler(dir.Path, new TableValueModelTrainer());
        var result = new ExpertIterationTrainer(policy, tok, task, options) { Sampler = sampler }.Run(problems, problems, dir.Path);

        Assert.Equal([1, 2], result.Iterations.Select(s => s.Iteration));
        var metrics = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal([1, 2], metrics.Select(r => r["iteration"]!.GetValue<int>()));
        Assert.Equal(["rollouts", "prefix_table"], metrics.Select(r => r["value_model"]!.GetValue<string>()));
        for (int k = 1; k <= 2; k++)
        {
            var row = metrics[k - 1];
            var iterDir = Path.Combine(dir.Path, $"iter-{k}");
            var targets = ValueTargetRow.ReadAll(Path.Combine(iterDir, MctsExpertSampler.TargetsFile));
            Assert.Equal(targets.Count, row["value_targets"]!.GetValue<int>());
            Assert.Equal(targets.Sum(t => t.Labels.Count), row["value_labels"]!.GetValue<int>());
            Assert.NotEmpty(targets);
            // Each target row: a finished path; labels in [0, 1]; a correct path ends at 1, a wrong one below 1.
            foreach (var t in targets)
            {
                Assert.Equal(t.Correct, task.Verify(problems.Single(p => p.Id == t.Id), string.Concat(t.Steps)).Correct);
                if (t.Correct) Assert.Equal(1.0, t.Labels[^1], 12); else Assert.True(t.Labels[^1] < 1);
            }
            // The SFT data is exactly the verified-correct finished paths (each once, at most max_kept_per_problem per problem).
            var data = JsonlDataset.LoadSft(Path.Combine(iterDir, "data.jsonl")).Items;
            Assert.Equal(row["examples_kept"]!.GetValue<int>(), data.Count);
            var expected = problems.SelectMany(p => targets.Where(t => t.Id == p.Id && t.Correct).Select(t => p.Prompt + "|" + string.Concat(t.Steps))
                .Distinct().Take(options.MaxKeptPerProblem)).OrderBy(x => x, StringComparer.Ordinal);
            Assert.Equal(expected, data.Select(e => e.Prompt + "|" + e.Completion).OrderBy(x => x, StringComparer.Ordinal));
            Assert.Equal(problems.Count(p => targets.Any(t => t.Id == p.Id && t.Correct)), row["problems_solved"]!.GetValue<int>());
            Assert.True(row["generated_tokens"]!.GetValue<long>() <= 4 * 40, "within the budget of 40 tokens per problem");
            Assert.NotNull(row["accuracy"]);
            Assert.True(File.Exists(Path.Combine(iterDir, "final", "model.safetensors")));
        }
        Assert.True(metrics[0]["examples_kept"]!.GetValue<int>() > 0, "the search found some correct paths in iteration 1");
        Assert.True(File.Exists(Path.Combine(dir.Path, "summary.json")));
        Assert.Equal("rest_mcts", JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!["method"]!.GetValue<string>());
    }

    [Fact]
    public void Extra_metrics_columns_survive_the_iteration_record_round_trip_and_never_override_the_loops_own()
    {
        var stats = new ExpertIterationStats(2, 0.5, 0.25, 4, 3, 8, 2, 1.5, 3, 99, 1.0)
            { Extra = new JsonObject { ["value_targets"] = 7, ["value_model"] = "prefix_table", ["generated_tokens"] = -1 } };
        var json = stats.ToJson();
        Assert.Equal(99, json["generated_tokens"]!.GetValue<long>());          // the loop's key wins over an extra of the same name
        Assert.Equal(7, json["value_targets"]!.GetValue<int>());
        var back = ExpertIterationStats.FromJson(JsonNode.Parse(json.ToJsonString())!.AsObject(), "iteration.json");
        Assert.Equal(json.ToJsonString(), back.ToJson().ToJsonString());      // what --resume rewrites to metrics.jsonl
        Assert.Equal(["value_targets", "value_model"], back.Extra!.Select(kv => kv.Key));
    }

    [Fact]
    public void Recipes_bind_the_rest_mcts_preset_and_its_mcts_section()
    {
        const string head = "kind: expert_iteration\nmodel: { path: m }\ntask: { name: countdown }\n";
        var o = Recipe.Parse(head + "expert_iteration: { method: rest_mcts, mcts: { budget_tokens: 64, value_model: none } }\n").ExpertIterationOptions();
        Assert.Equal(("rest_mcts", 2, 64, "none", 3, "countdown"), (o.Method, o.Iterations, o.Mcts.BudgetTokens, o.Mcts.ValueModel, o.Mcts.Expansions, o.Mcts.StepSplitter));
        Assert.Contains("'expert_iteration.mcts.budget_tokns'", Assert.Throws<RecipeException>(() =>
            Recipe.Parse(head + "expert_iteration: { method: rest_mcts, mcts: { budget_tokns: 64 } }\n")).Message);
        Assert.Contains("expert_iteration.mcts.lambda", Assert.Throws<RecipeException>(() =>
            Recipe.Parse(head + "expert_iteration: { method: rest_mcts, mcts: { lambda: 2 } }\n")).Message);
        Assert.Contains("expert_iteration.mcts.value_model", Assert.Throws<RecipeException>(() =>
            Recipe.Parse(head + "expert_iteration: { method: rest_mcts, mcts: { value_model: prn } }\n")).Message);
        Assert.Contains("expert_iteration.mcts.step_splitter", Assert.Throws<RecipeException>(() =>
            Recipe.Parse(head + "expert_iteration: { method: rest_mcts, mcts: { step_splitter: commas } }\n")).Message);

        var shipped = Recipe.Load(RepoPaths.Of("recipes", "rest-mcts-countdown.yaml"));
        var s = shipped.ExpertIterationOptions();
        Assert.Equal(("expert_iteration", "rest_mcts", "prm"), (shipped.Kind, s.Method, s.Mcts.ValueModel));
    }
}
