using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Tasks;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Recipes;
using Sharpen.Training.ExpertIteration;
using Sharpen.Training.Sft;

namespace Sharpen.Tests.Training;

public class ExpertIterationTests
{
    /// <summary>
    /// Prompt = one or two letters of "abcd"; a completion is correct when it starts with the prompt's first letter.
    /// Under a near-uniform policy over the 8 tokens (4 specials + 4 letters) the first generated token is that letter
    /// with probability ≈ 1/8, so about 1/8 of the samples are correct.
    /// </summary>
    sealed class FirstLetterTask : IVerifiableTask
    {
        public string Name => "first_letter";
        public string Alphabet => "abcd";
        static readonly string[] Prompts = ["a", "b", "c", "d", "ab", "ca"];
        public IReadOnlyList<Problem> Generate(int count, int seed) =>
            Prompts.Take(count).Select(p => new Problem("fl:" + p, p, p[..1], new Dictionary<string, string> { ["letters"] = p })).ToList();
        public string Solve(Problem problem) => problem.Answer;
        public Verdict Verify(Problem problem, string completion) => completion.StartsWith(problem.Answer, StringComparison.Ordinal)
            ? new Verdict(1, true, "correct", 1, completion[..1])
            : new Verdict(0, false, "wrong_value", 1, completion.Length > 0 ? completion[..1] : null);
        public string? ExtractFinalAnswer(string completion) => completion.Length > 0 ? completion[..1] : null;
    }

    static readonly CharTokenizer Tok = CharTokenizer.Create("abcd");
    static readonly FirstLetterTask Letters = new();

    static CausalLM Base() => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, InitializerRange = 0.02, MaxPositionEmbeddings = 32 }, seed: 5);

    static ExpertIterationOptions Options(int iterations = 1, bool restart = true) => new()
    {
        Iterations = iterations, SamplesPerProblem = 16, Temperature = 1.0, TopK = 0, MaxNewTokens = 2, MaxKeptPerProblem = 2,
        Dedupe = true, RestartFromBase = restart, EvalProblems = 6, Seed = 3,
        Sft = new SftOptions { MaxSteps = 3, BatchSize = 4, LearningRate = 1e-2, WarmupSteps = 0, LogEvery = 1, EvalEvery = 0, CheckpointEvery = 0, MaxSequenceLength = 16 },
    };

    /// <summary>Plain sampling that records what it returned (and can fail at a chosen iteration).</summary>
    sealed class RecordingSampler(int failAt = 0) : IExpertSampler
    {
        public readonly Dictionary<int, IReadOnlyList<IReadOnlyList<ExpertCandidate>>> Seen = [];
        public IReadOnlyList<IReadOnlyList<ExpertCandidate>> Sample(ExpertSampleRequest request)
        {
            if (request.Iteration == failAt) throw new IOException("simulated crash");
            var result = new PlainExpertSampler().Sample(request);
            Seen[request.Iteration] = result;
            return result;
        }
    }

    static Dictionary<string, float[]> Snapshot(CausalLM m) => WeightValues.Of(m);

    static void AssertSame(Dictionary<string, float[]> a, Dictionary<string, float[]> b, string what)
    {
        foreach (var (name, w) in a) Assert.True(w.SequenceEqual(b[name]), $"{what}: {name} differs");
    }

    static ExpertCandidate C(string text, bool correct) => new(text, correct, text.Length);

    [Fact]
    public void Keep_takes_the_correct_completions_once_each_and_at_most_the_cap_per_problem()
    {
        var problems = Letters.Generate(3, 0);                   // fl:a, fl:b, fl:c
        IReadOnlyList<IReadOnlyList<ExpertCandidate>> candidates =
        [
            [C("x", true), C("y", false), C("x", true), C("z", true), C("w", true)],   // correct: x, x, z, w
            [C("p", false), C("q", false)],                                            // none correct
            [C("m", true)],
        ];
        // Dedupe, cap 2: a → x, z (the second x is a duplicate, w is over the cap); b → nothing; c → m.
        var kept = ExpertIterationTrainer.Keep(problems, candidates, maxPerProblem: 2, dedupe: true, iteration: 1);
        Assert.Equal(["a:x", "a:z", "c:m"], kept.Select(e => e.Prompt + ":" + e.Completion));
        Assert.Equal("fl:a", kept[0].Fields["id"]);
        Assert.Equal("a", kept[0].Fields["answer"]);
        Assert.Equal("a", kept[0].Fields["letters"]);
        Assert.Equal("1", kept[0].Fields["iteration"]);

        // Without dedupe the duplicate counts: a → x, x.
        var noDedupe = ExpertIterationTrainer.Keep(problems, candidates, maxPerProblem: 2, dedupe: false, iteration: 1);
        Assert.Equal(["a:x", "a:x", "c:m"], noDedupe.Select(e => e.Prompt + ":" + e.Completion));

        // Accumulating: the earlier z comes first, then x; z again is a duplicate and the cap of 2 is reached.
        var prior = new List<SftExample> { new("a", "z", new Dictionary<string, string> { ["id"] = "fl:a", ["iteration"] = "1" }) };
        var acc = ExpertIterationTrainer.Keep(problems, candidates, maxPerProblem: 2, dedupe: true, iteration: 2, prior);
        Assert.Equal(["a:z", "a:x", "c:m"], acc.Select(e => e.Prompt + ":" + e.Completion));
        Assert.Equal(["1", "2", "2"], acc.Select(e => e.Fields["iteration"]));
    }

    [Fact]
    public void The_iteration_data_is_exactly_the_verified_correct_deduped_capped_rollouts()
    {
        using var dir = new TempDir();
        using var policy = Base();
        var problems = Letters.Generate(6, 0);
        var sampler = new RecordingSampler();
        var result = new ExpertIterationTrainer(policy, Tok, Letters, Options()) { Sampler = sampler }.Run(problems, problems, dir.Path);

        var seen = sampler.Seen[1];
        Assert.Equal(6, seen.Count);
        Assert.All(seen, c => Assert.Equal(16, c.Count));
        // By hand from the rollouts: per problem, the completions starting with its letter, each text once, the first two.
        var expected = problems.SelectMany((p, i) => seen[i]
            .Where(c => c.Completion.StartsWith(p.Prompt[..1], StringComparison.Ordinal)).Select(c => c.Completion)
            .Distinct().Take(2).Select(c => p.Prompt + "|" + c)).ToList();
        var written = JsonlDataset.LoadSft(Path.Combine(dir.Path, "iter-1", "data.jsonl")).Items;
        Assert.Equal(expected, written.Select(e => e.Prompt + "|" + e.Completion));
        Assert.NotEmpty(written);
        // Filtering did something: more correct samples were drawn than kept (duplicates or the cap).
        int correct = seen.Sum(c => c.Count(x => x.Correct));
        Assert.True(correct > written.Count, $"{correct} correct samples, {written.Count} kept");

        // A near-uniform policy puts ≈ 1/8 on the right first letter: 96 samples, expected 12 correct (sd ≈ 3.2).
        var row = result.Iterations.Single();
        Assert.Equal(correct / 96.0, row.PassRate, 12);
        Assert.InRange(row.PassRate, 0.03, 0.3);
        Assert.Equal(problems.Select((p, i) => seen[i].Any(c => c.Completion.StartsWith(p.Prompt[..1], StringComparison.Ordinal))).Count(b => b), row.ProblemsSolved);
        Assert.Equal(written.Count, row.ExamplesKept);
        Assert.Equal(96, row.Candidates);
        Assert.Equal(seen.Sum(c => c.Sum(x => (long)x.Tokens)), row.GeneratedTokens);
        Assert.InRange(row.GeneratedTokens, 96, 192);              // 1 or 2 tokens per sample
        Assert.Equal(3, row.SftSteps);
    }

    [Fact]
    public void Restart_from_base_starts_every_sft_from_the_base_and_continue_from_the_previous_iterate()
    {
        var problems = Letters.Generate(6, 0);
        foreach (var restart in new[] { true, false })
        {
            using var dir = new TempDir();
            using var policy = Base();
            var baseWeights = Snapshot(policy);
            var atSft = new Dictionary<int, Dictionary<string, float[]>>();
            var result = new ExpertIterationTrainer(policy, Tok, Letters, Options(iterations: 2, restart: restart))
                { BeforeSft = (k, m) => atSft[k] = Snapshot(m) }.Run(problems, problems, dir.Path);

            Assert.Equal([1, 2], result.Iterations.Select(s => s.Iteration));
            Assert.All(result.Iterations, s => Assert.True(s.ExamplesKept > 0));
            AssertSame(baseWeights, atSft[1], "iteration 1 starts from the base");
            using var iter1 = HfCheckpoint.Load(Path.Combine(dir.Path, "iter-1", "final")).Model;
            var afterIter1 = Snapshot(iter1);
            Assert.Contains(afterIter1, kv => !kv.Value.SequenceEqual(baseWeights[kv.Key]));   // SFT of iteration 1 moved the weights
            if (restart) AssertSame(baseWeights, atSft[2], "restart_from_base: iteration 2's SFT starts from the base");
            else AssertSame(afterIter1, atSft[2], "continue: iteration 2's SFT starts from iteration 1's model");

            // One metrics row per iteration with the documented keys; summary.json agrees.
            var rows = new RunLog(dir.Path, append: true).ReadMetrics();
            Assert.Equal([1, 2], rows.Select(r => r["iteration"]!.GetValue<int>()));
            foreach (var r in rows)
                foreach (var key in new[] { "iteration", "accuracy", "pass_rate", "problems_solved", "examples_kept", "sft_loss", "seconds", "generated_tokens" })
                    Assert.True(r.ContainsKey(key) && r[key] is not null, $"row {r["iteration"]} lacks {key}");
            var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
            Assert.Equal(2, summary["iterations"]!.GetValue<int>());
            Assert.Equal(rows[1]["accuracy"]!.GetValue<double>(), summary["final_accuracy"]!.GetValue<double>());
            Assert.NotNull(summary["base_accuracy"]);
            Assert.True(File.Exists(Path.Combine(dir.Path, "final", "model.safetensors")));
        }
    }

    [Fact]
    public void A_run_that_crashed_mid_iteration_resumes_at_that_iteration_and_ends_as_an_uninterrupted_run()
    {
        var problems = Letters.Generate(6, 0);
        using var straightDir = new TempDir();
        using var straight = Base();
        new ExpertIterationTrainer(straight, Tok, Letters, Options(iterations: 2)).Run(problems, problems, straightDir.Path);

        using var dir = new TempDir();
        using (var crashed = Base())
        {
            // Iteration 2 crashes after its data was written, just before its SFT.
            var it = new ExpertIterationTrainer(crashed, Tok, Letters, Options(iterations: 2))
                { BeforeSft = (k, _) => { if (k == 2) throw new IOException("simulated crash"); } };
            Assert.Throws<IOException>(() => it.Run(problems, problems, dir.Path));
        }
        Assert.True(File.Exists(Path.Combine(dir.Path, "iter-2", "data.jsonl")));
        Assert.False(File.Exists(Path.Combine(dir.Path, "iter-2", "iteration.json")));

        using var resumed = Base();
        var sampler = new RecordingSampler();
        var result = new ExpertIterationTrainer(resumed, Tok, Letters, Options(iterations: 2)) { Sampler = sampler }.Run(problems, problems, dir.Path, resume: true);
        Assert.Equal([2], sampler.Seen.Keys);                                   // iteration 1 was not run again
        Assert.Equal([1, 2], result.Iterations.Select(s => s.Iteration));
        Assert.Equal([1, 2], new RunLog(dir.Path, append: true).ReadMetrics().Select(r => r["iteration"]!.GetValue<int>()));
        AssertSame(Snapshot(straight), Snapshot(resumed), "resumed vs uninterrupted final weights");
        Assert.Equal(File.ReadAllText(Path.Combine(straightDir.Path, "iter-2", "data.jsonl")), File.ReadAllText(Path.Combine(dir.Path, "iter-2", "data.jsonl")));
    }

    [Fact]
    public void Recipes_bind_the_method_preset_the_sft_section_and_reject_unknown_keys()
    {
        const string head = "kind: expert_iteration\nmodel: { path: m }\ntask: { name: countdown }\nsft: { max_steps: 7 }\n";
        var star = Recipe.Parse(head + "expert_iteration: { method: star, iterations: 2 }\n").ExpertIterationOptions();
        // The STaR preset with one key overridden; the top-level sft section is every iteration's SFT stage.
        Assert.Equal(("star", 2, 1, 0.0, 1, 1.2, true), (star.Method, star.Iterations, star.SamplesPerProblem, star.Temperature, star.MaxKeptPerProblem, star.SftStepsGrowth, star.RestartFromBase));
        Assert.Equal(7, star.Sft.MaxSteps);
        Assert.Equal([7, 8, 10], new[] { 1, 2, 3 }.Select(star.SftStepsAt));   // 7, 8.4, 10.08 rounded
        var rest = Recipe.Parse(head).ExpertIterationOptions();
        Assert.Equal(("rest_em", 32, 10, true, true), (rest.Method, rest.SamplesPerProblem, rest.MaxKeptPerProblem, rest.Dedupe, rest.RestartFromBase));

        Assert.Contains("'expert_iteration.samples_per_prblem'", Assert.Throws<RecipeException>(() =>
            Recipe.Parse(head + "expert_iteration: { samples_per_prblem: 2 }\n")).Message);
        Assert.Contains("'expert_iteration.method'", Assert.Throws<RecipeException>(() =>
            Recipe.Parse(head + "expert_iteration: { method: rest }\n")).Message);
        Assert.Contains("expert_iteration.max_kept_per_problem", Assert.Throws<RecipeException>(() =>
            Recipe.Parse(head + "expert_iteration: { max_kept_per_problem: 0 }\n")).Message);
        Assert.Contains("needs a 'task'", Assert.Throws<RecipeException>(() =>
            Recipe.Parse("kind: expert_iteration\nmodel: { path: m }\ndata: { train: x.jsonl }\n")).Message);
    }

    [Theory]
    [InlineData("rest-em-countdown.yaml", "rest_em", 4, true)]
    [InlineData("star-countdown.yaml", "star", 1, true)]
    public void Shipped_expert_iteration_recipes_parse(string file, string method, int samples, bool restart)
    {
        var r = Recipe.Load(RepoPaths.Of("recipes", file));
        Assert.Equal("expert_iteration", r.Kind);
        var o = r.ExpertIterationOptions();
        Assert.Equal((method, samples, restart), (o.Method, o.SamplesPerProblem, o.RestartFromBase));
    }
}
