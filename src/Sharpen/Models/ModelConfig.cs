using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sharpen.Models;

/// <summary>
/// Architecture of a decoder-only Llama-family transformer, read from and written to a
/// Hugging Face <c>config.json</c>. Covers Llama 2/3, Qwen2/Qwen2.5 (q/k/v bias), Qwen3 (per-head q/k RMSNorm), Mistral
/// (sliding-window attention), Phi-3 (fused <c>qkv_proj</c> and <c>gate_up_proj</c>, LongRoPE), SmolLM (which is
/// <c>model_type: llama</c>) and Gemma, Gemma 2 and Gemma 3 text (RMSNorm scaled by 1 + w, embeddings × √hidden_size, GeGLU,
/// sandwich norms, soft-capping, alternating sliding layers with their own RoPE base). Field names follow Hugging Face's keys.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>Architectures this implementation runs.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["llama", "qwen2", "qwen3", "mistral", "phi3", "gemma", "gemma2", "gemma3_text"];

    /// <summary><c>model_type</c>: one of <see cref="SupportedModelTypes"/>.</summary>
    public string ModelType { get; init; } = "llama";
    /// <summary><c>vocab_size</c>: rows of the embedding and of the LM head.</summary>
    public int VocabSize { get; init; } = 32;
    /// <summary><c>hidden_size</c>: width of the residual stream.</summary>
    public int HiddenSize { get; init; } = 64;
    /// <summary><c>intermediate_size</c>: width of the SwiGLU MLP.</summary>
    public int IntermediateSize { get; init; } = 172;
    /// <summary><c>num_hidden_layers</c>.</summary>
    public int NumHiddenLayers { get; init; } = 2;
    /// <summary><c>num_attention_heads</c>: query heads.</summary>
    public int NumAttentionHeads { get; init; } = 4;
    /// <summary><c>num_key_value_heads</c>: key/value heads (grouped-query attention when fewer than query heads).</summary>
    public int NumKeyValueHeads { get; init; } = 4;
    /// <summary><c>head_dim</c>; when absent, hidden_size / num_attention_heads.</summary>
    public int? HeadDimOverride { get; init; }
    /// <summary><c>rms_norm_eps</c>.</summary>
    public double RmsNormEps { get; init; } = 1e-6;
    /// <summary><c>rope_theta</c>: base of the rotary frequencies.</summary>
    public double RopeTheta { get; init; } = 10000.0;
    /// <summary><c>rope_scaling</c>: null, or Llama 3's frequency scaling (<c>rope_type: llama3</c>) or <c>linear</c>.</summary>
    public RopeScaling? RopeScaling { get; init; }
    /// <summary><c>max_position_embeddings</c>: longest sequence the rotary table covers.</summary>
    public int MaxPositionEmbeddings { get; init; } = 512;
    /// <summary><c>tie_word_embeddings</c>: the LM head reuses the embedding matrix.</summary>
    public bool TieWordEmbeddings { get; init; }
    /// <summary><c>attention_bias</c>: bias on q/k/v (and o for Llama). Qwen2 always has q/k/v bias and no o bias.</summary>
    public bool AttentionBias { get; init; }
    /// <summary><c>bos_token_id</c>.</summary>
    public int? BosTokenId { get; init; }
    /// <summary><c>eos_token_id</c>: Hugging Face allows one id or a list.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    /// <summary><c>pad_token_id</c>.</summary>
    public int? PadTokenId { get; init; }
    /// <summary><c>torch_dtype</c> of the stored weights ("float32", "bfloat16", "float16"); computation is float32 on CPU.</summary>
    public string TorchDtype { get; init; } = "float32";
    /// <summary><c>initializer_range</c>: std of the normal init of linear and embedding weights.</summary>
    public double InitializerRange { get; init; } = 0.02;
    /// <summary><c>sliding_window</c>: a query at column q attends to keys at columns q − W + 1 … q on the layers
    /// <see cref="IsSlidingLayer"/> names (Transformers' rule).</summary>
    public int? SlidingWindow { get; init; }

    /// <summary><c>use_sliding_window</c> (Qwen2/Qwen3): whether <c>sliding_window</c> applies at all.</summary>
    public bool UseSlidingWindow { get; init; }

    /// <summary><c>max_window_layers</c> (Qwen2/Qwen3): with <c>use_sliding_window</c>, layers from this index on slide.</summary>
    public int? MaxWindowLayers { get; init; }

    /// <summary><c>layer_types</c> (transformers ≥ 5): <c>full_attention</c> or <c>sliding_attention</c> per layer; null when
    /// the file has none (then <see cref="IsSlidingLayer"/> follows the model type's own rule).</summary>
    public IReadOnlyList<string>? LayerTypes { get; init; }

    /// <summary>
    /// Whether layer <paramref name="layer"/> attends within <see cref="SlidingWindow"/>, as Transformers decides: from
    /// <c>layer_types</c> when given; else Mistral slides on every layer when <c>sliding_window</c> is set, Qwen2/Qwen3 on
    /// layers ≥ <c>max_window_layers</c> when <c>use_sliding_window</c> is true, and Llama never.
    /// </summary>
    public bool IsSlidingLayer(int layer)
    {
        if (LayerTypes is not null) return LayerTypes[layer] == "sliding_attention";
        if (SlidingWindow is null) return false;
        return ModelType switch
        {
            "mistral" or "phi3" => true,
            "qwen2" or "qwen3" => UseSlidingWindow && layer >= (MaxWindowLayers ?? 0),
            "gemma2" => layer % 2 == 0,                                           // Transformers: is_sliding = not bool(layer_idx % 2)
            "gemma3_text" => (layer + 1) % (SlidingWindowPattern ?? 6) != 0,      // every sliding_window_pattern-th layer is global
            _ => false,
        };
    }

    /// <summary>Phi-3's top-level <c>original_max_position_embeddings</c> (the pretraining context LongRoPE scales from).</summary>
    public int? OriginalMaxPositionEmbeddings { get; init; }

    /// <summary>Whether checkpoints store q/k/v as one <c>self_attn.qkv_proj</c> and gate/up as one <c>mlp.gate_up_proj</c> (Phi-3).
    /// The model computes with separate projections; <see cref="CausalLM.Weights"/> and <see cref="CausalLM.LoadWeights"/> fuse and split.</summary>
    public bool FusedProjections => ModelType == "phi3";

    /// <summary>Whether any layer uses sliding-window attention.</summary>
    public bool HasSlidingLayers => Enumerable.Range(0, NumHiddenLayers).Any(IsSlidingLayer);

    /// <summary>Whether q and k pass through a per-head RMSNorm (<c>q_norm</c>, <c>k_norm</c>) before the rotary embedding (Qwen3, Gemma 3).</summary>
    public bool QkNorm => ModelType is "qwen3" or "gemma3_text";

    /// <summary><c>hidden_activation</c> (Gemma; else <c>hidden_act</c>): <c>silu</c> (SwiGLU) or <c>gelu_pytorch_tanh</c> (GeGLU).</summary>
    public string HiddenActivation { get; init; } = "silu";
    /// <summary><c>query_pre_attn_scalar</c> (Gemma 2/3): attention scores are scaled by its inverse square root instead of head_dim's.</summary>
    public double? QueryPreAttnScalar { get; init; }
    /// <summary><c>attn_logit_softcapping</c> (Gemma 2): scores become cap · tanh(scores / cap) before the mask and softmax.</summary>
    public double? AttnLogitSoftcapping { get; init; }
    /// <summary><c>final_logit_softcapping</c> (Gemma 2): logits become cap · tanh(logits / cap).</summary>
    public double? FinalLogitSoftcapping { get; init; }
    /// <summary><c>sliding_window_pattern</c> (Gemma 3 before transformers 5): layer i is global when (i + 1) is a multiple of it (default 6).</summary>
    public int? SlidingWindowPattern { get; init; }
    /// <summary><c>rope_local_base_freq</c> (Gemma 3): RoPE base of the sliding layers, which take no rope scaling (default 10000).</summary>
    public double? RopeLocalBaseFreq { get; init; }

    /// <summary>Whether this is a Gemma family model (norms scale by 1 + w, embeddings by √hidden_size).</summary>
    public bool IsGemma => ModelType is "gemma" or "gemma2" or "gemma3_text";
    /// <summary>Whether RMSNorm multiplies by (1 + weight) (Gemma), so a zero weight is the identity.</summary>
    public bool NormOffset => IsGemma;
    /// <summary>Factor the token embeddings are multiplied by: √hidden_size for Gemma (rounded to float32, the compute dtype), else 1.</summary>
    public double EmbeddingScale => IsGemma ? (float)Math.Sqrt(HiddenSize) : 1.0;
    /// <summary>Whether each block has Gemma 2/3's four norms: input, post-attention (on the attention output), pre- and post-feedforward.</summary>
    public bool SandwichNorms => ModelType is "gemma2" or "gemma3_text";
    /// <summary>The factor attention scores are multiplied by: 1/√query_pre_attn_scalar when given, else 1/√head_dim.</summary>
    public double AttentionScale => 1.0 / Math.Sqrt(QueryPreAttnScalar ?? HeadDim);
    /// <summary>Whether the sliding layers rotate with their own base (Gemma 3: <see cref="RopeLocalBaseFreq"/>, no scaling).</summary>
    public bool LocalRope => ModelType == "gemma3_text";
    /// <summary>The configuration of the rotary table of sliding layers when <see cref="LocalRope"/>.</summary>
    public ModelConfig LocalRopeConfig => this with { RopeTheta = RopeLocalBaseFreq ?? 10000.0, RopeScaling = null };

    /// <summary>Width of one attention head.</summary>
    public int HeadDim => HeadDimOverride ?? HiddenSize / NumAttentionHeads;

    /// <summary>Whether q/k/v projections carry a bias.</summary>
    public bool QkvBias => ModelType == "qwen2" || AttentionBias;

    /// <summary>Whether the output projection carries a bias.</summary>
    public bool OutputBias => ModelType != "qwen2" && AttentionBias;

    /// <summary>Keys of the original file this record does not model, kept so a round trip loses nothing.</summary>
    public JsonObject? Extra { get; init; }

    /// <summary>Parameters of the model (embedding, layers, head) for this configuration.</summary>
    public long ParameterCount()
    {
        long d = HiddenSize, kv = (long)NumKeyValueHeads * HeadDim, q = (long)NumAttentionHeads * HeadDim;
        long attn = d * q + 2 * d * kv + q * d + (QkvBias ? q + 2 * kv : 0) + (OutputBias ? d : 0);
        long mlp = 3 * d * IntermediateSize;
        long layer = attn + mlp + (SandwichNorms ? 4 : 2) * d + (QkNorm ? 2L * HeadDim : 0);
        long emb = (long)VocabSize * d;
        return emb + NumHiddenLayers * layer + d + (TieWordEmbeddings ? 0 : emb);
    }

    /// <summary>
    /// Throws <see cref="ModelConfigException"/> when the float32 weights of this configuration (4 bytes per parameter, counted
    /// in floating point so absurd sizes cannot overflow) exceed <paramref name="availableBytes"/> (default: the memory the
    /// runtime may use), so a typo such as <c>hidden_size: 1000000</c> is a clear error rather than libtorch's allocation failure.
    /// </summary>
    public ModelConfig EnsureFitsInMemory(string source = "config", long? availableBytes = null)
    {
        double d = HiddenSize, hd = HeadDim, q = (double)NumAttentionHeads * hd, kv = (double)NumKeyValueHeads * hd;
        double layer = d * q + 2 * d * kv + q * d + 3 * d * IntermediateSize + 2 * d;
        double emb = (double)VocabSize * d;
        double bytes = 4 * (emb * (TieWordEmbeddings ? 1 : 2) + NumHiddenLayers * layer + d);
        var available = availableBytes ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (bytes > available)
            throw new ModelConfigException($"{source}: the model needs {bytes / (1 << 30):F1} GiB for its float32 weights alone " +
                $"(vocab_size {VocabSize} × hidden_size {HiddenSize}, {NumHiddenLayers} layers of intermediate_size {IntermediateSize}), " +
                $"more than the {available / (double)(1 << 30):F1} GiB of memory available; check these sizes");
        return this;
    }

    /// <summary>Throws <see cref="ModelConfigException"/> naming the first invalid field.</summary>
    public ModelConfig Validate(string source = "config")
    {
        void Require(bool ok, string key, string what)
        {
            if (!ok) throw new ModelConfigException($"{source}: '{key}' {what}");
        }
        Require(SupportedModelTypes.Contains(ModelType), "model_type",
            $"is '{ModelType}'; supported: {string.Join(", ", SupportedModelTypes)}");
        Require(VocabSize > 0, "vocab_size", $"must be positive, got {VocabSize}");
        Require(HiddenSize > 0, "hidden_size", $"must be positive, got {HiddenSize}");
        Require(IntermediateSize > 0, "intermediate_size", $"must be positive, got {IntermediateSize}");
        Require(NumHiddenLayers > 0, "num_hidden_layers", $"must be positive, got {NumHiddenLayers}");
        Require(NumAttentionHeads > 0, "num_attention_heads", $"must be positive, got {NumAttentionHeads}");
        Require(NumKeyValueHeads > 0 && NumAttentionHeads % NumKeyValueHeads == 0, "num_key_value_heads",
            $"must divide num_attention_heads ({NumAttentionHeads}), got {NumKeyValueHeads}");
        Require(HeadDimOverride is not null || HiddenSize % NumAttentionHeads == 0, "hidden_size",
            $"({HiddenSize}) must be a multiple of num_attention_heads ({NumAttentionHeads}) when head_dim is absent");
        Require(HeadDim > 0 && HeadDim % 2 == 0, "head_dim", $"must be a positive even number, got {HeadDim}");
        Require(RmsNormEps > 0, "rms_norm_eps", $"must be positive, got {RmsNormEps}");
        Require(RopeTheta > 0, "rope_theta", $"must be positive, got {RopeTheta}");
        Require(MaxPositionEmbeddings > 0, "max_position_embeddings", $"must be positive, got {MaxPositionEmbeddings}");
        Require(TorchDtype is "float32" or "bfloat16" or "float16", "torch_dtype",
            $"is '{TorchDtype}'; supported: float32, bfloat16, float16");
        Require(LayerTypes is null || LayerTypes.Count == NumHiddenLayers, "layer_types",
            $"has {LayerTypes?.Count} entries; expected one per layer (num_hidden_layers = {NumHiddenLayers})");
        Require(RopeScaling is not { Type: "longrope" } lr || (lr.ShortFactor!.Count == HeadDim / 2 && lr.LongFactor!.Count == HeadDim / 2),
            "rope_scaling", $"longrope's short_factor and long_factor must each have head_dim / 2 = {HeadDim / 2} entries");
        Require(SlidingWindow is null || SlidingWindow > 0, "sliding_window", $"must be positive, got {SlidingWindow}");
        Require(HiddenActivation is "silu" or "gelu_pytorch_tanh", "hidden_activation", $"is '{HiddenActivation}'; supported: silu, gelu_pytorch_tanh");
        Require(QueryPreAttnScalar is null || QueryPreAttnScalar > 0, "query_pre_attn_scalar", $"must be positive, got {QueryPreAttnScalar}");
        Require(AttnLogitSoftcapping is null || AttnLogitSoftcapping > 0, "attn_logit_softcapping", $"must be positive, got {AttnLogitSoftcapping}");
        Require(FinalLogitSoftcapping is null || FinalLogitSoftcapping > 0, "final_logit_softcapping", $"must be positive, got {FinalLogitSoftcapping}");
        Require(SlidingWindowPattern is null || SlidingWindowPattern > 0, "sliding_window_pattern", $"must be positive, got {SlidingWindowPattern}");
        Require(RopeLocalBaseFreq is null || RopeLocalBaseFreq > 0, "rope_local_base_freq", $"must be positive, got {RopeLocalBaseFreq}");
        Require(SlidingWindow is not null || ModelType is not ("gemma2" or "gemma3_text"), "sliding_window",
            $"is missing; {ModelType} alternates sliding-window and global layers");
        Require(SlidingWindow is not null || LayerTypes is null || !LayerTypes.Contains("sliding_attention"), "sliding_window",
            "is missing but layer_types has sliding_attention layers");
        foreach (var id in EosTokenIds)
            Require(id >= 0 && id < VocabSize, "eos_token_id", $"{id} is outside [0, vocab_size={VocabSize})");
        Require(BosTokenId is null || (BosTokenId >= 0 && BosTokenId < VocabSize), "bos_token_id", $"{BosTokenId} is outside [0, {VocabSize})");
        Require(PadTokenId is null || (PadTokenId >= 0 && PadTokenId < VocabSize), "pad_token_id", $"{PadTokenId} is outside [0, {VocabSize})");
        return this;
    }

    // ---------------------------------------------------------------- config.json

    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>The config.json keys this record reads (others are kept in <see cref="Extra"/>; a recipe's <c>model.init</c> allows only these).</summary>
    public static IReadOnlySet<string> Keys => KnownKeys;

    static readonly HashSet<string> KnownKeys =
    [
        "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "rope_scaling", "max_position_embeddings",
        "tie_word_embeddings", "attention_bias", "bos_token_id", "eos_token_id", "pad_token_id", "torch_dtype",
        "initializer_range", "sliding_window", "hidden_act", "mlp_bias", "use_sliding_window", "architectures",
        "rope_parameters", "dtype", "layer_types", "max_window_layers", "original_max_position_embeddings", "partial_rotary_factor",
        "hidden_activation", "query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping", "sliding_window_pattern",
        "_sliding_window_pattern", "rope_local_base_freq", "sliding_window_size", "use_bidirectional_attention",
    ];

    /// <summary>
    /// Keys that do not change the forward pass of the architectures we run, kept as they are in <see cref="Extra"/>.
    /// Any key outside <see cref="KnownKeys"/> and this list is rejected: a key we do not understand may change the
    /// outputs (soft-capping, qk-norm, multipliers, quantization, ...), and running without it would be silently wrong.
    /// </summary>
    public static readonly IReadOnlyCollection<string> HarmlessKeys = new HashSet<string>
    {
        "transformers_version", "use_cache", "attention_dropout", "_name_or_path", "output_attentions", "output_hidden_states",
        "return_dict", "id2label", "label2id", "tokenizer_class", "pretraining_tp", "unsloth_version",
        "unsloth_fixed", "keys_to_ignore_at_inference", "sep_token_id", "decoder_start_token_id", "task_specific_params",
        "problem_type", "finetuning_task", "chunk_size_feed_forward", "torchscript", "is_decoder", "is_encoder_decoder",
        "cache_implementation", "use_return_dict", "prefix", "model_name", "embd_pdrop", "resid_pdrop", "hidden_dropout",
        "bad_words_ids", "begin_suppress_tokens", "forced_bos_token_id", "forced_eos_token_id", "auto_map",
    };


    /// <summary>Reads and validates a Hugging Face <c>config.json</c>.</summary>
    public static ModelConfig Load(string path)
    {
        if (!File.Exists(path)) throw new ModelConfigException($"{path}: file not found (expected a Hugging Face config.json)");
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses the text of a <c>config.json</c>; <paramref name="source"/> names it in errors.</summary>
    public static ModelConfig Parse(string json, string source = "config.json")
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = 64 }) as JsonObject
                   ?? throw new ModelConfigException($"{source}: expected a JSON object at the top level");
        }
        catch (JsonException e)
        {
            throw new ModelConfigException($"{source}: invalid JSON: {e.Message}");
        }

        string Str(string key, string fallback)
        {
            if (root[key] is null) return fallback;
            return root[key] is JsonValue v && v.TryGetValue(out string? s) ? s : throw Bad(key, "a string");
        }
        int Int(string key, int? fallback)
        {
            if (root[key] is null) return fallback ?? throw new ModelConfigException($"{source}: missing required key '{key}'");
            return IntOf(root[key], key);
        }
        int? OptInt(string key) => root[key] is null ? null : IntOf(root[key], key);
        int IntOf(JsonNode? node, string key)
        {
            if (node is JsonValue v)
            {
                if (v.TryGetValue(out int i)) return i;
                if (v.TryGetValue(out double d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue) return (int)d;
            }
            throw Bad(key, "an integer");
        }
        double Dbl(string key, double fallback)
        {
            if (root[key] is null) return fallback;
            return root[key] is JsonValue v && v.TryGetValue(out double d) && double.IsFinite(d) ? d : throw Bad(key, "a finite number");
        }
        bool Bool(string key, bool fallback)
        {
            if (root[key] is null) return fallback;
            return root[key] is JsonValue v && v.TryGetValue(out bool b) ? b : throw Bad(key, "true or false");
        }
        ModelConfigException Bad(string key, string expected) =>
            new($"{source}: '{key}' must be {expected}, got {root[key]?.ToJsonString() ?? "null"}");

        var modelType = Str("model_type", "");
        if (modelType.Length == 0) throw new ModelConfigException($"{source}: missing required key 'model_type' (supported: {string.Join(", ", SupportedModelTypes)})");
        if (!SupportedModelTypes.Contains(modelType))
            throw new ModelConfigException($"{source}: 'model_type' is '{modelType}'; supported: {string.Join(", ", SupportedModelTypes)}");
        var gemma = modelType is "gemma" or "gemma2" or "gemma3_text";
        string act;
        if (gemma)
        {
            // Transformers' Gemma MLP uses hidden_activation; Gemma 1 checkpoints say hidden_act "gelu" and Transformers runs the
            // tanh approximation for them unless hidden_activation says otherwise.
            var legacy = Str("hidden_act", "gelu_pytorch_tanh");
            act = root["hidden_activation"] is not null ? Str("hidden_activation", "") : legacy == "gelu" && modelType == "gemma" ? "gelu_pytorch_tanh" : legacy;
            if (act != "gelu_pytorch_tanh")
                throw new ModelConfigException($"{source}: '{(root["hidden_activation"] is not null ? "hidden_activation" : "hidden_act")}' is '{act}'; {modelType} supports only 'gelu_pytorch_tanh' (GeGLU)");
            if (Bool("use_bidirectional_attention", false))
                throw new ModelConfigException($"{source}: 'use_bidirectional_attention' true (an encoder, e.g. EmbeddingGemma) is not supported; only causal decoders run");
            if (root["sliding_window_size"] is not null && root["sliding_window"] is not null && OptInt("sliding_window_size") != OptInt("sliding_window"))
                throw new ModelConfigException($"{source}: 'sliding_window_size' ({OptInt("sliding_window_size")}) and 'sliding_window' ({OptInt("sliding_window")}) disagree");
        }
        else
        {
            act = Str("hidden_act", "silu");
            if (act != "silu") throw new ModelConfigException($"{source}: 'hidden_act' is '{act}'; only 'silu' (SwiGLU) is supported");
            foreach (var key in new[] { "hidden_activation", "query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping",
                         "sliding_window_pattern", "_sliding_window_pattern", "rope_local_base_freq", "sliding_window_size", "use_bidirectional_attention" })
                if (root[key] is not null && root[key]!.GetValueKind() != JsonValueKind.Null)
                    throw new ModelConfigException($"{source}: '{key}' is a Gemma key; a {modelType} model does not use it, so it is rejected rather than ignored");
        }
        if (Bool("mlp_bias", false)) throw new ModelConfigException($"{source}: 'mlp_bias' true is not supported");

        var eos = new List<int>();
        switch (root["eos_token_id"])
        {
            case null: break;
            case JsonArray arr:
                for (int i = 0; i < arr.Count; i++) eos.Add(IntOf(arr[i], $"eos_token_id[{i}]"));
                break;
            default: eos.Add(IntOf(root["eos_token_id"], "eos_token_id")); break;
        }

        var heads = Int("num_attention_heads", null);
        var extra = new JsonObject();
        foreach (var (k, v) in root)
        {
            if (KnownKeys.Contains(k)) continue;
            if (!HarmlessKeys.Contains(k))
                throw new ModelConfigException($"{source}: '{k}' is not a key Sharpen understands; it may change the forward pass " +
                                               $"(e.g. soft-capping, q/k norms, multipliers, quantization), so the config is rejected rather than run with a silent default");
            if (k == "pretraining_tp" && IntOf(v, k) != 1)
                throw new ModelConfigException($"{source}: 'pretraining_tp' is {v?.ToJsonString()}; only 1 is supported");
            extra[k] = v?.DeepClone();
        }

        // transformers >= 5: "dtype" replaces "torch_dtype", and "rope_parameters" carries rope_theta and the scaling.
        var dtype = root["torch_dtype"] is not null ? Str("torch_dtype", "float32") : Str("dtype", "float32");
        var ropeTheta = Dbl("rope_theta", 10000.0);
        var maxPositions = Int("max_position_embeddings", 2048);
        var originalMax = OptInt("original_max_position_embeddings");
        if (root["partial_rotary_factor"] is not null && Dbl("partial_rotary_factor", 1.0) != 1.0)
            throw new ModelConfigException($"{source}: 'partial_rotary_factor' is {root["partial_rotary_factor"]!.ToJsonString()}; only 1.0 (rotary on the whole head) is supported");
        var ropeScaling = RopeScaling.Parse(root["rope_scaling"], source, maxPositionEmbeddings: maxPositions, originalMax: originalMax);
        double? localBase = root["rope_local_base_freq"] is null ? null : Dbl("rope_local_base_freq", 10000.0);
        if (root["rope_parameters"] is { } rp)
        {
            if (rp is not JsonObject rpo) throw new ModelConfigException($"{source}: 'rope_parameters' must be an object, got {rp.ToJsonString()}");
            JsonObject flat = rpo;
            if (rpo.Any(kv => kv.Value is JsonObject))
            {
                // transformers >= 5 Gemma 3: {"full_attention": {...}, "sliding_attention": {...}}; the sliding set is plain RoPE.
                if (modelType != "gemma3_text")
                    throw new ModelConfigException($"{source}: 'rope_parameters' holds one set per layer type ({string.Join(", ", rpo.Select(kv => kv.Key))}); " +
                                                   $"per-layer-type RoPE is supported for gemma3_text only, not {modelType}");
                var unknown = rpo.Select(kv => kv.Key).Where(k => k is not ("full_attention" or "sliding_attention")).ToList();
                if (unknown.Count > 0 || rpo["full_attention"] is not JsonObject full)
                    throw new ModelConfigException($"{source}: 'rope_parameters' of gemma3_text must hold 'full_attention' (and 'sliding_attention') objects" +
                                                   (unknown.Count > 0 ? $", not '{unknown[0]}'" : ""));
                flat = full;
                if (rpo["sliding_attention"] is { } slidingNode)
                {
                    if (slidingNode is not JsonObject sliding)
                        throw new ModelConfigException($"{source}: 'rope_parameters.sliding_attention' must be an object");
                    if (RopeScaling.Parse(sliding, source, "rope_parameters.sliding_attention", maxPositions, originalMax) is not null)
                        throw new ModelConfigException($"{source}: 'rope_parameters.sliding_attention' has a rope scaling; only plain RoPE is supported on Gemma 3's sliding layers");
                    if (sliding["rope_theta"] is { } st)
                    {
                        var lb = st is JsonValue sv && sv.TryGetValue(out double sd) && double.IsFinite(sd) && sd > 0
                            ? sd : throw new ModelConfigException($"{source}: 'rope_parameters.sliding_attention.rope_theta' must be a positive number, got {st.ToJsonString()}");
                        if (localBase is not null && localBase != lb)
                            throw new ModelConfigException($"{source}: 'rope_local_base_freq' ({localBase}) and 'rope_parameters.sliding_attention.rope_theta' ({lb}) disagree");
                        localBase = lb;
                    }
                }
            }
            string where = ReferenceEquals(flat, rpo) ? "rope_parameters" : "rope_parameters.full_attention";
            if (flat["rope_theta"] is { } th)
            {
                var theta = th is JsonValue tv && tv.TryGetValue(out double td) && double.IsFinite(td) && td > 0
                    ? td : throw new ModelConfigException($"{source}: '{where}.rope_theta' must be a positive number, got {th.ToJsonString()}");
                if (root["rope_theta"] is not null && ropeTheta != theta)
                    throw new ModelConfigException($"{source}: 'rope_theta' ({ropeTheta}) and '{where}.rope_theta' ({theta}) disagree");
                ropeTheta = theta;
            }
            var scaling = RopeScaling.Parse(flat, source, where, maxPositions, originalMax);
            if (root["rope_scaling"] is not null && !(scaling?.SameAs(ropeScaling) ?? ropeScaling is null))
                throw new ModelConfigException($"{source}: 'rope_scaling' and '{where}' disagree");
            ropeScaling = scaling;
        }
        List<string>? layerTypes = null;
        if (root["layer_types"] is { } lt)
        {
            if (lt is not JsonArray la) throw new ModelConfigException($"{source}: 'layer_types' must be a list of strings, got {lt.ToJsonString()}");
            layerTypes = [];
            for (var i = 0; i < la.Count; i++)
            {
                var kind = la[i] is JsonValue lv && lv.TryGetValue(out string? ls) ? ls : throw Bad($"layer_types", "a list of strings");
                if (kind is not ("full_attention" or "sliding_attention"))
                    throw new ModelConfigException($"{source}: 'layer_types[{i}]' is '{kind}'; supported: full_attention, sliding_attention " +
                                                   "(other attention kinds would change the outputs)");
                layerTypes.Add(kind);
            }
        }

        var cfg = new ModelConfig
        {
            ModelType = modelType,
            VocabSize = Int("vocab_size", null),
            HiddenSize = Int("hidden_size", null),
            IntermediateSize = Int("intermediate_size", null),
            NumHiddenLayers = Int("num_hidden_layers", null),
            NumAttentionHeads = heads,
            NumKeyValueHeads = Int("num_key_value_heads", heads),
            HeadDimOverride = OptInt("head_dim"),
            RmsNormEps = Dbl("rms_norm_eps", 1e-6),
            RopeTheta = ropeTheta,
            RopeScaling = ropeScaling,
            MaxPositionEmbeddings = maxPositions,
            AttentionBias = Bool("attention_bias", false),
            BosTokenId = OptInt("bos_token_id"),
            EosTokenIds = eos,
            PadTokenId = OptInt("pad_token_id"),
            TorchDtype = dtype,
            InitializerRange = Dbl("initializer_range", 0.02),
            SlidingWindow = OptInt("sliding_window") ?? (gemma ? OptInt("sliding_window_size") : null),
            UseSlidingWindow = Bool("use_sliding_window", false),
            MaxWindowLayers = OptInt("max_window_layers"),
            OriginalMaxPositionEmbeddings = originalMax,
            LayerTypes = layerTypes,
            HiddenActivation = act,
            QueryPreAttnScalar = root["query_pre_attn_scalar"] is null ? null : Dbl("query_pre_attn_scalar", 1),
            AttnLogitSoftcapping = root["attn_logit_softcapping"] is null ? null : Dbl("attn_logit_softcapping", 1),
            FinalLogitSoftcapping = root["final_logit_softcapping"] is null ? null : Dbl("final_logit_softcapping", 1),
            SlidingWindowPattern = OptInt("sliding_window_pattern") ?? OptInt("_sliding_window_pattern"),
            RopeLocalBaseFreq = localBase,
            TieWordEmbeddings = Bool("tie_word_embeddings", gemma),
            Extra = extra.Count > 0 ? extra : null,
        };
        return cfg.Validate(source).EnsureFitsInMemory(source);
    }

    /// <summary>The <c>config.json</c> text for this configuration (Hugging Face keys).</summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(ModelType switch
            {
                "qwen2" => "Qwen2ForCausalLM",
                "qwen3" => "Qwen3ForCausalLM",
                "phi3" => "Phi3ForCausalLM",
                "mistral" => "MistralForCausalLM",
                "gemma" => "GemmaForCausalLM",
                "gemma2" => "Gemma2ForCausalLM",
                "gemma3_text" => "Gemma3ForCausalLM",
                _ => "LlamaForCausalLM",
            }),
            ["model_type"] = ModelType,
            ["vocab_size"] = VocabSize,
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumHiddenLayers,
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_key_value_heads"] = NumKeyValueHeads,
            ["hidden_act"] = HiddenActivation,
            ["rms_norm_eps"] = RmsNormEps,
            ["rope_theta"] = RopeTheta,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["attention_bias"] = AttentionBias,
            ["initializer_range"] = InitializerRange,
            ["torch_dtype"] = TorchDtype,
        };
        if (HeadDimOverride is { } hd) o["head_dim"] = hd;
        if (RopeScaling is { } rs) o["rope_scaling"] = rs.ToJson();
        if (BosTokenId is { } b) o["bos_token_id"] = b;
        if (EosTokenIds.Count == 1) o["eos_token_id"] = EosTokenIds[0];
        else if (EosTokenIds.Count > 1) o["eos_token_id"] = new JsonArray(EosTokenIds.Select(i => (JsonNode)i).ToArray());
        if (PadTokenId is { } p) o["pad_token_id"] = p;
        if (SlidingWindow is { } sw) o["sliding_window"] = sw;
        if (UseSlidingWindow) o["use_sliding_window"] = true;
        if (MaxWindowLayers is { } mwl) o["max_window_layers"] = mwl;
        if (OriginalMaxPositionEmbeddings is { } omp) o["original_max_position_embeddings"] = omp;
        if (IsGemma) o["hidden_activation"] = HiddenActivation;
        if (QueryPreAttnScalar is { } qpas) o["query_pre_attn_scalar"] = qpas;
        if (AttnLogitSoftcapping is { } alc) o["attn_logit_softcapping"] = alc;
        if (FinalLogitSoftcapping is { } flc) o["final_logit_softcapping"] = flc;
        if (SlidingWindowPattern is { } swp) o["sliding_window_pattern"] = swp;
        if (RopeLocalBaseFreq is { } rlb) o["rope_local_base_freq"] = rlb;
        if (LayerTypes is not null) o["layer_types"] = new JsonArray(LayerTypes.Select(t => (JsonNode)t).ToArray());
        if (Extra is not null)
            foreach (var (k, v) in Extra) o[k] = v?.DeepClone();
        return o.ToJsonString(Indented);
    }

    /// <summary>Writes <c>config.json</c>.</summary>
    public void Save(string path) => File.WriteAllText(path, ToJson());
}

/// <summary>
/// Rotary-embedding frequency scaling (<c>rope_scaling</c>, or the scaling keys of <c>rope_parameters</c>), computed as
/// Transformers' <c>modeling_rope_utils</c> does: <c>linear</c> (frequencies / factor), <c>llama3</c> (Llama 3.1's smooth
/// per-wavelength rule), <c>yarn</c> (NTK-by-parts ramp between interpolated and original frequencies, cos/sin × the
/// attention factor) and <c>dynamic</c> (dynamic NTK: once a forward pass reaches positions past
/// <c>max_position_embeddings</c>, the base grows with the sequence length of that pass).
/// </summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor = 1.0, double HighFreqFactor = 4.0,
    int OriginalMaxPositionEmbeddings = 8192)
{
    /// <summary>Scaling types this implementation computes.</summary>
    public static readonly IReadOnlyList<string> SupportedTypes = ["default", "linear", "llama3", "yarn", "dynamic", "longrope"];

    /// <summary>longrope: per-frequency divisors while a pass stays within the original context.</summary>
    public IReadOnlyList<double>? ShortFactor { get; init; }
    /// <summary>longrope: per-frequency divisors once a pass goes past it.</summary>
    public IReadOnlyList<double>? LongFactor { get; init; }

    /// <summary>yarn: <c>attention_factor</c> (cos and sin are multiplied by it); null = derived from factor and mscale.</summary>
    public double? AttentionFactor { get; init; }
    /// <summary>yarn: <c>beta_fast</c> (default 32).</summary>
    public double BetaFast { get; init; } = 32;
    /// <summary>yarn: <c>beta_slow</c> (default 1).</summary>
    public double BetaSlow { get; init; } = 1;
    /// <summary>yarn: <c>mscale</c> (DeepSeek style; used with <see cref="MscaleAllDim"/>).</summary>
    public double? Mscale { get; init; }
    /// <summary>yarn: <c>mscale_all_dim</c>.</summary>
    public double? MscaleAllDim { get; init; }
    /// <summary>yarn: <c>truncate</c> (default true): round the correction range to whole dimensions.</summary>
    public bool Truncate { get; init; } = true;

    internal static RopeScaling? Parse(JsonNode? node, string source, string key = "rope_scaling", int maxPositionEmbeddings = 2048, int? originalMax = null)
    {
        if (node is null) return null;
        if (node is not JsonObject o) throw new ModelConfigException($"{source}: '{key}' must be an object or null");
        string type;
        try { type = (o["rope_type"] ?? o["type"])?.GetValue<string>() ?? (key.StartsWith("rope_parameters", StringComparison.Ordinal) ? "default" : ""); }
        catch (InvalidOperationException) { throw new ModelConfigException($"{source}: '{key}.rope_type' must be a string"); }
        double? Opt(string k)
        {
            if (o[k] is null) return null;
            return o[k] is JsonValue v && v.TryGetValue(out double d) && double.IsFinite(d)
                ? d : throw new ModelConfigException($"{source}: '{key}.{k}' must be a number, got {o[k]!.ToJsonString()}");
        }
        double D(string k, double f) => Opt(k) ?? f;
        double Factor(double? fallback)
        {
            var f = Opt("factor") ?? fallback ?? throw new ModelConfigException($"{source}: '{key}' of type '{type}' needs 'factor'");
            return f >= 1 ? f : throw new ModelConfigException($"{source}: '{key}.factor' must be at least 1, got {f}");
        }
        IReadOnlyList<double> List(string k)
        {
            if (o[k] is not JsonArray a) throw new ModelConfigException($"{source}: '{key}' of type longrope needs '{k}', a list of numbers");
            return a.Select((n, i) => n is JsonValue v && v.TryGetValue(out double d) && double.IsFinite(d) && d > 0
                ? d : throw new ModelConfigException($"{source}: '{key}.{k}[{i}]' must be a positive number")).ToArray();
        }
        RopeScaling LongRope()
        {
            // Transformers: the pretraining context is original_max_position_embeddings (top level for Phi-3, or in the
            // scaling); factor defaults to max_position_embeddings / that.
            int original = (int)(Opt("original_max_position_embeddings") ?? originalMax
                ?? throw new ModelConfigException($"{source}: '{key}' of type longrope needs 'original_max_position_embeddings'"));
            return new RopeScaling("longrope", Opt("factor") ?? (double)maxPositionEmbeddings / original, OriginalMaxPositionEmbeddings: original)
            {
                ShortFactor = List("short_factor"), LongFactor = List("long_factor"), AttentionFactor = Opt("attention_factor"),
            };
        }
        return type switch
        {
            "default" => null,
            "linear" => new RopeScaling("linear", Factor(1.0)),
            "llama3" => new RopeScaling("llama3", Factor(8.0), D("low_freq_factor", 1.0), D("high_freq_factor", 4.0),
                (int)D("original_max_position_embeddings", 8192)),
            "yarn" => new RopeScaling("yarn", Factor(null), OriginalMaxPositionEmbeddings: (int)D("original_max_position_embeddings", maxPositionEmbeddings))
            {
                AttentionFactor = Opt("attention_factor"), BetaFast = D("beta_fast", 32), BetaSlow = D("beta_slow", 1),
                Mscale = Opt("mscale"), MscaleAllDim = Opt("mscale_all_dim"),
                Truncate = o["truncate"] is null || (o["truncate"] is JsonValue tv && tv.TryGetValue(out bool tb)
                    ? tb : throw new ModelConfigException($"{source}: '{key}.truncate' must be true or false")),
            },
            "dynamic" => new RopeScaling("dynamic", Factor(null), OriginalMaxPositionEmbeddings: maxPositionEmbeddings),
            "longrope" or "su" => LongRope(),
            _ => throw new ModelConfigException($"{source}: '{key}.rope_type' is '{type}'; supported: {string.Join(", ", SupportedTypes)}"),
        };
    }

    internal JsonObject ToJson()
    {
        var o = new JsonObject { ["rope_type"] = Type, ["factor"] = Factor };
        switch (Type)
        {
            case "llama3":
                o["low_freq_factor"] = LowFreqFactor; o["high_freq_factor"] = HighFreqFactor;
                o["original_max_position_embeddings"] = OriginalMaxPositionEmbeddings;
                break;
            case "longrope":
                o.Remove("rope_type");
                o["type"] = "longrope";   // the spelling Phi-3 checkpoints use
                o["short_factor"] = new JsonArray(ShortFactor!.Select(f => (JsonNode)f).ToArray());
                o["long_factor"] = new JsonArray(LongFactor!.Select(f => (JsonNode)f).ToArray());
                o["original_max_position_embeddings"] = OriginalMaxPositionEmbeddings;
                if (AttentionFactor is { } laf) o["attention_factor"] = laf;
                break;
            case "yarn":
                o["original_max_position_embeddings"] = OriginalMaxPositionEmbeddings;
                if (AttentionFactor is { } af) o["attention_factor"] = af;
                o["beta_fast"] = BetaFast; o["beta_slow"] = BetaSlow;
                if (Mscale is { } m) o["mscale"] = m;
                if (MscaleAllDim is { } ma) o["mscale_all_dim"] = ma;
                if (!Truncate) o["truncate"] = false;
                break;
        }
        return o;
    }

    /// <summary>Same scaling (compares the JSON form, so two configs that spell it alike agree).</summary>
    internal bool SameAs(RopeScaling? other) => other is not null && ToJson().ToJsonString() == other.ToJson().ToJsonString();

    /// <summary>Whether the frequencies depend on the sequence length of the forward pass (dynamic NTK).</summary>
    internal bool IsDynamic => Type is "dynamic" or "longrope";

    /// <summary>The longest sequence a forward pass may reach before <see cref="IsDynamic"/> scaling changes the frequencies.</summary>
    internal int DynamicFrom => OriginalMaxPositionEmbeddings;

    /// <summary>
    /// Inverse frequencies of a <paramref name="dim"/>-wide head with base <paramref name="theta"/> for a forward pass whose
    /// positions reach <paramref name="seqLen"/> − 1, and the factor cos and sin are multiplied by.
    /// </summary>
    internal (double[] InvFreq, double AttentionScale) Frequencies(double theta, int dim, long seqLen)
    {
        double[] Plain(double b) => Enumerable.Range(0, dim / 2).Select(i => 1.0 / Math.Pow(b, 2.0 * i / dim)).ToArray();
        switch (Type)
        {
            case "linear": return (Plain(theta).Select(f => f / Factor).ToArray(), 1.0);
            case "llama3": return (Apply(Plain(theta)), 1.0);
            case "dynamic":
            {
                double len = Math.Max(seqLen, OriginalMaxPositionEmbeddings);
                double b = theta * Math.Pow(Factor * len / OriginalMaxPositionEmbeddings - (Factor - 1), dim / (dim - 2.0));
                return (Plain(b), 1.0);
            }
            case "yarn":
            {
                static double MScale(double scale, double m = 1) => scale <= 1 ? 1.0 : 0.1 * m * Math.Log(scale) + 1.0;
                double attention = AttentionFactor ?? (Mscale is { } ms && ms != 0 && MscaleAllDim is { } ma && ma != 0
                    ? MScale(Factor, ms) / MScale(Factor, ma) : MScale(Factor));
                double CorrectionDim(double rotations) =>
                    dim * Math.Log(OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
                double low = CorrectionDim(BetaFast), high = CorrectionDim(BetaSlow);
                if (Truncate) { low = Math.Floor(low); high = Math.Ceiling(high); }
                low = Math.Max(low, 0); high = Math.Min(high, dim - 1);
                if (low == high) high += 0.001;
                var inv = Plain(theta).Select((extrapolated, i) =>
                {
                    double ramp = Math.Clamp((i - low) / (high - low), 0, 1);     // 0: keep the original frequency, 1: interpolate
                    double keep = 1 - ramp;
                    return extrapolated / Factor * (1 - keep) + extrapolated * keep;
                }).ToArray();
                return (inv, attention);
            }
            case "longrope":
            {
                var ext = seqLen > OriginalMaxPositionEmbeddings ? LongFactor! : ShortFactor!;
                if (ext.Count != dim / 2) throw new ModelConfigException($"rope_scaling: longrope factors have {ext.Count} entries; expected head_dim / 2 = {dim / 2}");
                double attention = AttentionFactor ?? (Factor <= 1 ? 1.0 : Math.Sqrt(1 + Math.Log(Factor) / Math.Log(OriginalMaxPositionEmbeddings)));
                return (Plain(theta).Select((f, i) => f / ext[i]).ToArray(), attention);
            }
            default: throw new InvalidOperationException($"rope type {Type}");
        }
    }

    /// <summary>Applies Llama 3.1's rule (or plain division for linear) to the inverse frequencies.</summary>
    internal double[] Apply(double[] invFreq)
    {
        if (Type == "linear") return invFreq.Select(f => f / Factor).ToArray();
        double lowWavelen = OriginalMaxPositionEmbeddings / LowFreqFactor;
        double highWavelen = OriginalMaxPositionEmbeddings / HighFreqFactor;
        return invFreq.Select(f =>
        {
            double wavelen = 2 * Math.PI / f;
            if (wavelen < highWavelen) return f;
            if (wavelen > lowWavelen) return f / Factor;
            double smooth = (OriginalMaxPositionEmbeddings / wavelen - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
            return (1 - smooth) * f / Factor + smooth * f;
        }).ToArray();
    }
}

/// <summary>An invalid or unsupported model configuration; the message names the file and key.</summary>
public sealed class ModelConfigException(string message) : Exception(message);
