using System.Collections.Concurrent;
using System.Globalization;
using System.Numerics;
using Microsoft.Extensions.AI;
using Sharpen.Checkpoints;
using Sharpen.Environments;
using Sharpen.Generation;
using Sharpen.Recipes;
using Sharpen.Serving;
using Sharpen.Tasks;
using Sharpen.Tests.Serving;
using Sharpen.Tokenizers;
using Sharpen.Data;
using AiMessage = Microsoft.Extensions.AI.ChatMessage;
using SharpenMessage = Sharpen.Data.ChatMessage;

namespace Sharpen.Tests.Environments;

/// <summary>
/// DSP and DaSLaM: a frozen model inside the environment answers what the policy wrote, the task verifies the answer.
/// Scripted frozen models (an <see cref="IChatClient"/> whose answer depends on the hint; a recording
/// <see cref="FrozenModel"/>) make the reward's dependence on the policy's text checkable by hand; a tiny real checkpoint
/// (in process, and behind <c>sharpen serve</c> on loopback) checks the real backends.
/// </summary>
public class FrozenModelEnvironmentTests(ServingFixture fixture) : IClassFixture<ServingFixture>
{
    static readonly IVerifiableTask Arithmetic = TaskRegistry.Create("arithmetic");

    /// <summary>The sum of an arithmetic prompt "a+b:", computed here (not by the task).</summary>
    static BigInteger SumOf(string prompt)
    {
        var parts = prompt.TrimEnd(':').Split('+');
        return BigInteger.Parse(parts[0], CultureInfo.InvariantCulture) + BigInteger.Parse(parts[1], CultureInfo.InvariantCulture);
    }

    /// <summary>A scripted "black-box LLM": with the hint "carry" it answers the sum, with any other hint a wrong number.
    /// Usage: one token per character of the conversation's messages.</summary>
    sealed class HintFollower : IChatClient
    {
        public ConcurrentQueue<IReadOnlyList<AiMessage>> Seen { get; } = new();

        public Task<ChatResponse> GetResponseAsync(IEnumerable<AiMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
        {
            var list = messages.ToList();
            Seen.Enqueue(list);
            var text = list[^1].Text;                        // "Hint: {hint}\n{prompt}"
            var nl = text.IndexOf('\n');
            var hint = text["Hint: ".Length..nl];
            var prompt = text[(nl + 1)..];
            var answer = hint == "carry" ? $"answer: {SumOf(prompt)}" : "answer: -1";
            return Task.FromResult(new ChatResponse(new AiMessage(ChatRole.Assistant, answer))
            {
                Usage = new UsageDetails { TotalTokenCount = list.Sum(m => m.Text.Length) },
            });
        }

        public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AiMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public object? GetService(Type serviceType, object? serviceKey = null) => null;
        public void Dispose() { }
    }

    /// <summary>A scripted solver that records every batch: a sub-question is answered "ok{k}" (k = answers so far); the
    /// final question is answered right only after at least two sub-questions.</summary>
    sealed class RecordingSolver : FrozenModel
    {
        public List<IReadOnlyList<IReadOnlyList<SharpenMessage>>> Batches { get; } = [];

        public override string Describe() => "recording solver";

        protected override Task<IReadOnlyList<FrozenReply>> AnswerBatchAsync(IReadOnlyList<IReadOnlyList<SharpenMessage>> conversations, CancellationToken cancellationToken)
        {
            Batches.Add(conversations);
            IReadOnlyList<FrozenReply> replies = conversations.Select(c =>
            {
                int answered = c.Count(m => m.Role == "assistant");
                var last = c[^1].Content;
                if (!last.StartsWith("Now answer: ", StringComparison.Ordinal)) return new FrozenReply($"ok{answered}", 1);
                return new FrozenReply(answered >= 2 ? $"answer: {SumOf(last["Now answer: ".Length..])}" : "answer: -1", 1);
            }).ToArray();
            return Task.FromResult(replies);
        }
    }

    /// <summary>A policy that writes the i-th text of <paramref name="texts"/> to the i-th prompt of each engine call.</summary>
    static ScriptedEngine Policy(string alphabet, params string[] texts)
    {
        int i = 0;
        return new ScriptedEngine(CharTokenizer.Create(alphabet), _ => texts[i++ % texts.Length]);
    }

    static MultiTurnOptions OneTurn => new() { Sampling = new SamplingOptions { MaxNewTokens = 32, StopStrings = ["\n"] }, MaxTurns = 1, MaxTrajectoryTokens = 128 };

    [Fact]
    public async Task Dsp_reward_follows_the_hint_and_a_lock_step_batch_is_one_frozen_call()
    {
        var solver = new HintFollower();
        using var frozen = new ChatClientFrozenModel(solver);
        var envs = Enumerable.Range(0, 4).Select(_ => new DspEnvironment(Arithmetic, frozen)).ToArray();
        var engine = Policy(envs[0].Alphabet, "carry", "guess", " carry ", "");
        var rollout = new MultiTurnRollout(engine, OneTurn);
        var played = await rollout.RunAsync(envs, [0, 1, 2, 3]);

        var prompts = Enumerable.Range(0, 4).Select(s => Arithmetic.Generate(1, s)[0].Prompt).ToArray();
        // The hint "carry" (trimmed) makes the frozen model right (reward 1, format reward 0); any other hint, wrong (0).
        Assert.Equal([1.0, 0.0, 1.0, 0.0], played.Select(t => t.Return));
        Assert.Equal(["won", "lost", "won", "lost"], played.Select(t => t.FinalInfo["outcome"]));
        Assert.Equal($"answer: {SumOf(prompts[0])}", played[0].FinalInfo["frozen_answer"]);
        Assert.Equal("answer: -1", played[1].FinalInfo["frozen_answer"]);
        Assert.Equal(["5", "5", "5", "0"], played.Select(t => t.FinalInfo["hint_chars"]));
        // What the frozen model saw: one user message, the hint above the task's prompt.
        var seen = solver.Seen.Select(c => Assert.Single(c).Text).Order(StringComparer.Ordinal).ToArray();
        var expected = new[] { $"Hint: carry\n{prompts[0]}", $"Hint: guess\n{prompts[1]}", $"Hint: carry\n{prompts[2]}", $"Hint: \n{prompts[3]}" };
        Assert.Equal(expected.Order(StringComparer.Ordinal), seen);
        // One policy call for the four environments, one frozen call for their four requests.
        Assert.Equal([4], engine.Calls);
        Assert.Equal((1, 4, expected.Sum(e => (long)e.Length)), (frozen.Calls, frozen.Requests, frozen.Tokens));
        var m = frozen.TakeMetrics();
        Assert.Equal((1.0, 4.0, (double)expected.Sum(e => e.Length)), (m["frozen/calls"], m["frozen/requests"], m["frozen/tokens"]));
        Assert.Equal((0.0, 0.0), (frozen.TakeMetrics()["frozen/calls"], frozen.TakeMetrics()["frozen/requests"]));

        // Stepped alone (no rollout), an environment is a batch of one; stepping again without a reset is refused.
        var alone = new DspEnvironment(Arithmetic, frozen);
        await alone.ResetAsync(7);
        var step = await alone.StepAsync("carry");
        Assert.Equal((1.0, true), (step.Reward, step.Done));
        Assert.Equal((2, 5), (frozen.Calls, frozen.Requests));
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await alone.StepAsync("carry"));
        // Without a frozen model the registry entry says what is missing.
        Assert.Contains("needs a frozen model", Assert.Throws<ArgumentException>(() => EnvironmentRegistry.Create("dsp")).Message);
    }

    [Fact]
    public async Task Daslam_sub_questions_are_answered_in_rounds_batched_across_environments()
    {
        using var solver = new RecordingSolver();
        var envs = Enumerable.Range(0, 3).Select(_ => new DaslamEnvironment(Arithmetic, solver)).ToArray();
        // Two sub-questions; none; four (one empty piece skipped) of which three are asked.
        var engine = Policy(envs[0].Alphabet, "a;b", "", "a; ;b;c;d");
        var played = await new MultiTurnRollout(engine, OneTurn).RunAsync(envs, [0, 1, 2]);
        var p = Enumerable.Range(0, 3).Select(s => Arithmetic.Generate(1, s)[0].Prompt).ToArray();

        // Right only after at least two sub-questions were answered.
        Assert.Equal([1.0, 0.0, 1.0], played.Select(t => t.Return));
        Assert.Equal(["2", "0", "3"], played.Select(t => t.FinalInfo["sub_questions"]));
        Assert.Equal(["0", "0", "1"], played.Select(t => t.FinalInfo["dropped"]));
        Assert.Equal(["3", "1", "4"], played.Select(t => t.FinalInfo["frozen_requests"]));
        // Rounds: all three; then the two with sub-questions left; then both again; then the last one.
        Assert.Equal([3, 2, 2, 1], solver.Batches.Select(b => b.Count));
        Assert.Equal((4, 8, 8), (solver.Calls, solver.Requests, solver.Tokens));
        // The first environment's final conversation, message by message.
        var final0 = solver.Batches[2][0];
        Assert.Equal(
            [("user", $"{p[0]}\nFirst: a"), ("assistant", "ok0"), ("user", "Next: b"), ("assistant", "ok1"), ("user", $"Now answer: {p[0]}")],
            final0.Select(m => (m.Role, m.Content)));
        Assert.Equal([("user", $"Now answer: {p[1]}")], solver.Batches[0][1].Select(m => (m.Role, m.Content)));
        Assert.Equal(("user", "Next: c"), (solver.Batches[2][1][^1].Role, solver.Batches[2][1][^1].Content));
    }

    [Fact]
    public async Task A_tiny_checkpoint_in_process_answers_the_batch_in_one_engine_call()
    {
        // The fixture's random checkpoint (printable-ASCII character tokenizer) as the frozen model, prompts rendered raw.
        using var frozen = new FrozenModelSpec { Checkpoint = fixture.CheckpointDir, MaxNewTokens = 6 }.Open();
        var envs = Enumerable.Range(0, 3).Select(_ => new DspEnvironment(Arithmetic, frozen)).ToArray();
        var played = await new MultiTurnRollout(Policy(envs[0].Alphabet, "1", "22", "333"), OneTurn).RunAsync(envs, [4, 5, 6]);
        Assert.Equal((1, 3), (frozen.Calls, frozen.Requests));

        // The same checkpoint, loaded again, asked one prompt at a time: the same greedy answers, and the rewards are
        // their verdicts. Tokens = (BOS + one per character of the request) + the answer's tokens, per request.
        var loaded = HfCheckpoint.Load(fixture.CheckpointDir, requireTokenizer: true);
        using var model = loaded.Model;
        var engine = new RolloutEngine(model, loaded.Tokenizer!);
        long tokens = 0;
        string[] hints = ["1", "22", "333"];
        for (int i = 0; i < 3; i++)
        {
            var problem = Arithmetic.Generate(1, 4 + i)[0];
            var request = $"Hint: {hints[i]}\n{problem.Prompt}";
            var one = engine.Generate([request], new SamplingOptions { Temperature = 0, MaxNewTokens = 6, StopStrings = ["\n"] })[0];
            var answer = one.CompletionText.Split('\n')[0];
            Assert.Equal(answer, played[i].FinalInfo["frozen_answer"]);
            Assert.Equal(Arithmetic.Verify(problem, answer).Reward, played[i].Return);
            tokens += 1 + request.Length + one.CompletionIds.Length;
        }
        Assert.Equal(tokens, frozen.Tokens);
    }

    [Fact]
    public async Task Sharpen_serve_on_loopback_and_the_in_process_chat_client_give_the_same_answers()
    {
        using var http = new OpenAiChatFrozenModel(fixture.V1, ServingFixture.ModelId, maxTokens: 6, temperature: 0, stops: ["\n"]);
        var envs = Enumerable.Range(0, 3).Select(_ => new DspEnvironment(Arithmetic, http)).ToArray();
        var played = await new MultiTurnRollout(Policy(envs[0].Alphabet, "4", "55", "6"), OneTurn).RunAsync(envs, [8, 9, 10]);
        Assert.Equal((1, 3), (http.Calls, http.Requests));

        using var client = new PolicyChatClient(fixture.Host);
        using var inProcess = new ChatClientFrozenModel(client, new ChatOptions { Temperature = 0, MaxOutputTokens = 6, StopSequences = ["\n"], Seed = 1 });
        var direct = Enumerable.Range(0, 3).Select(_ => new DspEnvironment(Arithmetic, inProcess)).ToArray();
        var again = await new MultiTurnRollout(Policy(direct[0].Alphabet, "4", "55", "6"), OneTurn).RunAsync(direct, [8, 9, 10]);
        Assert.Equal(played.Select(t => t.FinalInfo["frozen_answer"]), again.Select(t => t.FinalInfo["frozen_answer"]));
        Assert.Equal((1, 3), (inProcess.Calls, inProcess.Requests));
        // Both report the server's usage: the same tokens for the same requests and answers.
        Assert.True(http.Tokens > 3 * 9, $"tokens {http.Tokens}");
        Assert.Equal(http.Tokens, inProcess.Tokens);
        for (int i = 0; i < 3; i++)
            Assert.Equal(Arithmetic.Verify(Arithmetic.Generate(1, 8 + i)[0], played[i].FinalInfo["frozen_answer"]).Reward, played[i].Return);

        // A wrong model name: the server's refusal, with the status, stops the step.
        using var wrong = new OpenAiChatFrozenModel(fixture.V1, "no-such-model", 4, 0);
        var env = new DspEnvironment(Arithmetic, wrong);
        await env.ResetAsync(0);
        var e = await Assert.ThrowsAsync<HttpRequestException>(async () => await env.StepAsync("x"));
        Assert.Contains("HTTP 4", e.Message);
    }

    static string RecipeText(string output, string frozen, string task = "{ name: arithmetic, digits: 2 }") => $$"""
        kind: rl
        output: {{output}}
        seed: 5
        model: { init: { hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 96 } }
        env: { name: dsp, task: {{task}}, frozen: {{frozen}}, token_budget: 64 }
        rl: { algorithm: grpo, iterations: 2, prompts_per_iteration: 2, samples_per_prompt: 2, max_new_tokens: 6, learning_rate: 0.001, eval_every: 0 }
        eval: { problems: 3 }
        """;

    [Fact]
    public void A_dsp_recipe_opens_the_frozen_model_once_and_writes_frozen_metrics_per_iteration()
    {
        using var dir = new TempDir();
        var frozen = $"{{ checkpoint: '{fixture.CheckpointDir}', max_new_tokens: 4 }}";
        var recipe = Recipe.Parse(RecipeText(dir.File("run"), frozen), "dsp.yaml");
        using (var source = EnvironmentSource.From(recipe.Env!, "dsp.yaml"))
        {
            var env = Assert.IsType<DspEnvironment>(source.Create());
            Assert.Same(source.Frozen, env.Model);
            Assert.Same(source.Frozen, ((DspEnvironment)source.Create()).Model);
            Assert.Equal("arithmetic", env.Task.Name);
            // digits: 2 reached the task (its default is 3): operands of at most two digits, some of two.
            var operands = env.Task.Generate(50, 0).SelectMany(p => p.Prompt.TrimEnd(':').Split('+')).ToArray();
            Assert.All(operands, o => Assert.InRange(o.Length, 1, 2));
            Assert.Contains(operands, o => o.Length == 2);
        }

        RlPipeline.Run(recipe);
        var log = new RunLog(dir.File("run"), append: true);
        var rows = log.ReadMetrics();
        Assert.Equal(2, rows.Count);
        // Iteration 1: 2 seeds × 2 samples in one lock-step turn = one call of 4 requests. Iteration 2 adds the final
        // greedy evaluation on 3 seeds (one more call of 3 requests).
        Assert.Equal((1.0, 4.0), (rows[0]["frozen/calls"]!.GetValue<double>(), rows[0]["frozen/requests"]!.GetValue<double>()));
        Assert.Equal((2.0, 7.0), (rows[1]["frozen/calls"]!.GetValue<double>(), rows[1]["frozen/requests"]!.GetValue<double>()));
        Assert.True(rows[0]["frozen/tokens"]!.GetValue<double>() >= 4 * 8);   // each request: BOS, "Hint: ", "\n", the prompt
        var summary = log.ReadSummary();
        // Totals: the evaluation before training (3), then 4, then 4 + 3.
        Assert.Equal((4, 14), (summary["frozen"]!["calls"]!.GetValue<long>(), summary["frozen"]!["requests"]!.GetValue<long>()));
        Assert.Equal(1.0, summary["frozen"]!["calls_before"]!.GetValue<double>());
        Assert.Equal(fixture.CheckpointDir, summary["frozen"]!["model"]!.GetValue<string>());
    }

    [Fact]
    public void Bad_frozen_sections_are_named_in_one_line()
    {
        static string Error(string frozen, string task = "arithmetic") =>
            Assert.Throws<RecipeException>(() => Recipe.Parse(RecipeText("runs/x", frozen, task), "dsp.yaml")).Message;
        Assert.Contains("exactly one of 'checkpoint'", Error("{ checkpoint: a, url: 'http://127.0.0.1:1/v1', model: m }"));
        Assert.Contains("frozen.model must name the served model", Error("{ url: 'http://127.0.0.1:1/v1' }"));
        Assert.Contains("frozen.template must be raw, plain or tagged", Error("{ checkpoint: a, template: fancy }"));
        Assert.Contains("'env.task.name' is 'chess'", Error("{ checkpoint: a }", "chess"));
        var missing = Assert.Throws<RecipeException>(() => Recipe.Parse(RecipeText("runs/x", "{ checkpoint: a }").Replace("frozen: { checkpoint: a }, ", ""), "dsp.yaml")).Message;
        Assert.Contains("'env.frozen' is required for 'dsp'", missing);
        var recipe = Recipe.Parse(RecipeText("runs/x", "{ checkpoint: /no/such/folder }"), "dsp.yaml");
        Assert.Contains("dsp.yaml: 'env.frozen': frozen model checkpoint '/no/such/folder' does not exist",
            Assert.Throws<RecipeException>(() => EnvironmentSource.From(recipe.Env!, "dsp.yaml")).Message);
    }

    [Fact]
    public async Task No_policy_text_makes_a_frozen_model_environment_throw()
    {
        using var solver = new RecordingSolver();
        var rng = new Random(7);
        string[] pieces = [";", " ", "\n", "Hint:", "{prompt}", "{hint}", "{question}", "answer:", "é", "🙂", "\uD800", "\u0000", "9"];
        for (int episode = 0; episode < 40; episode++)
        {
            IEnvironment env = episode % 2 == 0 ? new DspEnvironment(Arithmetic, solver) : new DaslamEnvironment(Arithmetic, solver);
            var obs = await env.ResetAsync(episode);
            Assert.All(obs.SelectMany(m => m.Content), c => Assert.Contains(c, env.Alphabet));
            var text = string.Concat(Enumerable.Range(0, rng.Next(0, 30)).Select(_ => pieces[rng.Next(pieces.Length)]));
            if (rng.Next(10) == 0) text = new string(';', 5000);
            var step = await env.StepAsync(text);
            Assert.True(step.Done);
            Assert.True(double.IsFinite(step.Reward));
        }
    }
}
