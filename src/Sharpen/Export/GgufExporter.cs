using Sharpen.Models;
using Sharpen.Tokenizers;
using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Export;

/// <summary>
/// Writes a <see cref="CausalLM"/> and its tokenizer as a GGUF v3 file that llama.cpp loads and runs: architecture
/// <c>llama</c> (Llama, Mistral, SmolLM), <c>qwen2</c>, <c>qwen3</c> (q/k norms as <c>attn_q_norm</c>/<c>attn_k_norm</c>) or
/// <c>phi3</c> (fused <c>attn_qkv</c> and gate-up <c>ffn_up</c>), <c>gemma</c>, <c>gemma2</c> and <c>gemma3</c> (norm weights
/// written as 1 + w, as llama.cpp's converter does; post-attention and post-feedforward norms; soft-capping), llama.cpp's tensor names, the hyper-parameters, and the
/// tokenizer as a <c>gpt2</c> (byte-level BPE) vocabulary. A model with LoRA adapters is written with its merged weights.
/// </summary>
/// <remarks>
/// Hugging Face's Llama rotates the two halves of each head (rotate-half); llama.cpp's <c>llama</c> architecture rotates
/// adjacent pairs. As llama.cpp's converter does, the rows of q_proj and k_proj (and their biases) are reordered per head so
/// that pair (2i, 2i+1) holds what were rows i and i + D/2; the attention scores are unchanged. llama.cpp runs <c>qwen2</c>
/// with rotate-half (NEOX) itself, so Qwen2 weights are written as they are. Llama 3's rope scaling becomes the
/// <c>rope_freqs.weight</c> tensor of per-frequency divisors; linear scaling becomes <c>rope.scaling.type linear</c>, yarn
/// <c>rope.scaling.type yarn</c>. Dynamic NTK (the frequencies change with the sequence length) has no equivalent, so such
/// models are refused; with sliding-window layers, <c>context_length</c> is the window, within which full attention is exact.
/// </remarks>
public static class GgufExporter
{
    /// <summary>Writes <paramref name="model"/> and <paramref name="tokenizer"/> to <paramref name="path"/> (replaced if present).</summary>
    /// <param name="model">The policy; with LoRA, its merged weights are written.</param>
    /// <param name="tokenizer">A byte-level BPE <see cref="HfTokenizer"/> or a <see cref="CharTokenizer"/>.</param>
    /// <param name="path">The <c>.gguf</c> file to write.</param>
    /// <param name="dtype">How 2-D weight matrices are stored; norms, biases and rope factors stay F32.</param>
    /// <exception cref="GgufExportException">The model or tokenizer has no GGUF equivalent; the message says which part.</exception>
    public static void Export(CausalLM model, ITokenizer tokenizer, string path, GgufDType dtype = GgufDType.F32)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentException.ThrowIfNullOrEmpty(path);
        TorchRuntime.EnsureLoaded();
        var c = model.Config;
        string arch = c.ModelType switch
        {
            "llama" or "mistral" => "llama",
            "qwen2" => "qwen2",
            "qwen3" => "qwen3",
            "phi3" => "phi3",
            "gemma" => "gemma",
            "gemma2" => "gemma2",
            "gemma3_text" => "gemma3",
            _ => throw new GgufExportException($"model_type '{c.ModelType}' has no GGUF export"),
        };
        if (c.IsGemma)
        {
            // llama.cpp hard-codes what Transformers reads from the config: scores × 1/√head_dim (query_pre_attn_scalar only for
            // its 27B sizes), Gemma 2's even sliding layers, Gemma 3's pattern 6 with base 10000 on the sliding layers, no final cap.
            if (c.QueryPreAttnScalar is { } qs && qs != c.HeadDim)
                throw new GgufExportException($"query_pre_attn_scalar {qs} differs from head_dim {c.HeadDim}; llama.cpp scales {arch} scores by 1/√head_dim, so the file would not compute the same");
            if (c.LayerTypes is not null && Enumerable.Range(0, c.NumHiddenLayers).Any(i => c.IsSlidingLayer(i) != (c with { LayerTypes = null }).IsSlidingLayer(i)))
                throw new GgufExportException($"layer_types differ from {c.ModelType}'s fixed sliding pattern, which llama.cpp assumes");
            if (arch == "gemma3" && ((c.SlidingWindowPattern ?? 6) != 6 || (c.RopeLocalBaseFreq ?? 10000) != 10000 || c.AttnLogitSoftcapping is not null || c.FinalLogitSoftcapping is not null))
                throw new GgufExportException("gemma3: llama.cpp assumes sliding_window_pattern 6, rope_local_base_freq 10000 and no soft-capping; this model differs");
            if (arch == "gemma" && (c.AttnLogitSoftcapping is not null || c.FinalLogitSoftcapping is not null || c.HasSlidingLayers))
                throw new GgufExportException("gemma: llama.cpp's gemma has no soft-capping or sliding window");
        }
        var vocab = GgufVocab.From(tokenizer, c);
        var w = new GgufWriter();

        w.Add("general.architecture", arch);
        w.Add("general.name", model.SourceDirectory is { } src ? Path.GetFileName(src.TrimEnd('/')) : "sharpen-policy");
        w.Add("general.file_type", dtype switch { GgufDType.F32 => 0u, GgufDType.F16 => 1u, GgufDType.Q8_0 => 7u, _ => throw new ArgumentOutOfRangeException(nameof(dtype)) });
        if (dtype == GgufDType.Q8_0) w.Add("general.quantization_version", 2u);
        w.Add("general.alignment", (uint)GgufWriter.Alignment);
        w.Add($"{arch}.vocab_size", (uint)c.VocabSize);
        // llama.cpp's llama/qwen2/qwen3 attend to the whole context: with sliding-window layers the file claims the window as
        // its training context, within which full and sliding attention agree (llama.cpp warns when asked for more).
        w.Add($"{arch}.context_length", (uint)(c.HasSlidingLayers && !c.IsGemma ? Math.Min(c.MaxPositionEmbeddings, c.SlidingWindow!.Value) : c.MaxPositionEmbeddings));
        w.Add($"{arch}.embedding_length", (uint)c.HiddenSize);
        w.Add($"{arch}.block_count", (uint)c.NumHiddenLayers);
        w.Add($"{arch}.feed_forward_length", (uint)c.IntermediateSize);
        w.Add($"{arch}.attention.head_count", (uint)c.NumAttentionHeads);
        w.Add($"{arch}.attention.head_count_kv", (uint)c.NumKeyValueHeads);
        w.Add($"{arch}.attention.layer_norm_rms_epsilon", (float)c.RmsNormEps);
        w.Add($"{arch}.rope.freq_base", (float)c.RopeTheta);
        w.Add($"{arch}.rope.dimension_count", (uint)c.HeadDim);
        if (c.HeadDimOverride is not null || arch == "qwen3" || c.IsGemma)
        {
            w.Add($"{arch}.attention.key_length", (uint)c.HeadDim);
            w.Add($"{arch}.attention.value_length", (uint)c.HeadDim);
        }
        if (c.IsGemma && c.HasSlidingLayers) w.Add($"{arch}.attention.sliding_window", (uint)c.SlidingWindow!.Value);   // llama.cpp applies it
        if (c.AttnLogitSoftcapping is { } attnCap) w.Add($"{arch}.attn_logit_softcapping", (float)attnCap);
        if (c.FinalLogitSoftcapping is { } finalCap) w.Add($"{arch}.final_logit_softcapping", (float)finalCap);
        if (c.RopeScaling is { Type: "linear" } lin)
        {
            w.Add($"{arch}.rope.scaling.type", "linear");
            w.Add($"{arch}.rope.scaling.factor", (float)lin.Factor);
        }
        else if (c.RopeScaling is { Type: "llama3" } && arch != "llama")
            throw new GgufExportException($"rope_scaling llama3 on a {c.ModelType} model: llama.cpp reads rope_freqs only for the llama architecture");
        else if (c.RopeScaling is { Type: "yarn" } yarn)
        {
            // llama.cpp's YaRN: the same ramp (floor/ceil of the correction dims, β 32/1) and cos/sin × (1 + 0.1·ln factor).
            if (yarn.AttentionFactor is not null || yarn.Mscale is not null || yarn.MscaleAllDim is not null || !yarn.Truncate
                || yarn.BetaFast != 32 || yarn.BetaSlow != 1)
                throw new GgufExportException("rope_scaling yarn with attention_factor, mscale, truncate false or non-default betas has no GGUF equivalent here");
            w.Add($"{arch}.rope.scaling.type", "yarn");
            w.Add($"{arch}.rope.scaling.factor", (float)yarn.Factor);
            w.Add($"{arch}.rope.scaling.original_context_length", (uint)yarn.OriginalMaxPositionEmbeddings);
        }
        else if (c.RopeScaling is { Type: "longrope" })
            throw new GgufExportException("rope_scaling longrope: llama.cpp picks the long factors by context size, Transformers by sequence length, so the file would not compute the same; not exported");
        else if (c.RopeScaling is { } other && other.Type != "llama3")
            throw new GgufExportException($"rope_scaling {other.Type} has no GGUF equivalent (llama.cpp's rope scaling is static)");


        w.Add("tokenizer.ggml.model", "gpt2");
        w.Add("tokenizer.ggml.pre", vocab.Pre);
        w.Add("tokenizer.ggml.tokens", vocab.Tokens);
        w.Add("tokenizer.ggml.token_type", vocab.Types);
        w.Add("tokenizer.ggml.merges", vocab.Merges);
        w.Add("tokenizer.ggml.bos_token_id", (uint)vocab.Bos);
        w.Add("tokenizer.ggml.eos_token_id", (uint)vocab.Eos);
        if (vocab.Pad is { } pad) w.Add("tokenizer.ggml.padding_token_id", (uint)pad);
        if (vocab.Unk is { } unk) w.Add("tokenizer.ggml.unknown_token_id", (uint)unk);
        w.Add("tokenizer.ggml.add_bos_token", vocab.AddBos);
        w.Add("tokenizer.ggml.add_eos_token", vocab.AddEos);

        // Weights (merged once when LoRA is attached) are converted one tensor at a time while the file is written.
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var weights = model.Weights().ToDictionary(x => x.Name, x => x.Tensor);
        var present = weights.Keys.ToHashSet();
        void Tensor2(string hfName, string ggufName, Func<Tensor, Tensor>? transform = null)
        {
            var type = dtype switch
            {
                GgufDType.F16 => GgufWriter.TensorType.F16,
                GgufDType.Q8_0 => Shape(weights, hfName)[1] % 32 == 0 ? GgufWriter.TensorType.Q8_0 : GgufWriter.TensorType.F16,
                _ => GgufWriter.TensorType.F32,
            };
            var shape = Shape(weights, hfName);
            w.AddTensor(ggufName, [shape[1], shape[0]], type, () => Encode(ReadWeight(weights, hfName, transform), type));
        }
        void Tensor1(string hfName, string ggufName, Func<Tensor, Tensor>? transform = null)
        {
            if (c.NormOffset && hfName.EndsWith("norm.weight", StringComparison.Ordinal)) transform = t => t + 1.0;   // Gemma: llama.cpp multiplies by the stored weight
            var shape = Shape(weights, hfName);
            w.AddTensor(ggufName, [shape[0]], GgufWriter.TensorType.F32, () => GgufWriter.EncodeF32(ReadWeight(weights, hfName, transform)));
        }

        Tensor2("model.embed_tokens.weight", "token_embd.weight");
        if (c.RopeScaling is { Type: "llama3" } rs)
        {
            var factors = Llama3RopeFactors(c, rs);
            w.AddTensor("rope_freqs.weight", [factors.Length], GgufWriter.TensorType.F32, () => GgufWriter.EncodeF32(factors));
        }
        bool permute = arch == "llama";
        for (int i = 0; i < c.NumHiddenLayers; i++)
        {
            string p = $"model.layers.{i}.", b = $"blk.{i}.";
            Func<Tensor, Tensor>? pq = permute ? t => PermuteForPairs(t, c.NumAttentionHeads) : null;
            Func<Tensor, Tensor>? pk = permute ? t => PermuteForPairs(t, c.NumKeyValueHeads) : null;
            Tensor1(p + "input_layernorm.weight", b + "attn_norm.weight");
            if (c.FusedProjections)   // Phi-3: llama.cpp's phi3 takes the fused matrices (ffn_up holds gate then up, split by its SwiGLU)
            {
                Tensor2(p + "self_attn.qkv_proj.weight", b + "attn_qkv.weight");
                Tensor2(p + "self_attn.o_proj.weight", b + "attn_output.weight");
                Tensor1(p + "post_attention_layernorm.weight", b + "ffn_norm.weight");
                Tensor2(p + "mlp.gate_up_proj.weight", b + "ffn_up.weight");
                Tensor2(p + "mlp.down_proj.weight", b + "ffn_down.weight");
                continue;
            }
            Tensor2(p + "self_attn.q_proj.weight", b + "attn_q.weight", pq);
            Tensor2(p + "self_attn.k_proj.weight", b + "attn_k.weight", pk);
            Tensor2(p + "self_attn.v_proj.weight", b + "attn_v.weight");
            Tensor2(p + "self_attn.o_proj.weight", b + "attn_output.weight");
            if (c.QkNorm)
            {
                Tensor1(p + "self_attn.q_norm.weight", b + "attn_q_norm.weight");
                Tensor1(p + "self_attn.k_norm.weight", b + "attn_k_norm.weight");
            }
            if (present.Contains(p + "self_attn.q_proj.bias"))
            {
                Tensor1(p + "self_attn.q_proj.bias", b + "attn_q.bias", pq);
                Tensor1(p + "self_attn.k_proj.bias", b + "attn_k.bias", pk);
                Tensor1(p + "self_attn.v_proj.bias", b + "attn_v.bias");
            }
            if (present.Contains(p + "self_attn.o_proj.bias")) Tensor1(p + "self_attn.o_proj.bias", b + "attn_output.bias");
            if (c.SandwichNorms)
            {
                Tensor1(p + "post_attention_layernorm.weight", b + "post_attention_norm.weight");
                Tensor1(p + "pre_feedforward_layernorm.weight", b + "ffn_norm.weight");
                Tensor1(p + "post_feedforward_layernorm.weight", b + "post_ffw_norm.weight");
            }
            else Tensor1(p + "post_attention_layernorm.weight", b + "ffn_norm.weight");
            Tensor2(p + "mlp.gate_proj.weight", b + "ffn_gate.weight");
            Tensor2(p + "mlp.up_proj.weight", b + "ffn_up.weight");
            Tensor2(p + "mlp.down_proj.weight", b + "ffn_down.weight");
        }
        Tensor1("model.norm.weight", "output_norm.weight");
        if (!c.TieWordEmbeddings) Tensor2("lm_head.weight", "output.weight");   // absent: llama.cpp reuses token_embd
        else if (arch == "phi3") Tensor2("model.embed_tokens.weight", "output.weight");   // llama.cpp's phi3 requires an output matrix

        var full = Path.GetFullPath(path);
        if (Path.GetDirectoryName(full) is { } dir) Directory.CreateDirectory(dir);
        w.Write(full);
    }

    static long[] Shape(Dictionary<string, Tensor> weights, string name) =>
        weights.TryGetValue(name, out var t) ? t.shape : throw new GgufExportException($"the model has no weight '{name}'");

    /// <summary>The (merged, when LoRA is attached) weight as float32 values in row-major order, after <paramref name="transform"/>.</summary>
    static float[] ReadWeight(Dictionary<string, Tensor> weights, string name, Func<Tensor, Tensor>? transform)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        if (!weights.TryGetValue(name, out var t)) throw new GgufExportException($"the model has no weight '{name}'");
        var x = t.detach().to(ScalarType.Float32).cpu();
        if (transform is not null) x = transform(x);
        return x.contiguous().data<float>().ToArray();
    }

    static byte[] Encode(float[] values, GgufWriter.TensorType type) => type switch
    {
        GgufWriter.TensorType.F32 => GgufWriter.EncodeF32(values),
        GgufWriter.TensorType.F16 => GgufWriter.EncodeF16(values),
        GgufWriter.TensorType.Q8_0 => GgufWriter.EncodeQ8_0(values),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>
    /// Reorders the rows of each head from rotate-half layout (x_0..x_{D/2-1}, y_0..y_{D/2-1}) to adjacent pairs
    /// (x_0, y_0, x_1, y_1, ...), the order llama.cpp's <c>llama</c> rope expects. Works on (H·D, C) weights and (H·D) biases.
    /// </summary>
    internal static Tensor PermuteForPairs(Tensor w, int heads)
    {
        long rows = w.shape[0];
        long half = rows / heads / 2;
        var rest = w.shape.Skip(1).ToArray();
        var split = w.reshape([heads, 2, half, .. rest]);           // (H, 2, D/2, ...)
        return split.transpose(1, 2).reshape(w.shape);              // (H, D/2, 2, ...) → (H·D, ...)
    }

    /// <summary>Llama 3.1's scaling as llama.cpp's per-frequency divisors: original frequency / scaled frequency.</summary>
    static float[] Llama3RopeFactors(ModelConfig c, RopeScaling rs)
    {
        int half = c.HeadDim / 2;
        var inv = new double[half];
        for (int i = 0; i < half; i++) inv[i] = 1.0 / Math.Pow(c.RopeTheta, 2.0 * i / c.HeadDim);
        var scaled = rs.Apply(inv);
        return inv.Select((f, i) => (float)(f / scaled[i])).ToArray();
    }
}
