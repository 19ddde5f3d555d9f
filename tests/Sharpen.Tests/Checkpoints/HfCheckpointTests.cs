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

    // A Qwen2.5-shaped tiny model: q/k/v biases, tied embeddings, grouped-query attention, rope_theta 10⁶.
    static ModelConfig TinyQwen25 => new()
    {
        ModelType = "qwen2", VocabSize = 300, HiddenSize = 32, IntermediateSize = 48, NumHiddenLayers = 3, NumAttentionHeads = 4,
        NumKeyValueHeads = 2, TieWordEmbeddings = true, MaxPositionEmbeddings = 64, RmsNormEps = 1e-6, RopeTheta = 1e6,
        EosTokenIds = [2], BosTokenId = 1, InitializerRange = 0.2,
    };

    [Fact]
    public void Sharded_bf16_save_writes_hugging_faces_index_and_loads_to_the_f32_forward_within_bf16_rounding()
    {
        using var dir = new TempDir();
        using var model = new CausalLM(TinyQwen25, seed: 11);
        using (no_grad())                                          // non-zero biases, so they are stored and compared too
            foreach (var (name, p) in model.named_parameters())
                if (name.EndsWith(".bias", StringComparison.Ordinal)) p.copy_(linspace(-0.3, 0.3, p.shape[0]));
        const long maxShard = 24_000;                               // bytes: the 300 × 32 BF16 embedding (19,200 B) fits, two layers do not
        HfCheckpoint.Save(dir.Path, model, storeAs: ScalarType.BFloat16, maxShardBytes: maxShard);

        Assert.False(File.Exists(dir.File("model.safetensors")));
        var index = JsonNode.Parse(File.ReadAllText(dir.File("model.safetensors.index.json")))!;
        var map = index["weight_map"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<string>());
        var names = model.named_parameters().Select(p => p.name).ToList();     // tied: no lm_head.weight
        Assert.Equal(names.Order(StringComparer.Ordinal), map.Keys);            // every weight, in sorted order as transformers writes it
        // Stored bytes: 2 per BF16 value, counted from the parameters' shapes.
        long total = model.named_parameters().Sum(p => p.parameter.numel()) * 2;
        Assert.Equal(total, index["metadata"]!["total_size"]!.GetValue<long>());
        var shardFiles = Directory.GetFiles(dir.Path, "model-*.safetensors").Select(Path.GetFileName).Order().ToList();
        int n = shardFiles.Count;
        Assert.True(n >= 3, $"expected several shards at {maxShard} bytes, got {n}");
        Assert.Equal(Enumerable.Range(1, n).Select(i => $"model-{i:D5}-of-{n:D5}.safetensors"), shardFiles);
        Assert.Equal(shardFiles, map.Values.Distinct().Order());
        foreach (var f in shardFiles)
        {
            var header = Safetensors.ReadHeader(dir.File(f!));
            Assert.All(header.Tensors.Values, t => Assert.Equal("BF16", t.DType));
            var bytes = header.Tensors.Values.Sum(t => t.ByteCount);
            Assert.True(bytes <= maxShard || header.Tensors.Count == 1, $"{f}: {bytes} bytes in {header.Tensors.Count} tensors");
            Assert.Equal(map.Where(kv => kv.Value == f).Select(kv => kv.Key).Order(StringComparer.Ordinal), header.Tensors.Keys.Order(StringComparer.Ordinal));
        }
        // Shards follow the model's own order: a later weight never sits in an earlier shard.
        var shardOf = names.Select(x => shardFiles.IndexOf(map[x])).ToList();
        Assert.Equal(shardOf.Order(), shardOf);

        using var loaded = HfCheckpoint.Load(dir.Path).Model;
        using var scope = NewDisposeScope();
        using var rounded = new CausalLM(TinyQwen25, seed: 0);     // the original's weights rounded to BF16 by hand
        using (no_grad())
        {
            var src = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in rounded.named_parameters()) p.copy_(src[name].to(ScalarType.BFloat16).to(ScalarType.Float32));
        }
        foreach (var (name, t) in loaded.Weights())
            Assert.True(Same(t, rounded.Weights().First(w => w.Name == name).Tensor), name);
        var ids = tensor(new long[] { 1, 17, 250, 3, 99, 42, 7, 299 }).view(1, 8);
        var exact = model.Forward(ids).Logits;
        var got = loaded.Forward(ids).Logits;
        Assert.True(got.allclose(rounded.Forward(ids).Logits, rtol: 0, atol: 1e-5), "the loaded model is not the BF16-rounded original");
        // BF16 keeps 8 significant bits: each stored weight is off by a relative ≤ 2⁻⁹. To first order the relative errors
        // of the factors on the path add up: 38 rounded tensors here (embedding, 3 × (7 matrices, 3 biases, 2 norms), the
        // final norm), so ‖Δ logits‖ / ‖logits‖ ≤ 38 · 2⁻⁹ ≈ 0.074; and it is not zero, since something was rounded.
        var relative = (got - exact).norm().item<float>() / exact.norm().item<float>();
        Assert.True(relative > 0, "BF16 storage must round something");
        Assert.True(relative < 38 * Math.Pow(2, -9), $"‖Δ logits‖ / ‖logits‖ = {relative}");
    }

    [Fact]
    public void Saving_again_replaces_the_other_weight_layout_and_a_small_model_stays_one_file()
    {
        using var dir = new TempDir();
        using var model = new CausalLM(TinyQwen25, seed: 12);
        HfCheckpoint.Save(dir.Path, model, storeAs: ScalarType.BFloat16, maxShardBytes: 24_000);
        Assert.True(File.Exists(dir.File("model.safetensors.index.json")));
        HfCheckpoint.Save(dir.Path, model);                       // unsharded now: the shards and index must go
        Assert.Empty(Directory.GetFiles(dir.Path, "model-*"));
        Assert.False(File.Exists(dir.File("model.safetensors.index.json")));
        using (var again = HfCheckpoint.Load(dir.Path).Model)
            foreach (var (name, t) in again.Weights()) Assert.True(Same(t, model.Weights().First(w => w.Name == name).Tensor), name);
        HfCheckpoint.Save(dir.Path, model, maxShardBytes: 1L << 30);   // everything fits in one shard: one file, no index (as transformers does)
        Assert.True(File.Exists(dir.File("model.safetensors")));
        Assert.False(File.Exists(dir.File("model.safetensors.index.json")));
        Assert.Empty(Directory.GetFiles(dir.Path, "model-*"));
        HfCheckpoint.Save(dir.Path, model, maxShardBytes: 24_000); // sharded again: the single file must go, or it would shadow the shards
        Assert.False(File.Exists(dir.File("model.safetensors")));
        Assert.True(File.Exists(dir.File("model.safetensors.index.json")));
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
