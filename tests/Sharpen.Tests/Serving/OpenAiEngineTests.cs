using Sharpen.Checkpoints;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Serving;
using static TorchSharp.torch;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Serving;

/// <summary>The openai rollout engine against `sharpen serve` on loopback, compared with the torch engine on the same weights.</summary>
public sealed class OpenAiEngineTests(ServingFixture fx) : IClassFixture<ServingFixture>
{
    static readonly string[] Prompts = ["ab", "Once upon a time", "x", "hello there"];

    static void AssertSame(IReadOnlyList<Rollout> expected, IReadOnlyList<Rollout> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal((expected[i].PromptIndex, expected[i].SampleIndex), (actual[i].PromptIndex, actual[i].SampleIndex));
            Assert.Equal(expected[i].PromptIds, actual[i].PromptIds);
            Assert.Equal(expected[i].CompletionIds, actual[i].CompletionIds);
            Assert.Equal(expected[i].CompletionText, actual[i].CompletionText);
            Assert.Equal(expected[i].Stop, actual[i].Stop);
            for (int t = 0; t < expected[i].LogProbs.Length; t++) Assert.True(Math.Abs(expected[i].LogProbs[t] - actual[i].LogProbs[t]) < 1e-4);
        }
    }

    [Fact]
    public void Greedy_rollouts_equal_the_torch_engine_s()
    {
        using var engine = new OpenAiEngine(new OpenAiEngineOptions { BaseUrl = fx.V1, Model = ServingFixture.ModelId, PromptsPerRequest = 3 },
            ServingFixture.Tok, [Sharpen.Tokenizers.CharTokenizer.EosId]);
        var loaded = HfCheckpoint.Load(fx.CheckpointDir, requireTokenizer: true);
        using var model = loaded.Model;
        var torchEngine = new RolloutEngine(model, loaded.Tokenizer!);
        var options = new SamplingOptions { Temperature = 0, MaxNewTokens = 20, SamplesPerPrompt = 2 };
        var remote = ((IRolloutEngine)engine).Generate(Prompts, options);
        AssertSame(torchEngine.Generate(Prompts, options), remote);
        Assert.Contains(remote, r => r.CompletionIds.Length > 1);
        // A stop string: the rollout keeps its tokens through the stop, as the torch engine's does.
        var stop = remote.First(r => r.CompletionText.Length >= 4).CompletionText.Substring(1, 2);
        var stopOptions = options with { StopStrings = [stop], SamplesPerPrompt = 1 };
        AssertSame(torchEngine.Generate(Prompts, stopOptions), ((IRolloutEngine)engine).Generate(Prompts, stopOptions));
    }

    [Fact]
    public async Task After_SyncWeights_the_server_samples_the_new_weights()
    {
        using var dir = new TempDir();
        ServingFixture.WriteCheckpoint(dir.File("served"), seed: 5);
        using var host = PolicyHost.Load(dir.File("served"), new PolicyHostOptions { ModelId = "policy" });
        await using var server = await OpenAiServer.StartAsync(host, new ServerOptions { Port = 0 });
        using var engine = new OpenAiEngine(new OpenAiEngineOptions { BaseUrl = new Uri(server.BaseAddress, "v1"), Model = "policy", CheckpointDir = dir.File("sync") },
            ServingFixture.Tok, [Sharpen.Tokenizers.CharTokenizer.EosId]);
        var options = new SamplingOptions { Temperature = 0, MaxNewTokens = 16, StopAtEos = false };

        var loaded = HfCheckpoint.Load(dir.File("served"), requireTokenizer: true);
        using var policy = loaded.Model;
        var before = ((IRolloutEngine)engine).Generate(Prompts, options);
        AssertSame(new RolloutEngine(policy, ServingFixture.Tok).Generate(Prompts, options), before);

        // A "training step": perturb every weight, then sync.
        using (no_grad())
        using (var g = new Generator(3))
            foreach (var (_, w) in policy.Weights()) w.add_(randn(w.shape, generator: g) * 0.3);
        engine.SyncWeights(policy);
        Assert.Equal(1, host.Stats.Reloads);
        Assert.True(File.Exists(Path.Combine(dir.File("sync"), HfCheckpoint.WeightsFile)));
        var after = ((IRolloutEngine)engine).Generate(Prompts, options);
        AssertSame(new RolloutEngine(policy, ServingFixture.Tok).Generate(Prompts, options), after);
        Assert.NotEqual(before.Select(r => r.CompletionText), after.Select(r => r.CompletionText));
    }

    [Fact]
    public void Server_errors_name_the_url_and_the_reason()
    {
        using var engine = new OpenAiEngine(new OpenAiEngineOptions { BaseUrl = fx.V1, Model = "wrong-model" }, ServingFixture.Tok);
        var e = Assert.Throws<HttpRequestException>(() => ((IRolloutEngine)engine).Generate(Prompts, new SamplingOptions { MaxNewTokens = 4 }));
        Assert.Contains("/v1/completions: HTTP 404", e.Message);
        Assert.Contains("wrong-model", e.Message);
        Assert.Throws<InvalidOperationException>(() => engine.SyncWeights(null!));   // no checkpoint_dir configured
    }
}
