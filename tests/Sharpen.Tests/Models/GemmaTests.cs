using Sharpen.Checkpoints;
using Sharpen.Models;
using static Sharpen.Tests.Models.ModelFamilyTests;
using static TorchSharp.torch;

namespace Sharpen.Tests.Models;

/// <summary>
/// Gemma, Gemma 2 and Gemma 3 (text): published configs parse and count their published parameters; tiny random checkpoints
/// in the Hugging Face layout run the same function as <see cref="ReferenceGemma"/> (written separately from Transformers'
/// formulas), round-trip through safetensors, and decode on the fast path exactly as on the reference path.
/// </summary>
public class GemmaTests
{
    // google/gemma-2-2b's config.json as published (transformers 4.42).
    const string Gemma2_2B = """
        {"architectures": ["Gemma2ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "attn_logit_softcapping": 50.0,
         "bos_token_id": 2, "cache_implementation": "hybrid", "eos_token_id": 1, "final_logit_softcapping": 30.0, "head_dim": 256,
         "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304, "initializer_range": 0.02,
         "intermediate_size": 9216, "max_position_embeddings": 8192, "model_type": "gemma2", "num_attention_heads": 8,
         "num_hidden_layers": 26, "num_key_value_heads": 4, "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06,
         "rope_theta": 10000.0, "sliding_window": 4096, "torch_dtype": "float32", "transformers_version": "4.42.4", "use_cache": true,
         "vocab_size": 256000}
        """;

    // google/gemma-3-1b-pt's config.json as published (transformers 4.50).
    const string Gemma3_1B = """
        {"architectures": ["Gemma3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "attn_logit_softcapping": null,
         "bos_token_id": 2, "cache_implementation": "hybrid", "eos_token_id": 1, "final_logit_softcapping": null, "head_dim": 256,
         "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 1152, "initializer_range": 0.02, "intermediate_size": 6912,
         "max_position_embeddings": 32768, "model_type": "gemma3_text", "num_attention_heads": 4, "num_hidden_layers": 26,
         "num_key_value_heads": 1, "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000,
         "rope_scaling": null, "rope_theta": 1000000, "sliding_window": 512, "sliding_window_pattern": 6, "torch_dtype": "bfloat16",
         "transformers_version": "4.50.0.dev0", "use_cache": true, "vocab_size": 262144}
        """;

    [Fact]
    public void Gemma2_config_reads_softcaps_and_alternating_windows_and_counts_the_published_parameters()
    {
        var c = ModelConfig.Parse(Gemma2_2B);
        Assert.Equal("gemma2", c.ModelType);
        Assert.True(c.TieWordEmbeddings);                   // Gemma's default when the key is absent
        Assert.Equal(50.0, c.AttnLogitSoftcapping);
        Assert.Equal(30.0, c.FinalLogitSoftcapping);
        Assert.Equal(1 / 16.0, c.AttentionScale, 12);        // 256^(-1/2)
        Assert.Equal("gelu_pytorch_tanh", c.HiddenActivation);
        Assert.Equal([true, false, true, false], Enumerable.Range(0, 4).Select(c.IsSlidingLayer));   // even layers slide
        // By hand: tied 256000·2304 embedding; per layer q 2304·2048, k and v 2304·1024, o 2048·2304, MLP 3·2304·9216 and four
        // norms 4·2304; 26 layers and the final norm: 2,614,341,888, Gemma 2 2B's published count.
        long layer = 2304L * 2048 + 2 * 2304L * 1024 + 2048L * 2304 + 3 * 2304L * 9216 + 4 * 2304;
        Assert.Equal(256000L * 2304 + 26 * layer + 2304, c.ParameterCount());
        Assert.Equal(2_614_341_888L, c.ParameterCount());
        var again = ModelConfig.Parse(c.ToJson());
        Assert.Equal((c.AttnLogitSoftcapping, c.FinalLogitSoftcapping, c.QueryPreAttnScalar, c.SlidingWindow), (again.AttnLogitSoftcapping, again.FinalLogitSoftcapping, again.QueryPreAttnScalar, again.SlidingWindow));
        Assert.Contains("Gemma2ForCausalLM", c.ToJson());
    }

    [Fact]
    public void Gemma3_config_reads_the_window_pattern_and_local_rope_base_and_counts_the_published_parameters()
    {
        var c = ModelConfig.Parse(Gemma3_1B);
        Assert.True(c.QkNorm && c.SandwichNorms && c.LocalRope && c.TieWordEmbeddings);
        Assert.Null(c.AttnLogitSoftcapping);
        Assert.Equal(10000.0, c.RopeLocalBaseFreq);
        Assert.Equal(1e6, c.RopeTheta);
        // Layers 5, 11, 17, 23 are global, the rest slide.
        Assert.Equal(Enumerable.Range(0, 26).Where(i => (i + 1) % 6 != 0), Enumerable.Range(0, 26).Where(c.IsSlidingLayer));
        // By hand: 262144·1152 tied embedding; per layer q 1152·1024, k and v 1152·256, o 1024·1152, MLP 3·1152·6912, four norms
        // 4·1152 and q/k norms 2·256; 26 layers, final norm: 999,885,952, Gemma 3 1B's published count.
        long layer = 1152L * 1024 + 2 * 1152L * 256 + 1024L * 1152 + 3 * 1152L * 6912 + 4 * 1152 + 2 * 256;
        Assert.Equal(262144L * 1152 + 26 * layer + 1152, c.ParameterCount());
        Assert.Equal(999_885_952L, c.ParameterCount());
        var again = ModelConfig.Parse(c.ToJson());
        Assert.Equal(Enumerable.Range(0, 26).Select(c.IsSlidingLayer), Enumerable.Range(0, 26).Select(again.IsSlidingLayer));
        Assert.Equal(10000.0, again.RopeLocalBaseFreq);
    }

    const string SmallGemma3 = """{"model_type":"gemma3_text","vocab_size":16,"hidden_size":32,"intermediate_size":24,"num_hidden_layers":4,"num_attention_heads":2,"head_dim":16,"sliding_window":8,""";

    [Fact]
    public void Gemma3_transformers5_config_takes_rope_per_layer_type_and_bad_gemma_keys_are_errors()
    {
        var v5 = ModelConfig.Parse(SmallGemma3 + """
            "layer_types":["sliding_attention","full_attention","sliding_attention","full_attention"],
            "rope_parameters":{"full_attention":{"rope_type":"linear","factor":8.0,"rope_theta":1000000.0},"sliding_attention":{"rope_type":"default","rope_theta":10000.0}}}
            """);
        Assert.Equal(1e6, v5.RopeTheta);
        Assert.Equal(("linear", 8.0), (v5.RopeScaling!.Type, v5.RopeScaling.Factor));
        Assert.Equal(10000.0, v5.RopeLocalBaseFreq);
        Assert.Equal([true, false, true, false], Enumerable.Range(0, 4).Select(v5.IsSlidingLayer));

        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(SmallGemma3 + "\"hidden_activation\":\"gelu\"}"));
        Assert.Contains("'hidden_activation' is 'gelu'", e.Message);
        e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(SmallGemma3.Replace("\"sliding_window\":8,", "") + "\"rms_norm_eps\":1e-6}"));
        Assert.Contains("'sliding_window' is missing", e.Message);
        e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(SmallGemma3 + "\"use_bidirectional_attention\":true}"));
        Assert.Contains("use_bidirectional_attention", e.Message);
        e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse("""{"model_type":"llama","vocab_size":16,"hidden_size":32,"intermediate_size":24,"num_hidden_layers":2,"num_attention_heads":2,"final_logit_softcapping":30.0}"""));
        Assert.Contains("'final_logit_softcapping' is a Gemma key", e.Message);
        e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(SmallGemma3 + """ "rope_parameters":{"full_attention":{"rope_type":"default"},"sliding_attention":{"rope_type":"linear","factor":2.0}}}"""));
        Assert.Contains("rope_parameters.sliding_attention", e.Message);
        // Gemma 1 checkpoints say hidden_act "gelu"; Transformers runs the tanh approximation for them.
        var g1 = ModelConfig.Parse("""{"model_type":"gemma","vocab_size":16,"hidden_size":32,"intermediate_size":24,"num_hidden_layers":2,"num_attention_heads":2,"head_dim":16,"hidden_act":"gelu"}""");
        Assert.Equal("gelu_pytorch_tanh", g1.HiddenActivation);
        Assert.False(g1.SandwichNorms || g1.QkNorm || g1.HasSlidingLayers);
    }

    // Random weights with Gemma's norm weights around 0 (factors 1 + w in [0.5, 1.5]).
    static CausalLM Random(ModelConfig cfg, long seed)
    {
        var model = new CausalLM(cfg, seed: seed);
        using var _ = no_grad();
        using var gen = new Generator((ulong)seed + 1000);
        foreach (var (name, p) in model.named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) p.uniform_(-0.5, 0.5, gen);
            else p.normal_(0.0, 0.3, gen);
        }
        return model;
    }

    static ModelConfig TinyGemma2() => Small("gemma2") with
    {
        NumHiddenLayers = 3, NumAttentionHeads = 4, NumKeyValueHeads = 2, HeadDimOverride = 16, QueryPreAttnScalar = 24,
        AttnLogitSoftcapping = 2.0, FinalLogitSoftcapping = 3.0, SlidingWindow = 3, TieWordEmbeddings = true, HiddenActivation = "gelu_pytorch_tanh",
    };

    static ModelConfig TinyGemma3() => Small("gemma3_text") with
    {
        NumHiddenLayers = 3, NumAttentionHeads = 4, NumKeyValueHeads = 1, HeadDimOverride = 16, QueryPreAttnScalar = 20,
        SlidingWindow = 4, SlidingWindowPattern = 3, RopeTheta = 1000, RopeLocalBaseFreq = 10, RopeScaling = new RopeScaling("linear", 2.0),
        TieWordEmbeddings = true, HiddenActivation = "gelu_pytorch_tanh",
    };

    [Fact]
    public void Gemma2_logits_match_the_reference_with_softcaps_sandwich_norms_and_alternating_windows()
    {
        var cfg = TinyGemma2();
        using var model = Random(cfg, 31);
        var names = model.Weights().Select(w => w.Name).ToHashSet();
        foreach (var n in new[] { "pre_feedforward_layernorm", "post_feedforward_layernorm", "post_attention_layernorm", "input_layernorm" })
            Assert.Contains($"model.layers.2.{n}.weight", names);
        Assert.DoesNotContain("lm_head.weight", names);
        Assert.Equal(cfg.ParameterCount(), model.ParameterCount());
        int[] ids = [1, 5, 7, 3, 12, 4, 4, 9, 10, 2];
        var w = Weights(model);
        var expected = ReferenceGemma.Logits(cfg, w, ids);
        AssertMatchesReference(model, ids, expected);
        Assert.True(expected.All(r => r.All(z => Math.Abs(z) < 3.0)));                       // final soft-cap bounds the logits
        Assert.True(MaxDiff(expected, ReferenceGemma.Logits(cfg, w, ids, softcaps: false)) > 0.05);   // and the caps matter here
    }

    [Fact]
    public void Gemma3_logits_match_the_reference_with_qk_norms_and_a_local_rope_base()
    {
        var cfg = TinyGemma3();
        using var model = Random(cfg, 33);
        var names = model.Weights().Select(w => w.Name).ToHashSet();
        Assert.Contains("model.layers.0.self_attn.q_norm.weight", names);
        Assert.Contains("model.layers.2.pre_feedforward_layernorm.weight", names);
        int[] ids = [1, 5, 7, 3, 12, 4, 4, 9, 10, 2];
        var w = Weights(model);
        var expected = ReferenceGemma.Logits(cfg, w, ids);
        AssertMatchesReference(model, ids, expected);
        // The local base matters: with the global one on the sliding layers the reference computes something else.
        Assert.True(MaxDiff(expected, ReferenceGemma.Logits(cfg, w, ids, localTheta: 1000)) > 0.05);
    }

    [Fact]
    public void Gemma1_logits_match_the_reference()
    {
        var cfg = Small("gemma") with { HeadDimOverride = 16, NumAttentionHeads = 2, NumKeyValueHeads = 1, TieWordEmbeddings = true, HiddenActivation = "gelu_pytorch_tanh" };
        using var model = Random(cfg, 35);
        Assert.DoesNotContain("model.layers.0.pre_feedforward_layernorm.weight", model.Weights().Select(w => w.Name));
        int[] ids = [1, 5, 7, 3, 12, 4, 4, 9];
        AssertMatchesReference(model, ids, ReferenceGemma.Logits(cfg, Weights(model), ids));
    }

    [Theory]
    [InlineData("gemma2")]
    [InlineData("gemma3_text")]
    public void Gemma_checkpoint_round_trips_in_the_hugging_face_layout_and_decodes_fast_like_the_reference(string type)
    {
        using var dir = new TempDir();
        using var model = Random(type == "gemma2" ? TinyGemma2() : TinyGemma3(), 37);
        HfCheckpoint.Save(dir.Path, model);
        Assert.Contains($"\"model_type\": \"{type}\"", File.ReadAllText(dir.File("config.json")));
        using var loaded = HfCheckpoint.Load(dir.Path).Model;
        int[] ids = [3, 1, 4, 1, 5, 9, 2, 6];
        AssertMatchesReference(loaded, ids, ReferenceGemma.Logits(loaded.Config, Weights(model), ids));
        FastEqualsReferenceDecode(loaded);
    }

    [Fact]
    public void Lora_on_gemma2_trains_through_the_soft_caps_and_decodes_fast_like_the_reference_path()
    {
        using var model = Random(TinyGemma2(), 39);
        model.AddLora(new LoraOptions { R = 2, Alpha = 4 }, seed: 3);
        using (no_grad())
        using (var gen = new Generator(40))
            foreach (var (name, p) in model.named_parameters().Where(p => p.name.Contains("lora_B")))
                p.normal_(0.0, 0.3, gen);                                          // B = 0 at init would hide the adapters
        FastEqualsReferenceDecode(model);                                          // fast path merges the adapters, reference adds them
        using var scope = NewDisposeScope();
        var logits = model.Forward(tensor(new long[] { 1, 5, 7, 3, 12, 4, 4, 9, 10, 2 }).view(1, -1)).Logits;
        logits.log_softmax(-1)[0, .., 3].sum().neg().backward();
        var adapters = model.named_parameters().Where(p => p.name.Contains(".lora_")).ToList();
        Assert.NotEmpty(adapters);
        Assert.All(adapters, p => Assert.True(p.parameter.grad is { } g && g.isfinite().all().item<bool>() && g.abs().sum().item<float>() > 0, p.name));
    }

    [Fact]
    public void A_fresh_gemma_model_has_zero_norm_weights_that_act_as_the_identity_scale()
    {
        using var model = new CausalLM(TinyGemma2(), seed: 1);
        var norms = model.Weights().Where(w => w.Name.EndsWith("norm.weight")).ToList();
        Assert.NotEmpty(norms);
        Assert.All(norms, n => Assert.Equal(0f, n.Tensor.abs().max().item<float>()));
    }
}
