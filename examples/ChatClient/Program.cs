// A trained policy inside a .NET AI app, through Microsoft.Extensions.AI's IChatClient, in process (no HTTP), top to bottom.
//
//   dotnet run --project examples/ChatClient -c Release -- --model runs/quickstart/rl/final   # any Sharpen/HF checkpoint folder
//   dotnet run --project examples/ChatClient -c Release -- --tiny                             # a random tiny model (what CI runs)
//
// The app code below only knows IChatClient: swap PolicyChatClient for any other IChatClient (OpenAI, Ollama, …) and it
// runs unchanged; swap it back and it talks to your policy. Requests from many callers share one batched decode.
using Microsoft.Extensions.AI;
using Sharpen.Checkpoints;
using Sharpen.Models;
using Sharpen.Serving;
using Sharpen.Tokenizers;

namespace Sharpen.Examples;

public static class ChatClientExample
{
    public static async Task<int> Main(string[] args)
    {
        string? model = args.SkipWhile(a => a != "--model").Skip(1).FirstOrDefault();
        string output = args.SkipWhile(a => a != "--out").Skip(1).FirstOrDefault() ?? "runs/example-chat-client";
        if (args.Contains("--tiny")) model = WriteTinyModel(Path.Combine(output, "tiny-model"));
        if (model is null) { Console.Error.WriteLine("usage: ChatClient --model DIR | --tiny [--out DIR]"); return 2; }

        // 1. The policy behind IChatClient. The host owns the model and the one thread that runs torch.
        using var host = PolicyHost.Load(model, new PolicyHostOptions { MaxBatch = 16 });
        IChatClient client = new PolicyChatClient(host);
        var meta = client.GetService<ChatClientMetadata>()!;
        Console.WriteLine($"model: {meta.DefaultModelId} (provider {meta.ProviderName})");

        // 2. A conversation with history, as a chat app keeps it.
        List<ChatMessage> history = [new(ChatRole.System, "You are a terse assistant.")];
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 24, StopSequences = ["\n"] };
        foreach (var question in new[] { "What is 2 + 3?", "And times 4?" })
        {
            history.Add(new(ChatRole.User, question));
            var response = await client.GetResponseAsync(history, options);
            history.AddMessages(response);
            Console.WriteLine($"user: {question}");
            Console.WriteLine($"assistant: {response.Text}  [{response.FinishReason}, {response.Usage?.OutputTokenCount} tokens]");
        }

        // 3. Streaming: print tokens as they come.
        Console.Write("assistant (streamed): ");
        await foreach (var update in client.GetStreamingResponseAsync("Say something.", new ChatOptions { Temperature = 0.8f, TopP = 0.95f, Seed = 1, MaxOutputTokens = 16 }))
            Console.Write(update.Text);
        Console.WriteLine();

        // 4. Many callers at once: the host batches them into one decode.
        var questions = Enumerable.Range(1, 8).Select(i => $"Give me the number {i}.").ToList();
        var answers = await Task.WhenAll(questions.Select(q => client.GetResponseAsync(q, new ChatOptions { Temperature = 0, MaxOutputTokens = 12 })));
        for (int i = 0; i < questions.Count; i++) Console.WriteLine($"parallel {i + 1}: {answers[i].Text}");
        Console.WriteLine($"batches run: {host.Stats.Batches} for {host.Stats.Jobs} requests (largest batch {host.Stats.LargestBatch} sequences)");
        return 0;
    }

    // A random 2-layer model with a character tokenizer over printable ASCII: it babbles, but every call path is real.
    static string WriteTinyModel(string dir)
    {
        var tokenizer = CharTokenizer.Create(new string(Enumerable.Range(32, 95).Select(c => (char)c).ToArray()) + "\n");
        using var model = new CausalLM(new ModelConfig
        {
            VocabSize = tokenizer.VocabSize, HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
            MaxPositionEmbeddings = 256, EosTokenIds = [CharTokenizer.EosId], PadTokenId = CharTokenizer.PadId, BosTokenId = CharTokenizer.BosId,
        }, seed: 1);
        HfCheckpoint.Save(dir, model, tokenizer);
        return dir;
    }
}
