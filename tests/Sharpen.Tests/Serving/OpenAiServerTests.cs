#pragma warning disable OPENAI001 // Seed and the legacy completions client are marked experimental in the OpenAI library
using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text.Json.Nodes;
using OpenAI.Chat;
using Sharpen.Checkpoints;
using Sharpen.Cli.Commands;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Serving;
using Sharpen.Tests.Cli;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Serving;

/// <summary>The server against the official OpenAI .NET client (2.15.0), compared with the in-process engine, scoring and CLI.</summary>
public sealed class OpenAiServerTests(ServingFixture fx) : IClassFixture<ServingFixture>
{
    static readonly IReadOnlyList<Sharpen.Data.ChatMessage> Conversation =
        [new("system", "Be brief."), new("user", "Name a prime number.")];

    ChatClient Chat => fx.Client().GetChatClient(ServingFixture.ModelId);

    // The OpenAI library keeps its legacy completions client internal, so /v1/completions goes through the official
    // client's own pipeline (its auth, headers and error handling): a ClientResultException for any non-200.
    async Task<JsonObject> Complete(JsonObject body)
    {
        body["model"] ??= ServingFixture.ModelId;
        return JsonNode.Parse(await PostCompletion(body.ToJsonString()))!.AsObject();
    }

    async Task<string> PostCompletion(string body)
    {
        var pipeline = Chat.Pipeline;
        using var message = pipeline.CreateMessage();
        message.Request.Method = "POST";
        message.Request.Uri = new Uri(fx.V1 + "/completions");
        message.Request.Headers.Set("Content-Type", "application/json");
        message.Request.Content = BinaryContent.Create(BinaryData.FromString(body));
        message.ResponseClassifier = PipelineMessageClassifier.Create([200]);
        await pipeline.SendAsync(message);
        if (message.Response!.IsError) throw new ClientResultException(message.Response);
        return message.Response.Content.ToString();
    }

    // The same checkpoint loaded on its own, sampled by the torch engine in this process.
    IReadOnlyList<Rollout> Engine(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingOptions options)
    {
        var loaded = HfCheckpoint.Load(fx.CheckpointDir, requireTokenizer: true);
        using var model = loaded.Model;
        return new RolloutEngine(model, loaded.Tokenizer!).Generate(prompts, options);
    }

    float[][] TeacherForced(IReadOnlyList<IReadOnlyList<int>> prompts, IReadOnlyList<IReadOnlyList<int>> completions)
    {
        var loaded = HfCheckpoint.Load(fx.CheckpointDir, requireTokenizer: true);
        using var model = loaded.Model;
        return Scoring.Score(model, prompts, completions, padId: CharTokenizer.PadId);
    }

    [Fact]
    public async Task Models_lists_the_served_model_and_health_answers()
    {
        var models = await fx.Client().GetOpenAIModelClient().GetModelsAsync();
        Assert.Equal([ServingFixture.ModelId], models.Value.Select(m => m.Id));
        using var http = new HttpClient();
        var health = JsonNode.Parse(await http.GetStringAsync(new Uri(fx.Server.BaseAddress, "health")))!;
        Assert.Equal("ok", health["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task Greedy_chat_is_the_engine_on_the_rendered_prompt_with_usage()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 20 };
        var reply = (await Chat.CompleteChatAsync([new SystemChatMessage("Be brief."), new UserChatMessage("Name a prime number.")], options)).Value;

        var prompt = ServingFixture.Tok.Encode(ChatTemplate.RenderPrompt(Conversation));
        var expected = Engine([prompt], new SamplingOptions { Temperature = 0, MaxNewTokens = 20 })[0];
        Assert.True(expected.CompletionIds.Length > 3, "the random model should say something before EOS");
        Assert.Equal(expected.CompletionText, reply.Content[0].Text);
        Assert.Equal(expected.Stop == StopReason.MaxTokens ? ChatFinishReason.Length : ChatFinishReason.Stop, reply.FinishReason);
        Assert.Equal(prompt.Count, reply.Usage.InputTokenCount);
        Assert.Equal(expected.CompletionIds.Length, reply.Usage.OutputTokenCount);
        Assert.Equal(ChatMessageRole.Assistant, reply.Role);
    }

    [Fact]
    public async Task Greedy_completion_equals_sharpen_generate_at_temperature_zero()
    {
        var (code, output, _) = CliHarness.Invoke(GenerateCommand.Create(), "--model", fx.CheckpointDir, "--prompt", "Once upon",
            "--temperature", "0", "--max-new-tokens", "24");
        Assert.Equal(0, code);
        // "--- sample 0 (N tokens, stop: …)" then the completion text on the following line(s).
        var lines = output.Split('\n');
        var cliText = string.Join('\n', lines.Skip(1)).TrimEnd('\n');

        var json = await Complete(new JsonObject { ["prompt"] = "Once upon", ["temperature"] = 0, ["max_tokens"] = 24 });
        Assert.Equal(cliText, json["choices"]![0]!["text"]!.GetValue<string>());
        Assert.Equal("text_completion", json["object"]!.GetValue<string>());
    }

    [Fact]
    public async Task Completion_logprobs_are_the_teacher_forced_logprobs_of_the_returned_tokens()
    {
        IReadOnlyList<int> prompt = [CharTokenizer.BosId, .. ServingFixture.Tok.Encode("abc", addSpecialTokens: false)];
        var json = await Complete(new JsonObject
        {
            ["prompt"] = new JsonArray(prompt.Select(i => (JsonNode)i).ToArray()),
            ["n"] = 3, ["temperature"] = 0.9, ["top_p"] = 0.95, ["seed"] = 7, ["max_tokens"] = 12, ["logprobs"] = 4,
            ["return_tokens_as_token_ids"] = true,
        });
        var choices = json["choices"]!.AsArray();
        Assert.True(3 == choices.Count, json.ToJsonString());
        var ids = choices.Select(c => c!["logprobs"]!["tokens"]!.AsArray().Select(t => int.Parse(t!.GetValue<string>()["token_id:".Length..])).ToArray()).ToList();
        var served = choices.Select(c => c!["logprobs"]!["token_logprobs"]!.AsArray().Select(x => x!.GetValue<float>()).ToArray()).ToList();
        var scored = TeacherForced([prompt, prompt, prompt], ids.Select(x => (IReadOnlyList<int>)x).ToList());
        for (int c = 0; c < 3; c++)
        {
            Assert.Equal(ServingFixture.Tok.Decode(ids[c]), choices[c]!["text"]!.GetValue<string>());
            Assert.True(scored[c].Length == served[c].Length, json.ToJsonString());
            for (int t = 0; t < served[c].Length; t++) Assert.True(Math.Abs(scored[c][t] - served[c][t]) < 1e-4, $"choice {c} token {t}: {served[c][t]} vs {scored[c][t]}");
            // Top alternatives: 4 per token, best first, a probability distribution's head (sum ≤ 1), and the sampled
            // token is among them exactly when its log-prob reaches the 4th best.
            var tops = choices[c]!["logprobs"]!["top_logprobs"]!.AsArray();
            for (int t = 0; t < tops.Count; t++)
            {
                var alts = tops[t]!.AsObject().Select(kv => (Id: int.Parse(kv.Key["token_id:".Length..]), Lp: kv.Value!.GetValue<float>())).ToList();
                Assert.Equal(4, alts.Count);
                Assert.True(alts.Zip(alts.Skip(1)).All(p => p.First.Lp >= p.Second.Lp));
                Assert.True(alts.Sum(a => Math.Exp(a.Lp)) <= 1 + 1e-5);
                Assert.Equal(served[c][t] >= alts[3].Lp - 1e-5, alts.Any(a => a.Id == ids[c][t]));
            }
        }
        var usage = json["usage"]!;
        Assert.Equal(prompt.Count, usage["prompt_tokens"]!.GetValue<int>());   // the prompt counts once, whatever n is (as OpenAI counts)
        Assert.Equal(ids.Sum(x => x.Length), usage["completion_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task Chat_logprobs_match_teacher_forcing_and_name_the_tokens()
    {
        var options = new ChatCompletionOptions { Temperature = 0.7f, Seed = 3, MaxOutputTokenCount = 10, IncludeLogProbabilities = true, TopLogProbabilityCount = 2 };
        var reply = (await Chat.CompleteChatAsync([new SystemChatMessage("Be brief."), new UserChatMessage("Name a prime number.")], options)).Value;
        var tokens = reply.ContentTokenLogProbabilities;
        Assert.Equal(reply.Usage.OutputTokenCount, tokens.Count);
        var ids = tokens.Select(t => t.Token == "<eos>" ? CharTokenizer.EosId : ServingFixture.Tok.Encode(t.Token, addSpecialTokens: false).Single()).ToArray();
        Assert.Equal(reply.Content[0].Text, ServingFixture.Tok.Decode(ids));
        var prompt = ServingFixture.Tok.Encode(ChatTemplate.RenderPrompt(Conversation));
        var scored = TeacherForced([prompt], [ids])[0];
        for (int t = 0; t < ids.Length; t++)
        {
            Assert.True(Math.Abs(scored[t] - tokens[t].LogProbability) < 1e-4);
            Assert.Equal(2, tokens[t].TopLogProbabilities.Count);
            Assert.True(tokens[t].TopLogProbabilities[0].LogProbability >= Math.Max(tokens[t].TopLogProbabilities[1].LogProbability, tokens[t].LogProbability) - 1e-5);
        }
    }

    [Fact]
    public async Task Streamed_chat_concatenates_to_the_whole_answer_then_usage()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 16 };
        var messages = new OpenAI.Chat.ChatMessage[] { new UserChatMessage("Tell me a story") };
        var whole = (await Chat.CompleteChatAsync(messages, options)).Value;
        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        int updates = 0;
        await foreach (var u in Chat.CompleteChatStreamingAsync(messages, options))
        {
            updates++;
            foreach (var part in u.ContentUpdate) text.Append(part.Text);
            finish ??= u.FinishReason;
            usage ??= u.Usage;
        }
        Assert.Equal(whole.Content[0].Text, text.ToString());
        Assert.Equal(whole.FinishReason, finish);
        Assert.True(updates >= whole.Usage.OutputTokenCount, "one chunk per token at least");
        Assert.NotNull(usage);
        Assert.Equal(whole.Usage.OutputTokenCount, usage!.OutputTokenCount);
    }

    [Fact]
    public async Task Stop_sequences_end_the_text_before_them_and_max_tokens_reports_length()
    {
        // ignore_eos (vLLM's extension): the random model may end early, and a stop string needs text to cut.
        var baseline = await Complete(new JsonObject { ["prompt"] = "Once upon", ["temperature"] = 0, ["max_tokens"] = 24, ["ignore_eos"] = true });
        var text = baseline["choices"]![0]!["text"]!.GetValue<string>();
        Assert.True(text.Length >= 6, $"need a longer greedy text than '{text}'");
        var stop = text.Substring(3, 2);
        var cut = await Complete(new JsonObject { ["prompt"] = "Once upon", ["temperature"] = 0, ["max_tokens"] = 24, ["ignore_eos"] = true, ["stop"] = stop });
        Assert.Equal(text[..text.IndexOf(stop, StringComparison.Ordinal)], cut["choices"]![0]!["text"]!.GetValue<string>());
        Assert.Equal("stop", cut["choices"]![0]!["finish_reason"]!.GetValue<string>());
        var shortOne = await Complete(new JsonObject { ["prompt"] = "Once upon", ["temperature"] = 0, ["max_tokens"] = 2, ["ignore_eos"] = true });
        Assert.Equal(text[..2], shortOne["choices"]![0]!["text"]!.GetValue<string>());
        Assert.Equal("length", shortOne["choices"]![0]!["finish_reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task Same_seed_same_samples_and_prompt_lists_give_one_choice_per_prompt_and_sample()
    {
        var body = new JsonObject { ["prompt"] = new JsonArray("ab", "xyz"), ["n"] = 2, ["temperature"] = 1.0, ["seed"] = 11, ["max_tokens"] = 8 };
        var a = await Complete(body.DeepClone().AsObject());
        var b = await Complete(body.DeepClone().AsObject());
        Assert.Equal(4, a["choices"]!.AsArray().Count);
        Assert.Equal(a["choices"]!.AsArray().Select(c => c!["text"]!.GetValue<string>()), b["choices"]!.AsArray().Select(c => c!["text"]!.GetValue<string>()));
        Assert.Equal([0, 1, 2, 3], a["choices"]!.AsArray().Select(c => c!["index"]!.GetValue<int>()));
    }

    public static TheoryData<string, string, int, string?> BadChats => new()
    {
        // body, why, status, code
        { """{"model": "nope", "messages": [{"role": "user", "content": "hi"}]}""", "unknown model", 404, "model_not_found" },
        { """{"model": "tiny", "messages": []}""", "empty messages", 400, "empty_array" },
        { """{"model": "tiny", "messages": [{"role": "wizard", "content": "hi"}]}""", "unknown role", 400, "invalid_role" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}""", "malformed JSON", 400, "invalid_json" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5000}""", "max_tokens past the context", 422, "context_length_exceeded" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "n": 17}""", "n past --max-batch", 422, "n_too_large" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}""", "wrong type", 400, "invalid_type" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "top_logprobs": 3}""", "top_logprobs without logprobs", 400, null },
        { """{"messages": [{"role": "user", "content": "hi"}]}""", "no model", 400, "missing_required_parameter" },
    };

    [Theory]
    [MemberData(nameof(BadChats))]
    public async Task Bad_requests_get_openai_error_json_and_the_server_keeps_serving(string body, string why, int status, string? code)
    {
        var e = await Assert.ThrowsAsync<ClientResultException>(() => Chat.CompleteChatAsync(BinaryContent.Create(BinaryData.FromString(body))));
        Assert.True(status == e.Status, $"{why}: status {e.Status}");
        var error = JsonNode.Parse(e.GetRawResponse()!.Content.ToString())!["error"]!.AsObject();
        Assert.Equal(["message", "type", "param", "code"], error.Select(kv => kv.Key));
        Assert.False(string.IsNullOrWhiteSpace(error["message"]!.GetValue<string>()));
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
        Assert.Equal(code, error["code"]?.GetValue<string>());
        // Still serving.
        var ok = await Chat.CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { MaxOutputTokenCount = 3 });
        Assert.NotNull(ok.Value.Content);
    }

    [Fact]
    public async Task A_body_past_the_limit_is_413_and_bad_token_ids_are_400()
    {
        var huge = new JsonObject { ["model"] = "tiny", ["prompt"] = new string('a', (int)ServingFixture.MaxRequestBytes + 10) };
        var e = await Assert.ThrowsAsync<ClientResultException>(() => PostCompletion(huge.ToJsonString()));
        Assert.Equal(413, e.Status);
        Assert.Equal("request_too_large", JsonNode.Parse(e.GetRawResponse()!.Content.ToString())!["error"]!["code"]!.GetValue<string>());

        var badIds = new JsonObject { ["model"] = "tiny", ["prompt"] = new JsonArray(1, 2, 100000) };
        e = await Assert.ThrowsAsync<ClientResultException>(() => PostCompletion(badIds.ToJsonString()));
        Assert.Equal(400, e.Status);
        Assert.Equal("prompt", JsonNode.Parse(e.GetRawResponse()!.Content.ToString())!["error"]!["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task Concurrent_requests_share_batches_and_get_what_each_would_get_alone()
    {
        var prompts = new[] { "a", "bb", "Once", "x y z", "hello", "Q", "prime", "12" };
        var before = fx.Host.Stats;
        var answers = await Task.WhenAll(prompts.Select(p => Complete(new JsonObject { ["prompt"] = p, ["temperature"] = 0, ["max_tokens"] = 40, ["return_tokens_as_token_ids"] = true, ["logprobs"] = 0 })));
        var after = fx.Host.Stats;
        Assert.Equal(prompts.Length, after.Jobs - before.Jobs);
        // Decoded together: fewer steps than tokens (one request at a time takes a step per token).
        long tokens = answers.Sum(a => a["usage"]!["completion_tokens"]!.GetValue<long>());
        Assert.Equal(tokens, after.Tokens - before.Tokens);
        Assert.True(after.Steps - before.Steps < tokens / 2, $"{after.Steps - before.Steps} steps for {tokens} tokens: nothing was batched");
        var alone = Engine(prompts.Select(p => ServingFixture.Tok.Encode(p)).ToList(), new SamplingOptions { Temperature = 0, MaxNewTokens = 40 });
        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(alone[i].CompletionIds, answers[i]["choices"]![0]!["logprobs"]!["tokens"]!.AsArray().Select(t => int.Parse(t!.GetValue<string>()[9..])));
    }
}
