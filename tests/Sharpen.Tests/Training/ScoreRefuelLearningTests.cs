using Sharpen.Data;
using Sharpen.Environments;
using Sharpen.Models;
using Sharpen.Tasks;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training.Rl;

namespace Sharpen.Tests.Training;

/// <summary>
/// Do SCoRe's and REFUEL's objectives move a policy the right way? A task small enough to learn in a few iterations of a
/// tiny fresh model: the prompt is "b", the right answer the one character "a" (a fresh model writes it about once in
/// ten). In two-attempt self-correction, SCoRe stage I rewards the second attempt only, stage II both (with the bonus
/// α·(r₂ − r₁)); REFUEL regresses the difference of two branched continuations' returns. With fixed seeds, the sampled
/// episodes' second-attempt success (the return) must rise clearly from the first iterations to the last.
/// </summary>
public class ScoreRefuelLearningTests
{
    /// <summary>Prompt "b", answer "a": right iff the completion, trimmed, is "a".</summary>
    sealed class AnswerA : IVerifiableTask
    {
        public string Name => "answer-a";
        public string Alphabet => "ab";
        public IReadOnlyList<Problem> Generate(int count, int seed) =>
            Enumerable.Range(0, count).Select(i => new Problem($"{seed}-{i}", "b", "a", new Dictionary<string, string>())).ToArray();
        public string Solve(Problem problem) => "a";
        public Verdict Verify(Problem problem, string completion) =>
            completion.Trim() == "a" ? new Verdict(1, true, "correct", 0, "a") : new Verdict(0, false, "wrong", 0, completion.Trim());
        public string? ExtractFinalAnswer(string completion) => completion.Trim();
    }

    static (double Early, double Late, List<System.Text.Json.Nodes.JsonObject> Rows) Train(string algorithm, string metric, int iterations)
    {
        var task = new AnswerA();
        IEnvironment Create() => new SelfCorrectionEnvironment(task, new SelfCorrectionOptions { Task = task.Name, Instruction = "again" });
        var tok = CharTokenizer.Create(Create().Alphabet);
        using var model = new CausalLM(CausalLMTests.Tiny() with { VocabSize = tok.VocabSize }, seed: 7);
        var o = RlOptions.For(algorithm) with
        {
            Iterations = iterations, PromptsPerIteration = 8, MaxNewTokens = 1, LearningRate = 0.01, Temperature = 1.0,
            EvalEvery = 0, EvalProblems = 0, CheckpointEvery = 0, Seed = 3,
        };
        if (algorithm != "refuel") o = o with { SamplesPerPrompt = 4 };
        using var dir = new TempDir();
        var rollout = new MultiTurnOptions { MaxTurns = 2, MaxTrajectoryTokens = 32 };
        new RlTrainer(model, tok, o, []) { Environment = new RlEnvironment(Create, rollout) }.RunEnvironment(dir.File("run"));
        var rows = new RunLog(dir.File("run"), append: true).ReadMetrics().Select(r => r.AsObject()).ToList();
        Assert.Equal(iterations, rows.Count);
        double Mean(IEnumerable<System.Text.Json.Nodes.JsonObject> rs) => rs.Average(r => r[metric]!.GetValue<double>());
        return (Mean(rows.Take(3)), Mean(rows.TakeLast(3)), rows);
    }

    [Theory]
    [InlineData("score_stage1")]
    [InlineData("score_stage2")]
    public void Score_raises_second_attempt_success_on_a_task_a_tiny_model_can_learn(string algorithm)
    {
        var (early, late, rows) = Train(algorithm, "second_attempt_accuracy", 15);
        Assert.True(late >= early + 0.3, $"{algorithm}: second-attempt success {early:P0} in the first 3 iterations → {late:P0} in the last 3");
        Assert.All(rows, r => Assert.True(double.IsFinite(r["kl"]!.GetValue<double>())));
    }

    [Fact]
    public void Refuel_raises_the_return_on_a_task_a_tiny_model_can_learn()
    {
        var (early, late, _) = Train("refuel", "success_rate", 15);
        Assert.True(late >= early + 0.3, $"refuel: success of the on-policy episodes {early:P0} in the first 3 iterations → {late:P0} in the last 3");
    }
}
