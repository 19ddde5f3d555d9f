using System.Diagnostics;
using Sharpen.Checkpoints;
using Sharpen.Generation;

namespace Sharpen.Tests.Serving;

/// <summary>The official `openai` npm client (v6, tests/js/openai-client) against the server; the assertions live in the script.</summary>
public sealed class NodeClientTests(ServingFixture fx) : IClassFixture<ServingFixture>
{
    [Fact]
    public async Task The_openai_npm_client_passes_its_script_against_the_server()
    {
        var dir = RepoPaths.Of("tests", "js", "openai-client");
        Assert.True(Directory.Exists(Path.Combine(dir, "node_modules", "openai")),
            $"{dir}/node_modules/openai is missing: run `npm ci` there (.ci/run does)");
        const string prompt = "Once upon a time";
        var loaded = HfCheckpoint.Load(fx.CheckpointDir, requireTokenizer: true);
        string expected;
        using (loaded.Model)
            expected = new RolloutEngine(loaded.Model, loaded.Tokenizer!).Generate([prompt], new SamplingOptions { Temperature = 0, MaxNewTokens = 16 })[0].CompletionText;

        var start = new ProcessStartInfo("node", "client-test.mjs") { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["SHARPEN_BASE_URL"] = fx.V1.ToString();
        start.Environment["SHARPEN_MODEL"] = ServingFixture.ModelId;
        start.Environment["SHARPEN_PROMPT"] = prompt;
        start.Environment["SHARPEN_EXPECTED_COMPLETION"] = expected;
        Process node;
        try { node = Process.Start(start)!; }
        catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException("node is not on PATH; Node 20+ is needed for this test (.ci/run checks)", e); }
        using (node)
        {
            var stdout = node.StandardOutput.ReadToEndAsync();
            var stderr = node.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            await node.WaitForExitAsync(timeout.Token);
            var (output, errors) = (await stdout, await stderr);
            Assert.True(node.ExitCode == 0, $"node exited {node.ExitCode}:\n{output}\n{errors}");
            Assert.Contains("openai-node client test passed", output);
        }
    }
}
