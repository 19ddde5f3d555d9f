using Sharpen.Models;

namespace Sharpen.Tests.Models;

/// <summary>config.json files as transformers ≥ 5 writes them: <c>dtype</c>, <c>rope_parameters</c>, <c>layer_types</c>.</summary>
public sealed class ModelConfigTransformers5Tests
{
    // Llama 3.2 1B's shape, as transformers 5 saves it (rope_theta and the llama3 scaling inside rope_parameters).
    const string Llama32V5 = """
        {
          "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
          "bos_token_id": 128000, "dtype": "bfloat16", "eos_token_id": [128001, 128008, 128009], "head_dim": 64,
          "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
          "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32,
          "num_hidden_layers": 16, "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
          "rope_parameters": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                              "original_max_position_embeddings": 8192, "rope_theta": 500000.0, "rope_type": "llama3"},
          "tie_word_embeddings": true, "transformers_version": "5.0.0", "use_cache": true, "vocab_size": 128256
        }
        """;

    // Qwen2.5 0.5B's shape, as transformers 5 saves it (layer_types, rope_parameters of type default).
    static readonly string Qwen25V5 = $$"""
        {
          "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "dtype": "bfloat16",
          "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
          "intermediate_size": 4864, "layer_types": [{{string.Join(", ", Enumerable.Repeat("\"full_attention\"", 24))}}],
          "max_position_embeddings": 32768, "max_window_layers": 21, "model_type": "qwen2", "num_attention_heads": 14,
          "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
          "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"}, "sliding_window": null,
          "tie_word_embeddings": true, "transformers_version": "5.0.0", "use_cache": true, "use_sliding_window": false,
          "vocab_size": 151936
        }
        """;

    [Fact]
    public void Llama32_reads_rope_theta_scaling_and_dtype_from_the_v5_keys()
    {
        var c = ModelConfig.Parse(Llama32V5);
        Assert.Equal(500000.0, c.RopeTheta);
        Assert.Equal("bfloat16", c.TorchDtype);
        Assert.Equal(new RopeScaling("llama3", 32.0, 1.0, 4.0, 8192), c.RopeScaling);
        // 1B: 16 layers of (q 2048x2048 + k,v 2048x512 + o 2048x2048 + MLP 3x2048x8192 + 2 norms), tied 128256x2048 embedding, final norm.
        long layer = 2048L * 2048 * 2 + 2048L * 512 * 2 + 3L * 2048 * 8192 + 2 * 2048;
        Assert.Equal(128256L * 2048 + 16 * layer + 2048, c.ParameterCount());
        var again = ModelConfig.Parse(c.ToJson());
        Assert.Equal(c.RopeTheta, again.RopeTheta);
        Assert.Equal(c.RopeScaling, again.RopeScaling);
    }

    [Fact]
    public void Qwen25_reads_theta_from_rope_parameters_and_keeps_layer_types()
    {
        var c = ModelConfig.Parse(Qwen25V5);
        Assert.Equal(1_000_000.0, c.RopeTheta);
        Assert.Null(c.RopeScaling);
        Assert.Equal("bfloat16", c.TorchDtype);
        Assert.Equal(24, c.LayerTypes!.Count);
        Assert.True(c.QkvBias);
        Assert.Equal(24, ModelConfig.Parse(c.ToJson()).LayerTypes!.Count);
    }

    [Theory]
    [InlineData("\"layer_types\": [\"full_attention\", \"chunked_attention\"]", "'layer_types[1]' is 'chunked_attention'")]
    [InlineData("\"layer_types\": [\"full_attention\", \"sliding_attention\"]", "'sliding_window' is missing but layer_types has sliding_attention")]
    [InlineData("\"layer_types\": [\"full_attention\"]", "'layer_types' has 1 entries")]
    [InlineData("\"attn_logit_softcapping\": 50.0", "'attn_logit_softcapping' is a Gemma key; a llama model does not use it")]
    [InlineData("\"quantization_config\": {\"bits\": 4}", "'quantization_config' is not a key")]
    [InlineData("\"rope_parameters\": {\"rope_type\": \"proportional\", \"factor\": 4.0, \"rope_theta\": 10000.0}", "'rope_parameters.rope_type' is 'proportional'")]
    [InlineData("\"rope_parameters\": {\"full_attention\": {\"rope_theta\": 1e6}, \"sliding_attention\": {\"rope_theta\": 1e4}}", "per-layer-type RoPE")]
    [InlineData("\"rope_theta\": 10000.0, \"rope_parameters\": {\"rope_theta\": 500000.0}", "disagree")]
    [InlineData("\"pretraining_tp\": 2", "'pretraining_tp' is 2")]
    public void Forward_changing_keys_are_errors_naming_the_key(string extra, string expected)
    {
        var json = "{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":2,\"num_attention_heads\":2," + extra + "}";
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(json, "ckpt/config.json"));
        Assert.StartsWith("ckpt/config.json:", e.Message);
        Assert.Contains(expected, e.Message);
    }
}
