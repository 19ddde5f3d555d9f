using Microsoft.Extensions.AI;
using OpenAI;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Serving;

namespace Sharpen.Tests.Serving;

/// <summary>The policy as an IChatClient in process, and Microsoft.Extensions.AI.OpenAI's IChatClient over HTTP; both against the torch engine.</summary>
public sealed class PolicyChatClientTests(ServingFixture fx) : IClassFixture<ServingFixture>
{
    static readonly Microsoft.Extensions.AI.ChatMessage[] Question =
        [new(ChatRole.System, "Be brief."), new(ChatRole.User, "What is two plus two?")];

    Rollout EngineGreedy(int maxNew)
    {
        var loaded = HfCheckpoint.Load(fx.CheckpointDir, requireTokenizer: true);
        using var model = loaded.Model;
        var prompt = ChatTemplate.RenderPrompt([new("system", "Be brief."), new("user", "What is two plus two?")]);
        return new RolloutEngine(model, loaded.Tokenizer!).Generate([prompt], new SamplingOptions { Temperature = 0, MaxNewTokens = maxNew })[0];
    }

    [Fact]
    public async Task Greedy_response_is_the_engine_s_with_finish_reason_and_usage()
    {
        IChatClient client = new PolicyChatClient(fx.Host);
        var response = await client.GetResponseAsync(Question, new ChatOptions { Temperature = 0, MaxOutputTokens = 20 });
        var expected = EngineGreedy(20);
        Assert.Equal(expected.CompletionText, response.Text);
        Assert.Equal(expected.Stop == StopReason.MaxTokens ? ChatFinishReason.Length : ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal(expected.CompletionIds.Length, response.Usage!.OutputTokenCount);
        Assert.Equal(expected.PromptIds.Length, response.Usage.InputTokenCount);
        Assert.Equal(ServingFixture.ModelId, client.GetService<ChatClientMetadata>()!.DefaultModelId);
    }

    [Fact]
    public async Task Options_map_to_sampling()
    {
        IChatClient client = new PolicyChatClient(fx.Host);
        // MaxOutputTokens: a cut at 3 tokens reports Length.
        var cut = await client.GetResponseAsync(Question, new ChatOptions { Temperature = 0, MaxOutputTokens = 3, AdditionalProperties = null });
        var greedy = EngineGreedy(30);
        Assert.True(greedy.CompletionIds.Length > 3 || greedy.Stop == StopReason.MaxTokens);
        Assert.Equal(ServingFixture.Tok.Decode(greedy.CompletionIds.Take(3)), cut.Text);
        Assert.Equal(ChatFinishReason.Length, cut.FinishReason);
        // TopP so small that only the most likely token survives: sampling at temperature 1 is then greedy.
        var nucleus = await client.GetResponseAsync(Question, new ChatOptions { Temperature = 1, TopP = 1e-6f, MaxOutputTokens = 30, Seed = 1 });
        Assert.Equal(greedy.CompletionText, nucleus.Text);
        // Seed: the same seed gives the same sample; StopSequences cut the text before them.
        var a = await client.GetResponseAsync(Question, new ChatOptions { Temperature = 1, Seed = 42, MaxOutputTokens = 30 });
        var b = await client.GetResponseAsync(Question, new ChatOptions { Temperature = 1, Seed = 42, MaxOutputTokens = 30 });
        Assert.Equal(a.Text, b.Text);
        Assert.True(greedy.CompletionText.Length >= 4, $"need a longer greedy text than '{greedy.CompletionText}'");
        var stop = greedy.CompletionText.Substring(2, 2);
        var stopped = await client.GetResponseAsync(Question, new ChatOptions { Temperature = 0, MaxOutputTokens = 30, StopSequences = [stop] });
        Assert.Equal(greedy.CompletionText[..greedy.CompletionText.IndexOf(stop, StringComparison.Ordinal)], stopped.Text);
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);
    }

    [Fact]
    public async Task Streaming_updates_add_up_to_the_response()
    {
        IChatClient client = new PolicyChatClient(fx.Host);
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 16 };
        var whole = await client.GetResponseAsync(Question, options);
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync(Question, options)) updates.Add(u);
        Assert.Equal(whole.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.True(updates.Count > 2);
        Assert.Equal(whole.FinishReason, updates[^1].FinishReason);
        var streamed = updates.ToChatResponse();
        Assert.Equal(whole.Usage!.OutputTokenCount, streamed.Usage!.OutputTokenCount);
    }

    [Fact]
    public async Task Microsoft_extensions_ai_openai_client_over_http_answers_as_the_in_process_client()
    {
        IChatClient remote = new OpenAIClient(new System.ClientModel.ApiKeyCredential("x"), new OpenAIClientOptions { Endpoint = fx.V1 })
            .GetChatClient(ServingFixture.ModelId).AsIChatClient();
        IChatClient local = new PolicyChatClient(fx.Host);
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 14 };
        var overHttp = await remote.GetResponseAsync(Question, options);
        var inProcess = await local.GetResponseAsync(Question, options);
        Assert.Equal(EngineGreedy(14).CompletionText, overHttp.Text);
        Assert.Equal(inProcess.Text, overHttp.Text);
        Assert.Equal(inProcess.FinishReason, overHttp.FinishReason);
        Assert.Equal(inProcess.Usage!.OutputTokenCount, overHttp.Usage!.OutputTokenCount);
        var text = new System.Text.StringBuilder();
        await foreach (var u in remote.GetStreamingResponseAsync(Question, options)) text.Append(u.Text);
        Assert.Equal(overHttp.Text, text.ToString());
        // Sampled with a seed, over HTTP twice: the same.
        var seeded = new ChatOptions { Temperature = 1, Seed = 9, MaxOutputTokens = 14 };
        Assert.Equal((await remote.GetResponseAsync(Question, seeded)).Text, (await remote.GetResponseAsync(Question, seeded)).Text);
    }
}
