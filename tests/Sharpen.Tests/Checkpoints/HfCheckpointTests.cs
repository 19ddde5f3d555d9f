using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Models;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Tests.Checkpoints;

public class HfCheckpointTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("0123456789");

    static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    static Tensor Logits(CausalLM m) => m.Forward(tensor(new long[] { 1, 5, 6, 7, 8 }).view(1, 5)).Logits;

    [Theory]
    [InlineData("llama", false)]
    [InlineData("qwen2", true)]
    public void Save_then_load_gives_bit_identical_weights_and_logits(string type, bool tied)
    {
        using var dir = new TempDir();
        using var model = new CausalLM(CausalLMTests.Tiny(type, tied) with { VocabSize = Tok.VocabSize }, seed: 4);
        using var head = new ScalarHead(16, initStd: 0.5);
        HfCheckpoint.Save(dir.Path, model, Tok, head);
        foreach (var f in new[] { "config.json", "generation_config.json", "model.safetensors", "scalar_head.safetensors", CharTokenizer.FileName })
            Assert.True(File.Exists(dir.File(f)), f);

        var loaded = HfCheckpoint.Load(dir.Path);
        using var again = loaded.Model;
        var before = model.Weights().ToDictionary(w => w.Name, w => w.Tensor);
        foreach (var (name, t) in again.Weights()) Assert.True(Same(t, before[name]), name);
        using var scope = NewDisposeScope();
        Assert.True(Same(Logits(again), Logits(model)));
        Assert.NotNull(loaded.Head);
        Assert.True(Same(loaded.Head!.named_parameters().First(p => p.name == "score.weight").parameter, head.named_parameters().First(p => p.name == "score.weight").parameter));
        Assert.Equal(Tok.Encode("0123"), loaded.Tokenizer!.Encode("0123"));
        Assert.Equal([2], loaded.Generation.EosTokenIds);
    }

    [Fact]
    public void Bf16_checkpoints_store_rounded_weights_and_say_so()
    {
        using var dir = new TempDir();
        using var model = new CausalLM(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize }, seed: 4);
        HfCheckpoint.Save(dir.Path, model, Tok, storeAs: ScalarType.BFloat16);
        Assert.Equal("bfloat16", JsonNode.Parse(File.ReadAllText(dir.File("config.json")))!["torch_dtype"]!.GetValue<string>());
        using var again = HfCheckpoint.Load(dir.Path).Model;
        var before = model.Weights().ToDictionary(w => w.Name, w => w.Tensor);
        foreach (var (name, t) in again.Weights())
        {
            Assert.Equal(ScalarType.Float32, t.dtype);
            Assert.True(Same(t, before[name].to(ScalarType.BFloat16).to(ScalarType.Float32)), name);
        }
    }

    [Fact]
    public void Loads_a_sharded_checkpoint_through_its_index()
    {
        using var dir = new TempDir();
        using var model = new CausalLM(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize }, seed: 8);
        model.Config.Save(dir.File("config.json"));
        var all = model.Weights().ToDictionary(w => w.Name, w => w.Tensor.detach());
        var first = all.Where(kv => kv.Key.Contains("layers.0")).ToDictionary();
        var rest = all.Where(kv => !kv.Key.Contains("layers.0")).ToDictionary();
        Safetensors.Save(dir.File("model-00001-of-00002.safetensors"), first, ScalarType.BFloat16);
        Safetensors.Save(dir.File("model-00002-of-00002.safetensors"), rest);
        var map = new JsonObject();
        foreach (var k in first.Keys) map[k] = "model-00001-of-00002.safetensors";
        foreach (var k in rest.Keys) map[k] = "model-00002-of-00002.safetensors";
        File.WriteAllText(dir.File("model.safetensors.index.json"), new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = map }.ToJsonString());
        using var again = HfCheckpoint.Load(dir.Path).Model;
        foreach (var (name, t) in again.Weights())
            Assert.True(name.Contains("layers.0") ? Same(t, all[name].to(ScalarType.BFloat16).to(ScalarType.Float32)) : Same(t, all[name]), name);
    }

    [Fact]
    public void Mismatched_or_missing_files_are_named_errors()
    {
        using var dir = new TempDir();
        using var model = new CausalLM(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize }, seed: 1);
        HfCheckpoint.Save(dir.Path, model, Tok);

        // A config describing another shape: the shape error names the file and the tensor.
        var cfg = JsonNode.Parse(File.ReadAllText(dir.File("config.json")))!;
        cfg["intermediate_size"] = 32;
        File.WriteAllText(dir.File("config.json"), cfg.ToJsonString());
        var e = Assert.Throws<ModelConfigException>(() => HfCheckpoint.Load(dir.Path));
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("mlp.gate_proj.weight", e.Message);

        // One layer fewer in the config: the extra tensors are listed as unexpected.
        cfg["intermediate_size"] = 24;
        cfg["num_hidden_layers"] = 1;
        File.WriteAllText(dir.File("config.json"), cfg.ToJsonString());
        e = Assert.Throws<ModelConfigException>(() => HfCheckpoint.Load(dir.Path));
        Assert.Contains("unexpected: model.layers.1.", e.Message);

        File.Delete(dir.File("model.safetensors"));
        Assert.Contains("no model.safetensors", Assert.Throws<CheckpointException>(() => HfCheckpoint.Load(dir.Path)).Message);
        File.WriteAllText(dir.File("pytorch_model.bin"), "x");
        Assert.Contains("pytorch_model.bin", Assert.Throws<CheckpointException>(() => HfCheckpoint.Load(dir.Path)).Message);
        File.Delete(dir.File("config.json"));
        Assert.Contains("no config.json", Assert.Throws<CheckpointException>(() => HfCheckpoint.Load(dir.Path)).Message);
    }
}
