using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Generation;
using Sharpen.Serving;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Serving;

/// <summary>
/// PolicyHost's continuous batching: sequences that finish free their slot at once and waiting requests join the running
/// batch; outputs equal each request decoded alone; streamed tokens leave while the request is still decoding.
/// </summary>
public sealed class ContinuousBatchingTests
{
    static IReadOnlyList<int> Ids(string text) => ServingFixture.Tok.Encode(text);

    // The same checkpoint loaded on its own and decoded one request at a time by the torch engine.
    static Rollout Alone(string dir, IReadOnlyList<int> prompt, SamplingOptions options)
    {
        var loaded = HfCheckpoint.Load(dir, requireTokenizer: true);
        using var model = loaded.Model;
        return new RolloutEngine(model, loaded.Tokenizer!).Generate([prompt], options).Single();
    }

    [Fact]
    public async Task Short_requests_finish_long_before_a_long_one_in_at_most_max_batch_slots_with_the_outputs_each_gets_alone()
    {
        using var dir = new TempDir();
        ServingFixture.WriteCheckpoint(dir.File("model"), seed: 5);
        const int maxBatch = 4, longTokens = 120, shortTokens = 5;
        var finishedAt = new Dictionary<int, long>();   // job → the step after which its result was set
        var tasks = new List<Task<GenerationResult>>();
        int mostRunning = 0;
        using var host = PolicyHost.Load(dir.File("model"), new PolicyHostOptions
        {
            MaxBatch = maxBatch, MaxQueue = 32,
            OnStep = s =>
            {
                mostRunning = Math.Max(mostRunning, s.Running);
                lock (tasks)
                    for (int i = 0; i < tasks.Count; i++)
                        if (tasks[i].IsCompleted) finishedAt.TryAdd(i, s.Steps);
            },
        });
        var greedy = new SamplingOptions { Temperature = 0, StopAtEos = false };
        var prompts = new[] { "a", "Once upon", "xy", "hello there, friend", "Q", "12345", "prime", "b c", "zz top", "?" };
        var jobs = prompts.Select((p, i) => new GenerationJob([Ids(p)], greedy with { MaxNewTokens = i == 0 ? longTokens : shortTokens })).ToList();
        lock (tasks)
            foreach (var job in jobs)
            {
                Assert.True(host.TrySubmit(job, out var task));
                tasks.Add(task);
            }
        var results = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromMinutes(2));

        // The long request samples a token at every step from the first: it ends at step 120. Nine short ones of 5 tokens
        // share the other 3 slots in three waves, ~15 steps; had the batch waited for its slowest sequence, the
        // requests that did not fit the first batch would have ended after step 120.
        Assert.Equal(longTokens, finishedAt[0]);
        for (int i = 1; i < jobs.Count; i++) Assert.True(finishedAt[i] <= 30, $"short request {i} finished after step {finishedAt[i]}");
        Assert.True(mostRunning <= maxBatch && host.Stats.LargestBatch <= maxBatch, $"{Math.Max(mostRunning, host.Stats.LargestBatch)} slots in use");
        Assert.Equal(maxBatch, host.Stats.LargestBatch);
        Assert.Equal(longTokens + (jobs.Count - 1) * shortTokens, host.Stats.Tokens);
        Assert.True(host.Stats.Batches > 1, "later requests joined a running batch");

        for (int i = 0; i < jobs.Count; i++)
        {
            var alone = Alone(dir.File("model"), jobs[i].Prompts[0], jobs[i].Options);
            var served = results[i].Rollouts.Single();
            Assert.Equal(alone.CompletionIds, served.CompletionIds);
            Assert.Equal(alone.CompletionText, served.CompletionText);
            Assert.Equal(StopReason.MaxTokens, served.Stop);
            for (int t = 0; t < alone.LogProbs.Length; t++)
                Assert.True(Math.Abs(alone.LogProbs[t] - served.LogProbs[t]) < 1e-4, $"request {i} token {t}: {served.LogProbs[t]} vs {alone.LogProbs[t]}");
        }
    }

    [Fact]
    public async Task Joining_requests_of_different_lengths_with_n_eos_and_stop_strings_get_what_each_gets_alone()
    {
        using var dir = new TempDir();
        ServingFixture.WriteCheckpoint(dir.File("model"), seed: 11);
        using var host = PolicyHost.Load(dir.File("model"), new PolicyHostOptions { MaxBatch = 6, MaxQueue = 32 });
        var baseline = Alone(dir.File("model"), Ids("Once upon"), new SamplingOptions { Temperature = 0, MaxNewTokens = 30, StopAtEos = false });
        Assert.True(baseline.CompletionText.Length >= 8, $"need a longer greedy text than '{baseline.CompletionText}'");
        var stop = baseline.CompletionText.Substring(5, 2);
        var jobs = new List<GenerationJob>
        {
            new([Ids("Once upon")], new SamplingOptions { Temperature = 0, MaxNewTokens = 30, StopAtEos = false, StopStrings = [stop] }),
            new([Ids("a"), Ids("a much longer prompt than the others")], new SamplingOptions { Temperature = 0, MaxNewTokens = 25, SamplesPerPrompt = 2 }),
            new([Ids("Tell me")], new SamplingOptions { Temperature = 0, MaxNewTokens = 40 }),
            new([Ids("xyz")], new SamplingOptions { Temperature = 0, MaxNewTokens = 12, StopAtEos = false }),
            new([Ids("hello")], new SamplingOptions { Temperature = 0, MaxNewTokens = 33 }),
        };
        var tasks = new List<Task<GenerationResult>>();
        foreach (var job in jobs)
        {
            Assert.True(host.TrySubmit(job, out var task));
            tasks.Add(task);
            await Task.Delay(3);   // arrive while others decode
        }
        var results = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromMinutes(2));
        Assert.True(host.Stats.LargestBatch <= 6);
        for (int j = 0; j < jobs.Count; j++)
        {
            var o = jobs[j].Options;
            Assert.Equal(jobs[j].Prompts.Count * o.SamplesPerPrompt, results[j].Rollouts.Count);
            foreach (var r in results[j].Rollouts)
            {
                var alone = Alone(dir.File("model"), jobs[j].Prompts[r.PromptIndex], o with { SamplesPerPrompt = 1 });
                Assert.Equal(alone.CompletionIds, r.CompletionIds);
                Assert.Equal(alone.Stop, r.Stop);
                for (int t = 0; t < alone.LogProbs.Length; t++) Assert.True(Math.Abs(alone.LogProbs[t] - r.LogProbs[t]) < 1e-4);
            }
        }
        Assert.Equal(StopReason.StopString, results[0].Rollouts[0].Stop);
    }

    [Fact]
    public async Task A_seeded_sample_is_the_same_alone_and_in_company()
    {
        using var dir = new TempDir();
        ServingFixture.WriteCheckpoint(dir.File("model"), seed: 5);
        using var host = PolicyHost.Load(dir.File("model"), new PolicyHostOptions { MaxBatch = 8 });
        var seeded = new GenerationJob([Ids("Once")], new SamplingOptions { Temperature = 1, TopP = 0.9, MaxNewTokens = 20, SamplesPerPrompt = 3, Seed = 17, StopAtEos = false });
        var alone = await host.GenerateAsync(seeded);
        var company = Enumerable.Range(0, 4).Select(i => host.GenerateAsync(new GenerationJob([Ids("other " + i)],
            new SamplingOptions { Temperature = 1, MaxNewTokens = 30 }, SeedGiven: false))).ToList();
        var together = await host.GenerateAsync(seeded);
        await Task.WhenAll(company);
        Assert.Equal(alone.Rollouts.Select(r => r.CompletionIds), together.Rollouts.Select(r => r.CompletionIds));
        Assert.True(alone.Rollouts.Select(r => r.CompletionText).Distinct().Count() > 1, "three samples at temperature 1 should differ");
    }

    [Fact]
    public async Task Streamed_chunks_leave_while_the_request_is_still_decoding()
    {
        using var dir = new TempDir();
        ServingFixture.WriteCheckpoint(dir.File("model"), seed: 5);
        // After the request's third token the torch thread waits (up to 30 s) until the client has read a chunk (with
        // logprobs every token sends one, even a special token that adds no text).
        // A server that sends the stream only when the request is done never lets it go on, and the wait times out.
        using var firstChunk = new SemaphoreSlim(0);
        bool? released = null;
        using var host = PolicyHost.Load(dir.File("model"), new PolicyHostOptions
        {
            ModelId = ServingFixture.ModelId,
            OnStep = s => { if (released is null && s.Tokens >= 3) released = firstChunk.Wait(TimeSpan.FromSeconds(30)); },
        });
        await using var server = await OpenAiServer.StartAsync(host, new ServerOptions { Port = 0 });
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        const int maxTokens = 150;
        var body = new JsonObject { ["model"] = ServingFixture.ModelId, ["prompt"] = "a", ["max_tokens"] = maxTokens, ["temperature"] = 0, ["ignore_eos"] = true, ["stream"] = true, ["logprobs"] = 0 };
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        long? tokensAtFirstChunk = null;
        var text = new StringBuilder();
        string? finish = null;
        bool sawDone = false;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            if (line == "data: [DONE]") { sawDone = true; break; }
            var choice = JsonNode.Parse(line["data: ".Length..])!["choices"]![0]!;
            var piece = choice["text"]!.GetValue<string>();
            if (tokensAtFirstChunk is null)
            {
                tokensAtFirstChunk = host.Stats.Tokens;
                firstChunk.Release();
            }
            text.Append(piece);
            finish ??= choice["finish_reason"]?.GetValue<string>();
        }
        Assert.True(sawDone);
        Assert.True(released, "the torch thread waited for the first chunk in vain: nothing was streamed before the end");
        Assert.NotNull(tokensAtFirstChunk);
        Assert.True(tokensAtFirstChunk < maxTokens, $"the first chunk arrived after {tokensAtFirstChunk} of {maxTokens} tokens");
        Assert.Equal("length", finish);

        var whole = JsonNode.Parse(await (await http.PostAsync("v1/completions", new StringContent(
            new JsonObject { ["model"] = ServingFixture.ModelId, ["prompt"] = "a", ["max_tokens"] = maxTokens, ["temperature"] = 0, ["ignore_eos"] = true }.ToJsonString(),
            Encoding.UTF8, "application/json"))).Content.ReadAsStringAsync())!;
        Assert.Equal(whole["choices"]![0]!["text"]!.GetValue<string>(), text.ToString());
    }

    [Fact]
    public async Task A_cancelled_request_frees_its_slot_at_the_next_step()
    {
        using var dir = new TempDir();
        ServingFixture.WriteCheckpoint(dir.File("model"), seed: 5);
        using var cancel = new CancellationTokenSource();
        // One slot. After the long request's 5th token its caller cancels (on the torch thread, so the step is known).
        using var host = PolicyHost.Load(dir.File("model"), new PolicyHostOptions
        {
            MaxBatch = 1,
            OnStep = s => { if (s.Tokens == 5) cancel.Cancel(); },
        });
        var greedy = new SamplingOptions { Temperature = 0, StopAtEos = false };
        Assert.True(host.TrySubmit(new GenerationJob([Ids("a")], greedy with { MaxNewTokens = 150 }), out var longOne, null, cancel.Token));
        Assert.True(host.TrySubmit(new GenerationJob([Ids("b")], greedy with { MaxNewTokens = 7 }), out var waiting));
        var served = await waiting.WaitAsync(TimeSpan.FromMinutes(1));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => longOne);
        Assert.True(longOne.IsCanceled);
        Assert.Equal(7, served.Rollouts.Single().CompletionIds.Length);
        Assert.Equal(5 + 7, host.Stats.Tokens);   // the cancelled request decoded no token after its caller left
        // A request cancelled while it waits never starts.
        using var early = new CancellationTokenSource();
        early.Cancel();
        Assert.True(host.TrySubmit(new GenerationJob([Ids("c")], greedy with { MaxNewTokens = 4 }), out var never, null, early.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => never.WaitAsync(TimeSpan.FromMinutes(1)));
        Assert.Equal(5 + 7, host.Stats.Tokens);
    }

    [Fact]
    public async Task Chat_requests_are_rendered_with_the_checkpoint_s_chat_template()
    {
        using var dir = new TempDir();
        const string template = "{% for m in messages %}{% if m.content == 'boom' %}{{ raise_exception('no booms here') }}{% endif %}" +
                                "[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}";
        var tok = HfTokenizer.FromJson(Sharpen.Tests.Tokenizers.Gpt2TokenizerJson.Gpt2(),
            new JsonObject { ["eos_token"] = "<|endoftext|>", ["chat_template"] = template }.ToJsonString());
        using (var model = new Sharpen.Models.CausalLM(ServingFixture.Config() with { VocabSize = tok.VocabSize, EosTokenIds = [tok.EosTokenId!.Value], PadTokenId = null, BosTokenId = null }, seed: 2))
            HfCheckpoint.Save(dir.File("model"), model, tok);
        using var host = PolicyHost.Load(dir.File("model"), new PolicyHostOptions { ModelId = ServingFixture.ModelId });
        await using var server = await OpenAiServer.StartAsync(host, new ServerOptions { Port = 0 });
        var chat = new OpenAI.Chat.ChatClient(ServingFixture.ModelId, new System.ClientModel.ApiKeyCredential("x"),
            new OpenAI.OpenAIClientOptions { Endpoint = new Uri(server.BaseAddress, "v1") });
        var reply = (await chat.CompleteChatAsync([new OpenAI.Chat.SystemChatMessage("Be brief."), new OpenAI.Chat.UserChatMessage("Hi there")],
            new OpenAI.Chat.ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 })).Value;

        var prompt = tok.Encode("[system] Be brief.\n[user] Hi there\n[assistant] ");   // the template rendered by hand
        Assert.Equal(prompt.Count, reply.Usage.InputTokenCount);
        var expected = Alone(dir.File("model"), prompt, new SamplingOptions { Temperature = 0, MaxNewTokens = 8 });
        Assert.Equal(expected.CompletionText, reply.Content[0].Text);
        // The in-process IChatClient renders the same way.
        var local = await new PolicyChatClient(host).GetResponseAsync(
            [new(Microsoft.Extensions.AI.ChatRole.System, "Be brief."), new(Microsoft.Extensions.AI.ChatRole.User, "Hi there")],
            new Microsoft.Extensions.AI.ChatOptions { Temperature = 0, MaxOutputTokens = 8 });
        Assert.Equal(expected.CompletionText, local.Text);
        Assert.Equal(prompt.Count, (int)local.Usage!.InputTokenCount!);
        // A conversation the template rejects (raise_exception) is the client's error: 400 naming messages, not a 500.
        var e = await Assert.ThrowsAsync<System.ClientModel.ClientResultException>(() => chat.CompleteChatAsync([new OpenAI.Chat.UserChatMessage("boom")]));
        Assert.Equal(400, e.Status);
        var error = JsonNode.Parse(e.GetRawResponse()!.Content.ToString())!["error"]!;
        Assert.Equal("messages", error["param"]!.GetValue<string>());
        Assert.Contains("no booms here", error["message"]!.GetValue<string>());
    }

    [Fact]
    public void Live_text_holds_back_a_possible_stop_string_and_adds_up_to_the_visible_text()
    {
        var tok = ServingFixture.Tok;
        var ids = tok.Encode("abXYcd", addSpecialTokens: false);
        var live = new LiveText(tok, ["XYZ", "cd"]);
        var pieces = ids.Select((id, t) => live.Add(id, t == ids.Count - 1 ? StopReason.StopString : null)).ToList();
        // "X" and "XY" may start "XYZ": held until "c" shows they do not; "c" may start "cd": held, and "cd" is the stop.
        Assert.Equal(["a", "b", "", "", "XY", ""], pieces);
        Assert.Equal("abXY", string.Concat(pieces));
    }
}
