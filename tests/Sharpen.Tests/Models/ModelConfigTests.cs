using Sharpen.Models;

namespace Sharpen.Tests.Models;

public class ModelConfigTests
{
    // The config.json of Qwen2.5-0.5B as published on the Hugging Face hub.
    const string Qwen25 = """
    {"architectures":["Qwen2ForCausalLM"],"attention_dropout":0.0,"bos_token_id":151643,"eos_token_id":151643,
     "hidden_act":"silu","hidden_size":896,"initializer_range":0.02,"intermediate_size":4864,"max_position_embeddings":32768,
     "max_window_layers":24,"model_type":"qwen2","num_attention_heads":14,"num_hidden_layers":24,"num_key_value_heads":2,
     "rms_norm_eps":1e-06,"rope_theta":1000000.0,"sliding_window":32768,"tie_word_embeddings":true,"torch_dtype":"bfloat16",
     "transformers_version":"4.40.1","use_cache":true,"use_sliding_window":false,"vocab_size":151936}
    """;

    // SmolLM2-135M (model_type llama, GQA 9/3, tied).
    const string SmolLm2 = """
    {"architectures":["LlamaForCausalLM"],"attention_bias":false,"attention_dropout":0.0,"bos_token_id":0,"eos_token_id":0,
     "hidden_act":"silu","hidden_size":576,"initializer_range":0.041666666666666664,"intermediate_size":1536,
     "max_position_embeddings":8192,"mlp_bias":false,"model_type":"llama","num_attention_heads":9,"num_hidden_layers":30,
     "num_key_value_heads":3,"pretraining_tp":1,"rms_norm_eps":1e-05,"rope_scaling":null,"rope_theta":100000,
     "tie_word_embeddings":true,"torch_dtype":"bfloat16","use_cache":true,"vocab_size":49152}
    """;

    // Llama 3.2 1B: list-valued eos and llama3 rope scaling.
    const string Llama32 = """
    {"architectures":["LlamaForCausalLM"],"bos_token_id":128000,"eos_token_id":[128001,128008,128009],"head_dim":64,
     "hidden_act":"silu","hidden_size":2048,"intermediate_size":8192,"max_position_embeddings":131072,"model_type":"llama",
     "num_attention_heads":32,"num_hidden_layers":16,"num_key_value_heads":8,"rms_norm_eps":1e-05,
     "rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,"original_max_position_embeddings":8192,"rope_type":"llama3"},
     "rope_theta":500000.0,"tie_word_embeddings":true,"torch_dtype":"bfloat16","vocab_size":128256}
    """;

    [Fact]
    public void Reads_qwen25_and_counts_its_published_parameter_count()
    {
        var c = ModelConfig.Parse(Qwen25);
        Assert.Equal("qwen2", c.ModelType);
        Assert.Equal(896, c.HiddenSize);
        Assert.Equal(2, c.NumKeyValueHeads);
        Assert.Equal(64, c.HeadDim);
        Assert.True(c.QkvBias);
        Assert.False(c.OutputBias);
        Assert.Equal([151643], c.EosTokenIds);
        Assert.Equal(1e6, c.RopeTheta);
        Assert.Equal(494_032_768, c.ParameterCount());   // Qwen2.5-0.5B: 494,032,768 parameters
    }

    [Fact]
    public void Reads_smollm2_and_counts_its_parameters()
    {
        var c = ModelConfig.Parse(SmolLm2);
        Assert.Equal(64, c.HeadDim);
        Assert.True(c.TieWordEmbeddings);
        Assert.Equal(134_515_008, c.ParameterCount());   // SmolLM2-135M
    }

    [Fact]
    public void Reads_llama32_list_eos_and_llama3_rope_scaling()
    {
        var c = ModelConfig.Parse(Llama32);
        Assert.Equal([128001, 128008, 128009], c.EosTokenIds);
        Assert.NotNull(c.RopeScaling);
        Assert.Equal("llama3", c.RopeScaling!.Type);
        Assert.Equal(32.0, c.RopeScaling.Factor);
        // Llama 3 scaling keeps high frequencies (wavelength < 8192/4) and divides low ones (wavelength > 8192) by the factor.
        var scaled = c.RopeScaling.Apply([1.0, 1e-5]);
        Assert.Equal(1.0, scaled[0]);
        Assert.Equal(1e-5 / 32.0, scaled[1], 12);
    }

    [Fact]
    public void Round_trips_through_json_keeping_unknown_keys()
    {
        var c = ModelConfig.Parse(Qwen25);
        var again = ModelConfig.Parse(c.ToJson());
        Assert.Equal(c.ParameterCount(), again.ParameterCount());
        Assert.Equal(c.EosTokenIds, again.EosTokenIds);
        Assert.Equal(c.SlidingWindow, again.SlidingWindow);
        Assert.Contains("\"transformers_version\": \"4.40.1\"", again.ToJson());
    }

    [Theory]
    [InlineData("""{"model_type":"gpt2","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2}""", "'model_type' is 'gpt2'")]
    [InlineData("""{"vocab_size":10}""", "missing required key 'model_type'")]
    [InlineData("""{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_attention_heads":2}""", "missing required key 'num_hidden_layers'")]
    [InlineData("""{"model_type":"llama","vocab_size":"ten","hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2}""", "'vocab_size' must be an integer")]
    [InlineData("""{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":3}""", "'num_key_value_heads' must divide")]
    [InlineData("""{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"hidden_act":"gelu"}""", "'hidden_act' is 'gelu'")]
    [InlineData("""{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"rope_scaling":{"rope_type":"mrope","factor":4}}""", "'rope_scaling.rope_type' is 'mrope'")]
    [InlineData("""{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"eos_token_id":12}""", "'eos_token_id' 12 is outside")]
    [InlineData("""[1,2]""", "expected a JSON object")]
    [InlineData("""{"model_type": """, "invalid JSON")]
    public void Bad_configs_fail_naming_the_file_and_key(string json, string expected)
    {
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(json, "some/config.json"));
        Assert.StartsWith("some/config.json:", e.Message);
        Assert.Contains(expected, e.Message);
    }
}
