using System.ClientModel;
using OpenAI;
using Sharpen.Checkpoints;
using Sharpen.Models;
using Sharpen.Serving;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Serving;

/// <summary>
/// A tiny random checkpoint (character tokenizer over printable ASCII and newline, 2 layers) in a temp folder, served by
/// <see cref="OpenAiServer"/> on a free loopback port. Shared by a test class; requests are independent.
/// </summary>
public sealed class ServingFixture : IAsyncLifetime
{
    public const string ModelId = "tiny";
    public const long MaxRequestBytes = 64 << 10;
    public static readonly CharTokenizer Tok = CharTokenizer.Create(
        new string(Enumerable.Range(32, 95).Select(c => (char)c).ToArray()) + "\n");

    readonly TempDir _dir = new();
    public string CheckpointDir => _dir.File("model");
    public PolicyHost Host { get; private set; } = null!;
    public OpenAiServer Server { get; private set; } = null!;
    public Uri V1 => new(Server.BaseAddress, "v1");

    public static ModelConfig Config(int context = 192) => new()
    {
        VocabSize = Tok.VocabSize, HiddenSize = 32, IntermediateSize = 48, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        MaxPositionEmbeddings = context, EosTokenIds = [CharTokenizer.EosId], PadTokenId = CharTokenizer.PadId, BosTokenId = CharTokenizer.BosId,
        InitializerRange = 0.3,
    };

    /// <summary>Writes a random checkpoint with the given seed into <paramref name="dir"/>.</summary>
    public static void WriteCheckpoint(string dir, long seed, int context = 192)
    {
        using var model = new CausalLM(Config(context), seed);
        HfCheckpoint.Save(dir, model, Tok);
    }

    public async Task InitializeAsync()
    {
        WriteCheckpoint(CheckpointDir, seed: 5);
        Host = PolicyHost.Load(CheckpointDir, new PolicyHostOptions { ModelId = ModelId, MaxBatch = 16, MaxQueue = 64 });
        Server = await OpenAiServer.StartAsync(Host, new ServerOptions { Port = 0, MaxRequestBytes = MaxRequestBytes });
    }

    public OpenAIClient Client(string key = "unused") => new(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = V1 });

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        Host.Dispose();
        _dir.Dispose();
    }
}
