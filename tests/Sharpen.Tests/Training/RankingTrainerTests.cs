using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using Sharpen.Serving;
using Sharpen.Tasks;
using Sharpen.Training.Ranking;
using AiMessage = Microsoft.Extensions.AI.ChatMessage;

namespace Sharpen.Tests.Training;

/// <summary>The ranking policies trained end to end: a retriever on the built-in retrieval task (nDCG reward) and an
/// in-context example selector for a scripted frozen chat model (answer reward).</summary>
public class RankingTrainerTests
{
    [Fact]
    public void Retrieval_queries_have_graded_relevance_as_defined()
    {
        var task = new RetrievalTask();
        var queries = task.Generate(200, 3);
        Assert.Equal(queries.Select(q => string.Join(',', q.Query)), task.Generate(200, 3).Select(q => string.Join(',', q.Query)));
        foreach (var q in queries)
        {
            var topic = task.TopicOf(q.Query[0]);
            Assert.All(q.Query, w => Assert.Equal(topic, task.TopicOf(w)));
            Assert.Contains(2, q.Relevance);
            for (var c = 0; c < q.Documents.Length; c++)
            {
                var onTopic = task.TopicOf(q.Documents[c][0]) == topic;
                var expected = !onTopic ? 0 : q.Documents[c].Intersect(q.Query).Any() ? 2 : 1;
                Assert.Equal(expected, q.Relevance[c]);
            }
        }
    }

    [Fact]
    public void Reinforce_on_ndcg_trains_the_retriever_and_writes_its_run_log()
    {
        using var dir = new TempDir();
        var options = new RankingOptions { Steps = 120, QueriesPerStep = 16, SamplesPerQuery = 4, TopK = 5, LearningRate = 0.05,
            TrainQueries = 500, EvalQueries = 100, EvalEvery = 40, Seed = 3 };
        var result = RankingTrainer.TrainRetrieval(new RetrievalTask(), options, dir.Path);
        // Every candidate scores 0 at the start; a ranker that puts the grade-2 document first and the other on-topic one
        // second reaches nDCG 1. Learned: the word matches (W's diagonal) and the topic blocks.
        Assert.True(result.After > 0.95, $"nDCG@5 after training {result.After:F4} (before {result.Before:F4})");
        Assert.True(result.After > result.Before + 0.2, $"before {result.Before:F4}, after {result.After:F4}");
        var rows = File.ReadAllLines(Path.Combine(dir.Path, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(120, rows.Count);
        Assert.Equal(3, rows.Count(r => r["eval_ndcg"] is not null));
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal(result.After, summary["eval_ndcg"]!.GetValue<double>());
    }

    /// <summary>A frozen "model" that answers a symbol-ops question right only when its prompt shows an example with the
    /// same operator (what in-context learning of an unknown operator needs), else one too many.</summary>
    sealed class OperatorLearner : IChatClient
    {
        public int Calls;

        public async Task<ChatResponse> GetResponseAsync(IEnumerable<AiMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
        {
            await Task.Yield();   // answer on another thread, as a server would: the trainer's continuations move threads
            Interlocked.Increment(ref Calls);
            var lines = messages.Last().Text.Split('\n');
            var question = lines[^1];                                   // "7#3="
            var at = question.IndexOfAny(SymbolOpsTask.Operators.ToCharArray());
            var (a, op, b) = (long.Parse(question[..at]), question[at], long.Parse(question[(at + 1)..^1]));
            var shown = lines[..^1].Any(l => l.Contains(op));
            var value = SymbolOpsTask.Apply(op, a, b) + (shown ? 0 : 1);
            return new ChatResponse(new AiMessage(ChatRole.Assistant, $" {value}"));
        }

        public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AiMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();
        public object? GetService(Type serviceType, object? serviceKey = null) => null;
        public void Dispose() { }
    }

    [Fact]
    public async Task Reinforce_on_the_frozen_models_answer_reward_learns_to_pick_same_operator_examples()
    {
        var task = new SymbolOpsTask();
        var pool = task.Generate(40, 1);
        var train = task.Generate(300, 2);
        var eval = task.Generate(100, 3);
        var client = new OperatorLearner();
        using var frozen = new ChatClientFrozenModel(client);
        using var dir = new TempDir();
        var options = new RankingOptions { Steps = 60, QueriesPerStep = 16, SamplesPerQuery = 4, TopK = 1, Candidates = 16,
            LearningRate = 0.1, EvalEvery = 30, Seed = 4 };
        var result = await RankingTrainer.TrainPromptSelectionAsync(task, frozen, pool, train, eval, options, dir.Path);
        // One shot of 16 drawn from a pool with four operators: a choice that ignores the operator shows the right one
        // about a quarter of the time; the trained selector should almost always show it (when the draw holds one).
        Assert.True(result.Before < 0.5, $"accuracy before training {result.Before:F3}");
        Assert.True(result.After > 0.9, $"accuracy after training {result.After:F3} (before {result.Before:F3})");
        // Frozen-model calls: 3 evaluations × 100 questions + 60 steps × 16 questions × 4 samples.
        Assert.Equal(3 * 100 + 60 * 16 * 4, client.Calls);
        var last = JsonNode.Parse(File.ReadAllLines(Path.Combine(dir.Path, "metrics.jsonl"))[^1])!;
        Assert.Equal(result.After, last["eval_accuracy"]!.GetValue<double>());
        Assert.NotNull(last["frozen/requests"]);
    }

    [Fact]
    public void The_prompt_lists_the_chosen_examples_with_their_solutions_then_the_question()
    {
        var task = new SymbolOpsTask();
        var prompt = RankingTrainer.BuildPrompt(task, [task.Create(2, '#', 3), task.Create(4, '@', 5)], task.Create(7, '#', 1));
        Assert.Equal("2#3= 5\n4@5= 20\n7#1=", prompt);
    }

    [Fact]
    public void Ranking_recipes_bind_and_reject_what_their_task_does_not_read()
    {
        var ok = Sharpen.Recipes.Recipe.Parse("kind: ranking\noutput: o\nranking:\n  task: retrieval\n  top_k: 3\n  retrieval: {candidates: 6}\n", "r.yaml");
        Assert.Equal(3, ok.RankingOptions().TopK);
        Assert.Equal(6, ok.RankingOptions().Retrieval.Candidates);
        var noFrozen = Assert.Throws<Sharpen.Recipes.RecipeException>(() => Sharpen.Recipes.Recipe.Parse(
            "kind: ranking\noutput: o\ntask: {name: symbol-ops}\nranking: {task: prompt_selection}\n", "r.yaml"));
        Assert.Contains("ranking.frozen", noFrozen.Message);
        var model = Assert.Throws<Sharpen.Recipes.RecipeException>(() => Sharpen.Recipes.Recipe.Parse(
            "kind: ranking\noutput: o\nmodel: {path: m}\nranking: {task: retrieval}\n", "r.yaml"));
        Assert.Contains("remove 'model'", model.Message);
        var badKey = Assert.Throws<Sharpen.Recipes.RecipeException>(() => Sharpen.Recipes.Recipe.Parse(
            "kind: ranking\noutput: o\nranking: {task: retrieval, topk: 3}\n", "r.yaml"));
        Assert.Contains("topk", badKey.Message);
    }

    [Fact]
    public void Options_out_of_range_name_their_key()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new RankingOptions { SamplesPerQuery = 1 }.Validate());
        Assert.Contains("ranking.samples_per_query", e.Message);
    }
}
