using Sharpen.Checkpoints;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tests.Export;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Tests.Models;

/// <summary>
/// Qwen3 (per-head q/k RMSNorm, explicit head_dim), sliding-window attention (Mistral, Qwen with use_sliding_window,
/// transformers-5 layer_types), and yarn / dynamic-NTK RoPE: configs in the real Hugging Face layout, the forward pass
/// against <see cref="ReferenceLlama"/> (a loop-over-arrays double-precision forward) with the rotary frequencies worked out
/// here from Transformers' formulas, and the decode fast path against the reference decode path.
/// </summary>
public class ModelFamilyTests
{
    // Qwen3-0.6B's config.json as published (transformers 4.51).
    const string Qwen3_06B = """
        {"architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 151643,
         "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024, "initializer_range": 0.02,
         "intermediate_size": 3072, "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
         "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
         "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": true,
         "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false,
         "vocab_size": 151936}
        """;

    // Mistral-7B-v0.1's config.json as published (sliding_window 4096 on every layer), but hidden_size and intermediate_size
    // divided by 4: the real sizes need 27 GiB of float32 weights, more than this machine has, and Parse checks that.
    const string Mistral7B = """
        {"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 1024,
         "initializer_range": 0.02, "intermediate_size": 3584, "max_position_embeddings": 32768, "model_type": "mistral",
         "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
         "sliding_window": 4096, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0",
         "use_cache": true, "vocab_size": 32000}
        """;

    internal static readonly CharTokenizer Tok = CharTokenizer.Create("abcdefghijk ");
    static readonly string[] Prompts = ["abc", "hello", "k", "badge jab"];   // different lengths: left padding

    internal static ModelConfig Small(string type) => CausalLMTests.Tiny(type) with { VocabSize = Tok.VocabSize, HiddenSize = 32, InitializerRange = 0.5 };

    internal static Dictionary<string, double[]> Weights(CausalLM m) =>
        m.Weights().ToDictionary(w => w.Name, w => w.Tensor.detach().to(ScalarType.Float64).contiguous().data<double>().ToArray());

    internal static void AssertMatchesReference(CausalLM model, int[] ids, double[][] expected, double tol = 1e-4)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var got = model.Forward(tensor(ids.Select(i => (long)i).ToArray()).view(1, -1)).Logits.squeeze(0).to(ScalarType.Float64).data<double>().ToArray();
        int v = model.Config.VocabSize;
        for (int t = 0; t < ids.Length; t++)
            for (int j = 0; j < v; j++)
                Assert.True(Math.Abs(expected[t][j] - got[t * v + j]) < tol, $"position {t}, token {j}: expected {expected[t][j]}, got {got[t * v + j]}");
    }

    internal static double MaxDiff(double[][] a, double[][] b) => a.Zip(b).Max(p => p.First.Zip(p.Second).Max(q => Math.Abs(q.First - q.Second)));

    internal static void FastEqualsReferenceDecode(CausalLM model, bool withBudget = true)
    {
        var engine = new RolloutEngine(model, Tok);
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 12, StopAtEos = false, SamplesPerPrompt = 2 };
        var fast = engine.Generate(Prompts, o);
        var reference = engine.Generate(Prompts, o with { FastDecode = false });
        var budget = withBudget ? engine.Generate(Prompts, o with { KvBudget = 40 }) : null;   // H₂O path, budget above the length: no eviction
        for (int i = 0; i < fast.Count; i++)
        {
            Assert.Equal(reference[i].CompletionIds, fast[i].CompletionIds);
            if (budget is not null) Assert.Equal(reference[i].CompletionIds, budget[i].CompletionIds);
            for (int t = 0; t < fast[i].LogProbs.Length; t++)
            {
                Assert.True(Math.Abs(reference[i].LogProbs[t] - fast[i].LogProbs[t]) < 1e-4, $"sequence {i} token {t}: {reference[i].LogProbs[t]} vs {fast[i].LogProbs[t]}");
                if (budget is not null) Assert.True(Math.Abs(reference[i].LogProbs[t] - budget[i].LogProbs[t]) < 1e-4, $"budget: sequence {i} token {t}");
            }
        }
    }

    // ---------------------------------------------------------------- Qwen3

    [Fact]
    public void Qwen3_config_reads_head_dim_and_qk_norm_and_counts_the_published_parameters()
    {
        var c = ModelConfig.Parse(Qwen3_06B);
        Assert.Equal("qwen3", c.ModelType);
        Assert.Equal(128, c.HeadDim);                       // not hidden_size / heads = 64
        Assert.True(c.QkNorm);
        Assert.False(c.QkvBias);
        Assert.False(c.HasSlidingLayers);                   // use_sliding_window false
        // By hand: embedding 151936·1024; per layer q 1024·2048, k and v 1024·1024, o 2048·1024, MLP 3·1024·3072,
        // two norms 2·1024 and q/k norms 2·128; 28 layers, final norm 1024, tied head: 596,049,920 (Qwen3-0.6B's count).
        long layer = 1024L * 2048 + 2 * 1024L * 1024 + 2048L * 1024 + 3 * 1024L * 3072 + 2 * 1024 + 2 * 128;
        Assert.Equal(151936L * 1024 + 28 * layer + 1024, c.ParameterCount());
        Assert.Equal(596_049_920L, c.ParameterCount());
        var again = ModelConfig.Parse(c.ToJson());
        Assert.Equal(c.HeadDim, again.HeadDim);
        Assert.Equal("qwen3", again.ModelType);
        Assert.Contains("Qwen3ForCausalLM", c.ToJson());
    }

    static ModelConfig TinyQwen3() => Small("qwen3") with { HeadDimOverride = 12, NumAttentionHeads = 4, NumKeyValueHeads = 2, TieWordEmbeddings = true };

    [Fact]
    public void Qwen3_logits_match_the_reference_with_per_head_qk_norms()
    {
        var cfg = TinyQwen3();
        using var model = LlamaCppOracle.Randomize(new CausalLM(cfg, seed: 3), seed: 4, scale: 0.3);   // q/k norm weights ≠ 1
        var names = model.Weights().Select(w => w.Name).ToHashSet();
        Assert.Contains("model.layers.1.self_attn.q_norm.weight", names);
        Assert.Contains("model.layers.1.self_attn.k_norm.weight", names);
        Assert.DoesNotContain("model.layers.0.self_attn.q_proj.bias", names);
        Assert.Equal(cfg.ParameterCount(), model.ParameterCount());
        int[] ids = [1, 5, 7, 3, 12, 4, 4, 9];
        var w = Weights(model);
        AssertMatchesReference(model, ids, ReferenceLlama.Logits(cfg, w, ids));
        // The norms matter: without them the reference computes something else.
        var without = w.Where(kv => !kv.Key.Contains("_norm.weight") || kv.Key.Contains("layernorm")).ToDictionary();
        Assert.True(MaxDiff(ReferenceLlama.Logits(cfg, w, ids), ReferenceLlama.Logits(cfg, without, ids)) > 0.05);
    }

    [Fact]
    public void Qwen3_checkpoint_round_trips_in_the_hugging_face_layout_and_decodes_fast_like_the_reference()
    {
        using var dir = new TempDir();
        using var model = LlamaCppOracle.Randomize(new CausalLM(TinyQwen3(), seed: 5), seed: 6, scale: 0.3);
        HfCheckpoint.Save(dir.Path, model);
        Assert.Contains("\"model_type\": \"qwen3\"", File.ReadAllText(dir.File("config.json")));
        using var loaded = HfCheckpoint.Load(dir.Path).Model;
        int[] ids = [3, 1, 4, 1, 5, 9, 2, 6];
        AssertMatchesReference(loaded, ids, ReferenceLlama.Logits(loaded.Config, Weights(model), ids));
        FastEqualsReferenceDecode(loaded);
    }

    // ---------------------------------------------------------------- sliding window

    [Fact]
    public void Mistral_config_slides_every_layer_and_qwen_only_with_use_sliding_window_from_max_window_layers()
    {
        var m = ModelConfig.Parse(Mistral7B);
        Assert.Equal(4096, m.SlidingWindow);
        Assert.All(Enumerable.Range(0, 32), i => Assert.True(m.IsSlidingLayer(i)));

        const string qwen = """{"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":4,"num_attention_heads":2,"sliding_window":16,"max_window_layers":2""";
        var off = ModelConfig.Parse(qwen + "}");
        Assert.False(off.HasSlidingLayers);
        var on = ModelConfig.Parse(qwen + ",\"use_sliding_window\":true}");
        Assert.Equal([false, false, true, true], Enumerable.Range(0, 4).Select(on.IsSlidingLayer));
        Assert.Equal([false, false, true, true], Enumerable.Range(0, 4).Select(ModelConfig.Parse(on.ToJson()).IsSlidingLayer));

        var v5 = ModelConfig.Parse("""{"model_type":"qwen3","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":3,"num_attention_heads":2,"sliding_window":4,"layer_types":["sliding_attention","full_attention","sliding_attention"]}""");
        Assert.Equal([true, false, true], Enumerable.Range(0, 3).Select(v5.IsSlidingLayer));

        var llama = ModelConfig.Parse("""{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":2,"num_attention_heads":2,"sliding_window":4}""");
        Assert.False(llama.HasSlidingLayers);               // Transformers' Llama has no sliding window
    }

    [Fact]
    public void Mistral_sliding_window_is_applied_and_matches_the_reference()
    {
        var cfg = Small("mistral") with { SlidingWindow = 3 };
        using var model = LlamaCppOracle.Randomize(new CausalLM(cfg, seed: 7), seed: 8, scale: 0.3);
        int[] ids = [1, 5, 7, 3, 12, 4, 4, 9, 10, 2];
        var w = Weights(model);
        var windowed = ReferenceLlama.Logits(cfg, w, ids, window: 3);
        AssertMatchesReference(model, ids, windowed);
        // Past the window the result differs from full attention, within it (first 3 positions) it does not.
        var full = ReferenceLlama.Logits(cfg, w, ids);
        Assert.True(MaxDiff(windowed.Skip(3).ToArray(), full.Skip(3).ToArray()) > 0.05);
        Assert.True(MaxDiff(windowed.Take(3).ToArray(), full.Take(3).ToArray()) < 1e-9);
    }

    [Fact]
    public void Sliding_layers_from_layer_types_match_the_reference_and_decode_fast_like_the_reference_path()
    {
        var cfg = Small("qwen3") with { SlidingWindow = 4, LayerTypes = ["full_attention", "sliding_attention"], HeadDimOverride = 8 };
        using var model = LlamaCppOracle.Randomize(new CausalLM(cfg, seed: 9), seed: 10, scale: 0.3);
        int[] ids = [1, 5, 7, 3, 12, 4, 4, 9, 10, 2];
        AssertMatchesReference(model, ids, ReferenceLlama.Logits(cfg, Weights(model), ids, window: 4, sliding: l => l == 1));
        FastEqualsReferenceDecode(model);
        // A Mistral with a window shorter than prompt + completion, through left padding, the KV cache and H₂O slots.
        using var mistral = LlamaCppOracle.Randomize(new CausalLM(Small("mistral") with { SlidingWindow = 5 }, seed: 11), seed: 12, scale: 0.3);
        FastEqualsReferenceDecode(mistral);
    }

    [Fact]
    public void A_padded_batch_with_a_sliding_window_scores_each_row_as_it_scores_alone()
    {
        // Transformers counts the window in columns (padding included), so left padding must not let a row see further back.
        var cfg = Small("mistral") with { SlidingWindow = 3 };
        using var model = LlamaCppOracle.Randomize(new CausalLM(cfg, seed: 13), seed: 14, scale: 0.3);
        int[] ids = [4, 8, 2, 9, 7, 3];
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var alone = model.Forward(tensor(ids.Select(i => (long)i).ToArray()).view(1, -1)).Logits;              // (1, 6, V)
        var padded = tensor(new long[] { 0, 0, 0 }.Concat(ids.Select(i => (long)i)).ToArray()).view(1, -1);
        var mask = tensor(new long[] { 0, 0, 0, 1, 1, 1, 1, 1, 1 }).view(1, -1);
        var batched = model.Forward(padded, mask).Logits.narrow(1, 3, 6);
        Assert.True((alone - batched).abs().max().item<float>() < 1e-4);
    }

    // ---------------------------------------------------------------- RoPE scaling

    // Transformers' yarn (modeling_rope_utils._compute_yarn_parameters), written out again for the test.
    static (double[], double) YarnByHand(double theta, int dim, double factor, int originalMax)
    {
        double CorrDim(double rot) => dim * Math.Log(originalMax / (rot * 2 * Math.PI)) / (2 * Math.Log(theta));
        double low = Math.Max(Math.Floor(CorrDim(32)), 0), high = Math.Min(Math.Ceiling(CorrDim(1)), dim - 1);
        var inv = new double[dim / 2];
        for (int i = 0; i < dim / 2; i++)
        {
            double posFreq = Math.Pow(theta, 2.0 * i / dim);
            double extrapolationWeight = 1 - Math.Clamp((i - low) / (high - low), 0, 1);
            inv[i] = 1 / (factor * posFreq) * (1 - extrapolationWeight) + 1 / posFreq * extrapolationWeight;
        }
        return (inv, 0.1 * Math.Log(factor) + 1);
    }

    [Fact]
    public void Yarn_rope_from_rope_scaling_or_rope_parameters_matches_transformers_formulas()
    {
        const string baseJson = """{"model_type":"llama","vocab_size":13,"hidden_size":32,"intermediate_size":24,"num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,"max_position_embeddings":1024,"rms_norm_eps":1e-5,""";
        var v4 = ModelConfig.Parse(baseJson + """ "rope_theta":10000.0, "rope_scaling":{"type":"yarn","factor":4.0,"original_max_position_embeddings":256}}""");
        var v5 = ModelConfig.Parse(baseJson + """ "rope_parameters":{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":256,"rope_theta":10000.0}}""");
        Assert.Equal(v4.RopeScaling!.ToJson().ToJsonString(), v5.RopeScaling!.ToJson().ToJsonString());
        Assert.Equal(256, ModelConfig.Parse(v4.ToJson()).RopeScaling!.OriginalMaxPositionEmbeddings);
        // head_dim 16, θ 10⁴, original 256: correction dims floor(0.21) = 0 and ceil(3.22) = 4, so frequencies 1–3 are
        // blended, 4–7 interpolated (÷4), 0 kept; cos/sin × (1 + 0.1 ln 4).
        var (inv, scale) = YarnByHand(10000, 16, 4.0, 256);
        Assert.Equal(1.0, inv[0], 12);
        Assert.Equal(Math.Pow(10000, -8.0 / 16) / 4, inv[4], 12);
        using var model = LlamaCppOracle.Randomize(new CausalLM(v5, seed: 15), seed: 16, scale: 0.3);
        int[] ids = [1, 5, 7, 3, 12, 4, 4, 9, 10, 2, 11, 6];
        var w = Weights(model);
        var expected = ReferenceLlama.Logits(v5, w, ids, rope: _ => (inv, scale));
        AssertMatchesReference(model, ids, expected);
        Assert.True(MaxDiff(expected, ReferenceLlama.Logits(v5, w, ids)) > 0.05);   // the scaling matters at these positions
    }

    // Transformers' dynamic NTK: base θ·(f·L/M − (f − 1))^(D/(D−2)) once the pass reaches L > M positions.
    static double[] DynamicByHand(double theta, int dim, double factor, int maxPositions, int seqLen)
    {
        double b = seqLen > maxPositions ? theta * Math.Pow(factor * seqLen / maxPositions - (factor - 1), dim / (dim - 2.0)) : theta;
        return Enumerable.Range(0, dim / 2).Select(i => Math.Pow(b, -2.0 * i / dim)).ToArray();
    }

    [Fact]
    public void Dynamic_ntk_rope_rescales_the_base_only_past_max_position_embeddings()
    {
        var cfg = ModelConfig.Parse("""
            {"model_type":"llama","vocab_size":13,"hidden_size":32,"intermediate_size":24,"num_hidden_layers":2,"num_attention_heads":2,
             "max_position_embeddings":8,"rms_norm_eps":1e-5,"rope_theta":10000.0,"rope_scaling":{"rope_type":"dynamic","factor":2.0}}
            """);
        Assert.Equal("dynamic", cfg.RopeScaling!.Type);
        using var model = LlamaCppOracle.Randomize(new CausalLM(cfg, seed: 17), seed: 18, scale: 0.3);
        var w = Weights(model);
        Func<int, (double[], double)> rope = len => (DynamicByHand(10000, 16, 2.0, 8, len), 1.0);
        int[] shortIds = [1, 5, 7, 3, 12, 4];                          // 6 ≤ 8: plain RoPE
        AssertMatchesReference(model, shortIds, ReferenceLlama.Logits(cfg, w, shortIds));
        int[] longIds = [1, 5, 7, 3, 12, 4, 4, 9, 10, 2, 11, 6];       // 12 > 8: base 10⁴·(2·12/8 − 1)^(16/14)
        var expected = ReferenceLlama.Logits(cfg, w, longIds, rope: rope);
        AssertMatchesReference(model, longIds, expected);
        Assert.True(MaxDiff(expected, ReferenceLlama.Logits(cfg, w, longIds)) > 0.01);
    }

    [Fact]
    public void Yarn_and_dynamic_models_decode_fast_like_the_reference_path()
    {
        using var yarn = LlamaCppOracle.Randomize(new CausalLM(Small("llama") with { RopeScaling = new RopeScaling("yarn", 4.0, OriginalMaxPositionEmbeddings: 8) }, seed: 19), seed: 20, scale: 0.3);
        FastEqualsReferenceDecode(yarn);
        // max_position_embeddings 10: prompts of up to 9 plus 12 new tokens cross it during decoding.
        using var dynamic = LlamaCppOracle.Randomize(new CausalLM(Small("llama") with { MaxPositionEmbeddings = 10, RopeScaling = new RopeScaling("dynamic", 2.0, OriginalMaxPositionEmbeddings: 10) }, seed: 21), seed: 22, scale: 0.3);
        FastEqualsReferenceDecode(dynamic, withBudget: false);
    }

    // ---------------------------------------------------------------- Phi-3

    // Phi-3-mini-4k-instruct's config.json as published.
    const string Phi3Mini = """
        {"_name_or_path": "Phi-3-mini-4k-instruct", "architectures": ["Phi3ForCausalLM"], "attention_dropout": 0.0,
         "auto_map": {"AutoConfig": "configuration_phi3.Phi3Config", "AutoModelForCausalLM": "modeling_phi3.Phi3ForCausalLM"},
         "bos_token_id": 1, "embd_pdrop": 0.0, "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": 3072,
         "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 4096, "model_type": "phi3",
         "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32, "original_max_position_embeddings": 4096,
         "pad_token_id": 32000, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000.0,
         "sliding_window": 2047, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.40.2",
         "use_cache": true, "attention_bias": false, "vocab_size": 32064}
        """;

    [Fact]
    public void Phi3_config_reads_and_counts_the_published_parameters()
    {
        var c = ModelConfig.Parse(Phi3Mini);
        Assert.Equal("phi3", c.ModelType);
        Assert.True(c.FusedProjections);
        Assert.True(c.IsSlidingLayer(0) && c.IsSlidingLayer(31));
        Assert.Equal(2047, c.SlidingWindow);
        Assert.Equal(4096, c.OriginalMaxPositionEmbeddings);
        // By hand: untied 32064·3072 embedding and head; per layer 4·3072² attention, 3·3072·8192 MLP, 2·3072 norms; final norm.
        Assert.Equal(2 * 32064L * 3072 + 32 * (4 * 3072L * 3072 + 3 * 3072L * 8192 + 2 * 3072) + 3072, c.ParameterCount());
        Assert.Equal(3_821_079_552L, c.ParameterCount());
        Assert.Contains("Phi3ForCausalLM", c.ToJson());
        Assert.Equal(4096, ModelConfig.Parse(c.ToJson()).OriginalMaxPositionEmbeddings);
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(Phi3Mini.Replace("\"attention_bias\": false", "\"partial_rotary_factor\": 0.75")));
        Assert.Contains("'partial_rotary_factor' is 0.75", e.Message);
    }

    static ModelConfig TinyPhi3() => Small("phi3") with { NumKeyValueHeads = 2, SlidingWindow = 5 };

    [Fact]
    public void Phi3_loads_fused_qkv_and_gate_up_weights_and_matches_the_reference()
    {
        var cfg = TinyPhi3();
        int c = cfg.HiddenSize, q = cfg.NumAttentionHeads * cfg.HeadDim, kv = cfg.NumKeyValueHeads * cfg.HeadDim, f = cfg.IntermediateSize;
        // A checkpoint in Phi-3's layout, drawn here: qkv_proj rows are q, then k, then v; gate_up_proj rows gate, then up.
        var rng = new Random(23);
        double[] Draw(int n, double scale = 0.3) => Enumerable.Range(0, n).Select(_ => scale * (rng.NextDouble() * 2 - 1) * 1.7).ToArray();
        var file = new Dictionary<string, double[]> { ["model.embed_tokens.weight"] = Draw(cfg.VocabSize * c), ["model.norm.weight"] = Draw(c).Select(x => 1 + x).ToArray(), ["lm_head.weight"] = Draw(cfg.VocabSize * c) };
        var shapes = new Dictionary<string, long[]> { ["model.embed_tokens.weight"] = [cfg.VocabSize, c], ["model.norm.weight"] = [c], ["lm_head.weight"] = [cfg.VocabSize, c] };
        var reference = new Dictionary<string, double[]>(file);
        for (int l = 0; l < cfg.NumHiddenLayers; l++)
        {
            string p = $"model.layers.{l}.";
            var qkv = Draw((q + 2 * kv) * c);
            var gateUp = Draw(2 * f * c);
            file[p + "self_attn.qkv_proj.weight"] = qkv; shapes[p + "self_attn.qkv_proj.weight"] = [q + 2 * kv, c];
            file[p + "mlp.gate_up_proj.weight"] = gateUp; shapes[p + "mlp.gate_up_proj.weight"] = [2 * f, c];
            foreach (var (name, n, shape) in new[] { ("self_attn.o_proj.weight", c * q, new long[] { c, q }), ("mlp.down_proj.weight", c * f, new long[] { c, f }) })
            { file[p + name] = Draw(n); shapes[p + name] = shape; reference[p + name] = file[p + name]; }
            foreach (var name in new[] { "input_layernorm.weight", "post_attention_layernorm.weight" })
            { file[p + name] = Draw(c).Select(x => 1 + x).ToArray(); shapes[p + name] = [c]; reference[p + name] = file[p + name]; }
            reference[p + "self_attn.q_proj.weight"] = qkv[..(q * c)];
            reference[p + "self_attn.k_proj.weight"] = qkv[(q * c)..((q + kv) * c)];
            reference[p + "self_attn.v_proj.weight"] = qkv[((q + kv) * c)..];
            reference[p + "mlp.gate_proj.weight"] = gateUp[..(f * c)];
            reference[p + "mlp.up_proj.weight"] = gateUp[(f * c)..];
        }
        using var model = new CausalLM(cfg, seed: 1);
        using (var scope = NewDisposeScope())
            model.LoadWeights(file.ToDictionary(e => e.Key, e => tensor(e.Value.Select(x => (float)x).ToArray()).view(shapes[e.Key])), "phi3-test");
        int[] ids = [1, 5, 7, 3, 12, 4, 4, 9, 10, 2];
        AssertMatchesReference(model, ids, ReferenceLlama.Logits(cfg, reference, ids, window: 5));

        // Saved as Phi-3 stores it (fused names only), loaded back to the same function; the fast decode path agrees.
        using var dir = new TempDir();
        HfCheckpoint.Save(dir.Path, model);
        HashSet<string> names;
        using (NewDisposeScope()) names = Safetensors.Load(dir.File("model.safetensors")).Keys.ToHashSet();
        Assert.Contains("model.layers.0.self_attn.qkv_proj.weight", names);
        Assert.Contains("model.layers.1.mlp.gate_up_proj.weight", names);
        Assert.DoesNotContain("model.layers.0.self_attn.q_proj.weight", names);
        Assert.DoesNotContain("model.layers.0.mlp.up_proj.weight", names);
        using var loaded = HfCheckpoint.Load(dir.Path).Model;
        AssertMatchesReference(loaded, ids, ReferenceLlama.Logits(cfg, reference, ids, window: 5));
        FastEqualsReferenceDecode(loaded);
    }

    [Fact]
    public void Longrope_uses_the_short_factors_within_the_original_context_and_the_long_ones_past_it()
    {
        double[] shortF = [1.0, 1.1, 1.3, 1.7, 2.0, 2.5, 3.0, 4.0], longF = [1.0, 1.5, 2.5, 4.0, 6.0, 8.0, 12.0, 16.0];
        var json = """
            {"model_type":"phi3","vocab_size":16,"hidden_size":32,"intermediate_size":24,"num_hidden_layers":2,"num_attention_heads":2,
             "max_position_embeddings":32,"original_max_position_embeddings":8,"rms_norm_eps":1e-5,"rope_theta":10000.0,
             "rope_scaling":{"type":"longrope","short_factor":[
            """ + string.Join(",", shortF) + "],\"long_factor\":[" + string.Join(",", longF) + "]}}";
        var cfg = ModelConfig.Parse(json.Replace("\"vocab_size\":16", $"\"vocab_size\":{Tok.VocabSize}"));
        Assert.Equal(4.0, cfg.RopeScaling!.Factor);                    // 32 / 8
        using var model = LlamaCppOracle.Randomize(new CausalLM(cfg, seed: 25), seed: 26, scale: 0.3);
        var w = Weights(model).SelectMany(kv => Unfuse(cfg, kv)).ToDictionary();
        double attention = Math.Sqrt(1 + Math.Log(4) / Math.Log(8));
        (double[], double) Rope(int len)
        {
            var ext = len > 8 ? longF : shortF;
            return (Enumerable.Range(0, 8).Select(i => Math.Pow(10000, -2.0 * i / 16) / ext[i]).ToArray(), attention);
        }
        int[] shortIds = [1, 5, 7, 3, 12, 4];
        AssertMatchesReference(model, shortIds, ReferenceLlama.Logits(cfg, w, shortIds, rope: Rope));
        int[] longIds = [1, 5, 7, 3, 12, 4, 4, 9, 10, 2, 11, 6];
        AssertMatchesReference(model, longIds, ReferenceLlama.Logits(cfg, w, longIds, rope: Rope));
        FastEqualsReferenceDecode(model, withBudget: false);
    }

    static IEnumerable<KeyValuePair<string, double[]>> Unfuse(ModelConfig cfg, KeyValuePair<string, double[]> kv)
    {
        int c = cfg.HiddenSize, q = cfg.NumAttentionHeads * cfg.HeadDim, k = cfg.NumKeyValueHeads * cfg.HeadDim, f = cfg.IntermediateSize;
        if (kv.Key.EndsWith("qkv_proj.weight"))
        {
            var p = kv.Key[..^"qkv_proj.weight".Length];
            yield return new(p + "q_proj.weight", kv.Value[..(q * c)]);
            yield return new(p + "k_proj.weight", kv.Value[(q * c)..((q + k) * c)]);
            yield return new(p + "v_proj.weight", kv.Value[((q + k) * c)..]);
        }
        else if (kv.Key.EndsWith("gate_up_proj.weight"))
        {
            var p = kv.Key[..^"gate_up_proj.weight".Length];
            yield return new(p + "gate_proj.weight", kv.Value[..(f * c)]);
            yield return new(p + "up_proj.weight", kv.Value[(f * c)..]);
        }
        else yield return kv;
    }
}
