using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Tests.Models;

public class LoraTests
{
    static CausalLM Base(long seed = 1) => new(CausalLMTests.Tiny(), seed);   // hidden 16, MLP 24, 2 layers, 4 heads, 2 KV heads of 4

    static Tensor Ids() => tensor(new long[] { 1, 5, 7, 3, 9, 4, 11, 2, 6, 8 }).view(2, 5);

    static float[] Logits(CausalLM m)
    {
        using var _ = no_grad();
        return m.Forward(Ids()).Logits.contiguous().data<float>().ToArray();
    }

    static void Close(float[] a, float[] b, double tol)
    {
        Assert.Equal(a.Length, b.Length);
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= tol, $"[{i}]: {a[i]} vs {b[i]}");
    }

    /// <summary>Gives every B random values, so the adapters change the model.</summary>
    static void Perturb(CausalLM m, long seed)
    {
        using var _ = no_grad();
        using var gen = new Generator((ulong)seed);
        foreach (var (name, p) in m.named_parameters().Where(p => p.name.EndsWith("lora_B.weight"))) p.normal_(0, 0.3, gen);
    }

    [Fact]
    public void Adapters_start_as_a_no_op_and_only_they_train()
    {
        using var m = Base();
        var before = Logits(m);
        m.AddLora(new LoraOptions { R = 2, Alpha = 4 }, seed: 3);
        Assert.Equal(before, Logits(m));   // B = 0: exactly the base model's function
        // r·(in + out) per projection: q 2·(16+16), k and v 2·(16+8), o 2·(16+16), gate and up 2·(16+24), down 2·(24+16); 2 layers.
        Assert.Equal(2 * (64 + 48 + 48 + 64 + 80 + 80 + 80), m.TrainableParameters().Sum(p => p.numel()));
        Assert.All(m.named_parameters().Where(p => !p.name.Contains(".lora_")), p => Assert.False(p.parameter.requires_grad, p.name));

        using var qv = Base();
        qv.AddLora(new LoraOptions { R = 2, TargetModules = ["q_proj", "v_proj"] }, seed: 3);
        Assert.Equal(2 * (64 + 48), qv.TrainableParameters().Sum(p => p.numel()));
        Assert.Throws<InvalidOperationException>(() => qv.AddLora(new LoraOptions(), seed: 1));
    }

    [Fact]
    public void The_merged_weight_is_w_plus_alpha_over_r_times_b_a()
    {
        using var m = Base();
        var w = m.Weights().Single(x => x.Name == "model.layers.1.mlp.down_proj.weight").Tensor.detach().clone();   // (16, 24)
        m.AddLora(new LoraOptions { R = 2, Alpha = 6 }, seed: 3);
        Perturb(m, 9);
        var p = m.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        var a = p["model.layers.1.mlp.down_proj.lora_A.weight"].detach();   // (2, 24)
        var b = p["model.layers.1.mlp.down_proj.lora_B.weight"].detach();   // (16, 2)
        var merged = m.Weights().Single(x => x.Name == "model.layers.1.mlp.down_proj.weight").Tensor;
        Assert.Equal([16L, 24L], merged.shape);
        foreach (var (i, j) in new[] { (0, 0), (3, 17), (15, 23), (8, 5) })
        {
            double expect = w[i, j].item<float>() + 6.0 / 2 * (b[i, 0].item<float>() * a[0, j].item<float>() + b[i, 1].item<float>() * a[1, j].item<float>());
            Assert.Equal(expect, merged[i, j].item<float>(), 5);
        }
        // Weights() leaves the adapters out: a plain model with those weights computes what the adapted one does.
        Assert.DoesNotContain(m.Weights(), x => x.Name.Contains("lora"));
        using var plain = m.Copy(trainable: false);
        Assert.Null(plain.Lora);
        Close(Logits(m), Logits(plain), 1e-4);
        Assert.NotEqual(Logits(Base()), Logits(m));
    }

    [Fact]
    public void A_checkpoint_holds_the_merged_model_and_a_peft_adapter()
    {
        using var dir = new TempDir();
        using var m = Base();
        m.AddLora(new LoraOptions { R = 2, Alpha = 4, TargetModules = ["q_proj", "down_proj"] }, seed: 3);
        Perturb(m, 5);
        var tok = CharTokenizer.Create("abcdefgh");
        HfCheckpoint.Save(dir.Path, m, tok);

        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "adapter", "adapter_config.json")))!;
        Assert.Equal(("LORA", 2, 4.0), (cfg["peft_type"]!.GetValue<string>(), cfg["r"]!.GetValue<int>(), cfg["lora_alpha"]!.GetValue<double>()));
        Assert.Equal(["q_proj", "down_proj"], cfg["target_modules"]!.AsArray().Select(x => x!.GetValue<string>()));
        var adapter = Safetensors.Load(Path.Combine(dir.Path, "adapter", "adapter_model.safetensors"));
        Assert.Equal(8, adapter.Count);   // A and B of 2 projections in 2 layers
        Assert.Equal([2L, 16L], adapter["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"].shape);
        Assert.Equal([16L, 2L], adapter["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"].shape);
        Assert.Equal([2L, 24L], adapter["base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"].shape);

        // The folder loads as a plain model; the base plus the adapter folder gives the same function.
        var loaded = HfCheckpoint.Load(dir.Path);
        using (loaded.Model)
        {
            Assert.Null(loaded.Model.Lora);
            Close(Logits(m), Logits(loaded.Model), 1e-4);
            // Adapters trained on a loaded model name the folder it came from as their base.
            loaded.Model.AddLora(new LoraOptions { R = 2 }, seed: 1);
            HfCheckpoint.SaveAdapter(Path.Combine(dir.Path, "second"), loaded.Model);
            var second = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "second", "adapter_config.json")))!;
            Assert.Equal(Path.GetFullPath(dir.Path), second["base_model_name_or_path"]!.GetValue<string>());
        }
        Assert.Null(cfg["base_model_name_or_path"]);   // a model made in memory has no base folder to name
        using var rebuilt = Base();
        HfCheckpoint.LoadAdapter(Path.Combine(dir.Path, "adapter"), rebuilt);
        Assert.Equal(2, rebuilt.Lora!.R);
        Close(Logits(m), Logits(rebuilt), 1e-5);

        using var other = Base();
        other.AddLora(new LoraOptions { R = 4 }, seed: 1);
        Assert.Contains("differ from the model's", Assert.Throws<CheckpointException>(() => HfCheckpoint.LoadAdapter(Path.Combine(dir.Path, "adapter"), other)).Message);
        Assert.Contains("adapter_config.json", Assert.Throws<CheckpointException>(() => HfCheckpoint.LoadAdapter(dir.Path, Base())).Message);
        var partial = adapter.Where(kv => !kv.Key.Contains("layers.1.")).ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Contains("adapter weights do not match the LoRA options; missing: base_model.model.model.layers.1.",
            Assert.Throws<ModelConfigException>(() => rebuilt.LoadAdapterWeights(partial, "a.safetensors")).Message);
    }

    [Theory]
    [InlineData(0, 16, 0.0, "q_proj", "lora.r must be positive")]
    [InlineData(8, -1, 0.0, "q_proj", "lora.alpha must be a positive number")]
    [InlineData(8, 16, 1.0, "q_proj", "lora.dropout must be in [0, 1)")]
    [InlineData(8, 16, 0.0, "lm_head", "unknown projection 'lm_head'; known: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj")]
    public void Options_out_of_range_name_the_key(int r, double alpha, double dropout, string module, string expected)
    {
        var o = new LoraOptions { R = r, Alpha = alpha, Dropout = dropout, TargetModules = [module] };
        Assert.Contains(expected, Assert.Throws<ArgumentException>(() => o.Validate()).Message);
    }

    [Fact]
    public void Dropout_acts_only_in_training_mode()
    {
        using var m = Base();
        m.AddLora(new LoraOptions { R = 2, Dropout = 0.5 }, seed: 3);
        Perturb(m, 7);
        m.eval();
        var a = Logits(m);
        Assert.Equal(a, Logits(m));
        m.train();
        Assert.NotEqual(a, Logits(m));
    }
}
