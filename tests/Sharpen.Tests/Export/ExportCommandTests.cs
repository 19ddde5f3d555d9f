using Sharpen.Checkpoints;
using Sharpen.Cli.Commands;
using Sharpen.Models;
using Sharpen.Tests.Cli;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Export;

public class ExportCommandTests
{
    [Fact]
    public void Export_gguf_writes_one_file_that_llama_cpp_runs_like_the_checkpoint()
    {
        using var dir = new TempDir();
        var tok = CharTokenizer.Create("abc123 +=");
        using (var model = LlamaCppOracle.Randomize(new CausalLM(new ModelConfig
        {
            ModelType = "qwen2", VocabSize = tok.VocabSize, HiddenSize = 64, IntermediateSize = 64, NumHiddenLayers = 1,
            NumAttentionHeads = 4, NumKeyValueHeads = 2, MaxPositionEmbeddings = 64, EosTokenIds = [CharTokenizer.EosId],
        }, seed: 1), seed: 2, scale: 0.1))
            HfCheckpoint.Save(dir.File("ckpt"), model, tok);
        var before = Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories).Length;

        var (code, output, err) = CliHarness.Invoke(ExportCommand.Create(), "gguf", "--model", dir.File("ckpt"), "--out", dir.File("m.gguf"), "--dtype", "q8_0");
        Assert.True(code == 0, err);
        Assert.Contains("m.gguf", output);
        Assert.Equal(before + 1, Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories).Length);

        var loaded = HfCheckpoint.Load(dir.File("ckpt"));
        using var oracle = new LlamaCppOracle(dir.File("m.gguf"));
        var prompt = tok.Encode("1+2=3 abc").ToArray();
        var ours = LlamaCppOracle.SharpenLastLogits(loaded.Model, prompt);
        double diff = LlamaCppOracle.MaxAbsDiff(ours, oracle.LastLogits(prompt));
        Assert.True(diff <= LlamaCppOracle.Tolerance(Sharpen.Export.GgufDType.Q8_0, ours), $"max |Δ logit| = {diff}");
        loaded.Model.Dispose();
    }

    [Fact]
    public void Export_gguf_names_a_bad_dtype_or_folder()
    {
        using var dir = new TempDir();
        var (code, _, err) = CliHarness.Invoke(ExportCommand.Create(), "gguf", "--model", dir.Path, "--out", dir.File("m.gguf"), "--dtype", "q4");
        Assert.NotEqual(0, code);
        Assert.Contains("q4", err);
        (code, _, err) = CliHarness.Invoke(ExportCommand.Create(), "gguf", "--model", dir.File("missing"), "--out", dir.File("m.gguf"));
        Assert.Equal(1, code);
        Assert.Contains("checkpoint folder not found", err);
        Assert.False(File.Exists(dir.File("m.gguf")));
    }
}
