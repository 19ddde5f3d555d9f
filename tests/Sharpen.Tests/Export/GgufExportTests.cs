using Sharpen.Export;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tests.Tokenizers;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Export;

/// <summary>
/// GGUF export checked by llama.cpp itself: the exported file is loaded by llama.cpp (LLamaSharp 0.30.0), prompt ids are fed
/// as ids, and its greedy tokens and logits are compared with Sharpen's own engine and forward pass on the same weights.
/// Tolerances on max |Δ logit| at the prompt's last position: <see cref="LlamaCppOracle.Tolerance"/> (f32 1e-3; f16 1% and
/// q8_0 5% of the logits' spread).
/// </summary>
public class GgufExportTests
{
    static readonly int[] Prompt = [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13];

    static HfTokenizer Gpt2Tokenizer() => HfTokenizer.FromJson(Gpt2TokenizerJson.Gpt2(), """{"eos_token": "<|endoftext|>"}""");

    /// <summary>Llama with grouped-query attention (4 query / 2 key-value heads), untied head, Llama 3 rope scaling whose
    /// thresholds (original context 32) scale most of the 8 frequencies of a 16-wide head.</summary>
    static ModelConfig LlamaGqa(int vocab) => new()
    {
        ModelType = "llama", VocabSize = vocab, HiddenSize = 64, IntermediateSize = 128, NumHiddenLayers = 2,
        NumAttentionHeads = 4, NumKeyValueHeads = 2, RmsNormEps = 1e-5, RopeTheta = 10000, MaxPositionEmbeddings = 256,
        RopeScaling = new RopeScaling("llama3", 8.0, 1.0, 4.0, 32), EosTokenIds = [Gpt2TokenizerJson.EndOfTextId],
    };

    static void AssertMatches(CausalLM model, ITokenizer tokenizer, IReadOnlyList<int> prompt, string path, GgufDType dtype = GgufDType.F32, bool greedy = true,
        GgufDType? toleranceAs = null)
    {
        using var oracle = new LlamaCppOracle(path);
        Assert.Equal(model.Config.VocabSize, oracle.VocabCount);
        var ours = LlamaCppOracle.SharpenLastLogits(model, prompt);
        var theirs = oracle.LastLogits(prompt);
        double diff = LlamaCppOracle.MaxAbsDiff(ours, theirs), tolerance = LlamaCppOracle.Tolerance(toleranceAs ?? dtype, ours);
        Assert.True(diff <= tolerance, $"{dtype}: max |Δ logit| = {diff:g4} > {tolerance:g4}");
        Assert.True(ours.Max() - ours.Min() > 2, "the logits are too flat to tell models apart");
        if (!greedy) return;
        var engine = new RolloutEngine(model, tokenizer);
        var sharpen = engine.Generate([prompt], new SamplingOptions { Temperature = 0, MaxNewTokens = 16, StopAtEos = false })[0].CompletionIds;
        Assert.Equal(sharpen, oracle.Greedy(prompt, 16));
    }

    [Fact]
    public void Llama_gqa_untied_with_llama3_rope_and_gpt2_bpe_f32_matches_llama_cpp()
    {
        using var dir = new TempDir();
        var tok = Gpt2Tokenizer();
        using var model = LlamaCppOracle.Randomize(new CausalLM(LlamaGqa(tok.VocabSize), seed: 1), seed: 2);
        var path = dir.File("llama.gguf");
        GgufExporter.Export(model, tok, path);
        AssertMatches(model, tok, Prompt, path);
    }

    [Fact]
    public void Qwen2_with_biases_and_tied_head_and_qwen2_bpe_f32_matches_llama_cpp()
    {
        using var dir = new TempDir();
        var tok = HfTokenizer.FromJson(Gpt2TokenizerJson.Qwen2Style(), """{"eos_token": "<|endoftext|>"}""");
        var cfg = new ModelConfig
        {
            ModelType = "qwen2", VocabSize = tok.VocabSize + 7, HiddenSize = 96, IntermediateSize = 160, NumHiddenLayers = 2,
            NumAttentionHeads = 6, NumKeyValueHeads = 2, RmsNormEps = 1e-6, RopeTheta = 1_000_000, TieWordEmbeddings = true,
            MaxPositionEmbeddings = 256,
        };
        using var model = LlamaCppOracle.Randomize(new CausalLM(cfg, seed: 3), seed: 4);
        Assert.Contains(model.named_parameters(), p => p.name == "model.layers.0.self_attn.q_proj.bias");
        var path = dir.File("qwen2.gguf");
        GgufExporter.Export(model, tok, path);   // 7 embedding rows past the tokenizer become [PAD] tokens
        AssertMatches(model, tok, Prompt, path);
    }

    [Fact]
    public void Qwen3_with_qk_norms_and_explicit_head_dim_f32_matches_llama_cpp()
    {
        using var dir = new TempDir();
        var tok = HfTokenizer.FromJson(Gpt2TokenizerJson.Qwen2Style(), """{"eos_token": "<|endoftext|>"}""");
        var cfg = new ModelConfig
        {
            ModelType = "qwen3", VocabSize = tok.VocabSize, HiddenSize = 64, IntermediateSize = 128, NumHiddenLayers = 2,
            NumAttentionHeads = 4, NumKeyValueHeads = 2, HeadDimOverride = 24, RmsNormEps = 1e-6, RopeTheta = 1_000_000,
            TieWordEmbeddings = true, MaxPositionEmbeddings = 256,
        };
        using var model = LlamaCppOracle.Randomize(new CausalLM(cfg, seed: 12), seed: 13);   // q_norm/k_norm weights in U(0.5, 1.5)
        Assert.Contains(model.named_parameters(), p => p.name == "model.layers.1.self_attn.k_norm.weight");
        var path = dir.File("qwen3.gguf");
        GgufExporter.Export(model, tok, path);
        AssertMatches(model, tok, Prompt, path);
    }

    [Fact]
    public void Llama_with_yarn_rope_f32_matches_llama_cpp()
    {
        using var dir = new TempDir();
        var tok = Gpt2Tokenizer();
        // Original context 8: yarn's ramp blends and interpolates several of the 8 frequencies of a 16-wide head.
        var cfg = LlamaGqa(tok.VocabSize) with { RopeScaling = new RopeScaling("yarn", 4.0, OriginalMaxPositionEmbeddings: 8) };
        using var model = LlamaCppOracle.Randomize(new CausalLM(cfg, seed: 14), seed: 15);
        var path = dir.File("yarn.gguf");
        GgufExporter.Export(model, tok, path);
        AssertMatches(model, tok, Prompt, path);
        // Dynamic NTK changes its frequencies with the sequence length, which llama.cpp cannot express.
        using var dynamic = new CausalLM(cfg with { RopeScaling = new RopeScaling("dynamic", 2.0, OriginalMaxPositionEmbeddings: 256) }, seed: 1);
        Assert.Contains("dynamic", Assert.Throws<GgufExportException>(() => GgufExporter.Export(dynamic, tok, dir.File("d.gguf"))).Message);
    }

    [Fact]
    public void Phi3_with_fused_qkv_and_gate_up_f32_matches_llama_cpp()
    {
        using var dir = new TempDir();
        var tok = Gpt2Tokenizer();
        var cfg = new ModelConfig
        {
            ModelType = "phi3", VocabSize = tok.VocabSize, HiddenSize = 64, IntermediateSize = 96, NumHiddenLayers = 2,
            NumAttentionHeads = 4, NumKeyValueHeads = 2, RmsNormEps = 1e-5, RopeTheta = 10000, MaxPositionEmbeddings = 256,
            EosTokenIds = [Gpt2TokenizerJson.EndOfTextId],
        };
        using var model = LlamaCppOracle.Randomize(new CausalLM(cfg, seed: 16), seed: 17);
        var path = dir.File("phi3.gguf");
        GgufExporter.Export(model, tok, path);
        AssertMatches(model, tok, Prompt, path);
    }

    // Gemma: norm weights around 0 (llama.cpp gets 1 + w), soft-caps small enough to bend these logits, a window shorter than the prompt.
    static CausalLM RandomGemma(ModelConfig cfg, long seed)
    {
        var model = new CausalLM(cfg, seed: seed);
        using var _ = TorchSharp.torch.no_grad();
        using var gen = new TorchSharp.torch.Generator((ulong)seed + 1);
        foreach (var (name, p) in model.named_parameters())
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) p.uniform_(-0.5, 0.5, gen); else p.normal_(0.0, 0.2, gen);
        return model;
    }

    [Theory]
    [InlineData("gemma2")]
    [InlineData("gemma3_text")]
    [InlineData("gemma")]
    public void Gemma_f32_matches_llama_cpp(string type)
    {
        using var dir = new TempDir();
        var tok = Gpt2Tokenizer();
        var cfg = new ModelConfig
        {
            ModelType = type, VocabSize = tok.VocabSize, HiddenSize = 64, IntermediateSize = 96, NumHiddenLayers = type == "gemma3_text" ? 6 : 2,
            NumAttentionHeads = 4, NumKeyValueHeads = 2, HeadDimOverride = 32, QueryPreAttnScalar = type == "gemma" ? null : 32,
            RmsNormEps = 1e-6, RopeTheta = type == "gemma3_text" ? 1e6 : 10000, MaxPositionEmbeddings = 256, TieWordEmbeddings = true,
            HiddenActivation = "gelu_pytorch_tanh", EosTokenIds = [Gpt2TokenizerJson.EndOfTextId],
            SlidingWindow = type == "gemma" ? null : 4,
            AttnLogitSoftcapping = type == "gemma2" ? 1.5 : null, FinalLogitSoftcapping = type == "gemma2" ? 6.0 : null,
            RopeScaling = type == "gemma3_text" ? new RopeScaling("linear", 2.0) : null,
        };
        using var model = RandomGemma(cfg, 41);
        var path = dir.File($"{type}.gguf");
        GgufExporter.Export(model, tok, path);
        // ggml computes GELU through a table indexed by the input rounded to f16 (GGML_GELU_FP16), so an f32 Gemma file carries
        // f16 rounding of every MLP activation: measured max |Δ logit| 1.5e-3 to 2.3e-3 here, over the f32 bound (1e-3), so the
        // f16 bound (1% of the logit spread) applies; the 16 greedy tokens must still agree one for one.
        AssertMatches(model, tok, Prompt, path, toleranceAs: GgufDType.F16);
    }

    [Fact]
    public void Gemma_settings_llama_cpp_hard_codes_differently_are_refused()
    {
        using var dir = new TempDir();
        var tok = Gpt2Tokenizer();
        var cfg = new ModelConfig
        {
            ModelType = "gemma2", VocabSize = tok.VocabSize, HiddenSize = 32, IntermediateSize = 48, NumHiddenLayers = 2, NumAttentionHeads = 2, NumKeyValueHeads = 1,
            HeadDimOverride = 16, QueryPreAttnScalar = 24, SlidingWindow = 4, TieWordEmbeddings = true, HiddenActivation = "gelu_pytorch_tanh",
            EosTokenIds = [Gpt2TokenizerJson.EndOfTextId],
        };
        using var model = new CausalLM(cfg, seed: 1);
        var e = Assert.Throws<GgufExportException>(() => GgufExporter.Export(model, tok, dir.File("x.gguf")));
        Assert.Contains("query_pre_attn_scalar 24", e.Message);
    }

    static readonly CharTokenizer Chars = CharTokenizer.Create("0123456789+-*/=() abcdeé€\n");

    static CausalLM TiedCharLlama(long seed) => LlamaCppOracle.Randomize(new CausalLM(new ModelConfig
    {
        ModelType = "mistral", VocabSize = Chars.VocabSize, HiddenSize = 64, IntermediateSize = 96, NumHiddenLayers = 2,
        NumAttentionHeads = 2, NumKeyValueHeads = 1, TieWordEmbeddings = true, MaxPositionEmbeddings = 128, EosTokenIds = [CharTokenizer.EosId],
    }, seed), seed + 1);

    [Fact]
    public void Tied_llama_with_the_char_tokenizer_f32_matches_llama_cpp_and_tokenizes_alike()
    {
        using var dir = new TempDir();
        using var model = TiedCharLlama(5);
        var path = dir.File("chars.gguf");
        GgufExporter.Export(model, Chars, path);
        var prompt = Chars.Encode("12+(3*4)=").ToArray();
        AssertMatches(model, Chars, prompt, path);

        using var oracle = new LlamaCppOracle(path);
        Assert.Equal(CharTokenizer.BosId, oracle.Bos);
        Assert.Equal(CharTokenizer.EosId, oracle.Eos);
        foreach (var text in new[] { "12+(3*4)=15", "a bc  de\n", "é€é 0€", "((€))é" })
            Assert.Equal(Chars.Encode(text), oracle.Tokenize(text, addBos: true));
    }

    [Fact]
    public void F16_and_q8_0_exports_stay_within_the_stated_logit_tolerance()
    {
        using var dir = new TempDir();
        using var model = TiedCharLlama(7);
        var prompt = Chars.Encode("(1+2)*3=9\nab").ToArray();
        foreach (var dtype in new[] { GgufDType.F16, GgufDType.Q8_0 })
        {
            var path = dir.File($"m-{dtype}.gguf");
            GgufExporter.Export(model, Chars, path, dtype);
            AssertMatches(model, Chars, prompt, path, dtype, greedy: false);
            // Smaller than f32: the 2-D weights shrink to 2 or 34/32 bytes per value.
            Assert.True(new FileInfo(path).Length < new FileInfo(Export(model, dir.File("ref.gguf"))).Length);
        }
    }

    static string Export(CausalLM model, string path)
    {
        GgufExporter.Export(model, Chars, path);
        return path;
    }

    [Fact]
    public void A_lora_model_exports_its_merged_weights()
    {
        using var dir = new TempDir();
        var tok = Gpt2Tokenizer();
        using var model = new CausalLM(LlamaGqa(tok.VocabSize) with { RopeScaling = null }, seed: 8);
        model.AddLora(new LoraOptions { R = 4, Alpha = 8 }, seed: 9);
        LlamaCppOracle.Randomize(model, seed: 10, scale: 0.2);   // B ≠ 0: the adapters change the function
        var path = dir.File("lora.gguf");
        GgufExporter.Export(model, tok, path);
        AssertMatches(model, tok, Prompt, path);

        // The base weights alone are a different model: the export really carries the adapters.
        using var oracle = new LlamaCppOracle(path);
        float[] baseLogits;
        using (model.AdaptersDisabled()) baseLogits = LlamaCppOracle.SharpenLastLogits(model, Prompt);
        Assert.True(LlamaCppOracle.MaxAbsDiff(baseLogits, oracle.LastLogits(Prompt)) > 0.1);
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("qwen2")]
    [InlineData("llama3")]
    public void Llama_cpp_tokenizes_text_as_sharpen_does(string style)
    {
        var json = style switch { "gpt2" => Gpt2TokenizerJson.Gpt2(), "qwen2" => Gpt2TokenizerJson.Qwen2Style(), _ => Gpt2TokenizerJson.Llama3Style() };
        var tok = HfTokenizer.FromJson(json, """{"eos_token": "<|endoftext|>"}""");
        using var dir = new TempDir();
        using var model = new CausalLM(new ModelConfig
        {
            ModelType = "llama", VocabSize = tok.VocabSize, HiddenSize = 32, IntermediateSize = 32, NumHiddenLayers = 1,
            NumAttentionHeads = 2, NumKeyValueHeads = 2, MaxPositionEmbeddings = 64,
        }, seed: 11);
        var path = dir.File("tok.gguf");
        GgufExporter.Export(model, tok, path);
        using var oracle = new LlamaCppOracle(path);
        string[] texts =
        [
            "Hello world", "  leading spaces  and   runs ", "numbers 1234567 and 3.14159", "it's don't I'LL we've",
            "tabs\tand\nnewlines\n\n end", "café naïve 日本語 🙂 emoji", "a<|endoftext|>b", "x = f(y) + 42; // comment",
        ];
        foreach (var text in texts)
            Assert.Equal(tok.Encode(text), oracle.Tokenize(text, addBos: tok.SpecialPrefix.Count > 0));
    }

    [Fact]
    public void Export_refuses_what_llama_cpp_cannot_represent()
    {
        using var dir = new TempDir();
        using var small = new CausalLM(new ModelConfig { VocabSize = 10, HiddenSize = 32, IntermediateSize = 32, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 2 }, seed: 1);
        var e = Assert.Throws<GgufExportException>(() => GgufExporter.Export(small, Chars, dir.File("x.gguf")));
        Assert.Contains($"{Chars.VocabSize} tokens but the model's vocab_size is 10", e.Message);
        Assert.False(File.Exists(dir.File("x.gguf")));

        var odd = Gpt2TokenizerJson.Build(w =>
        {
            w.WriteStartObject(); w.WriteString("type", "Sequence"); w.WriteStartArray("pretokenizers");
            w.WriteStartObject(); w.WriteString("type", "Split"); w.WriteStartObject("pattern"); w.WriteString("Regex", @"\d+|\D+"); w.WriteEndObject();
            w.WriteString("behavior", "Isolated"); w.WriteBoolean("invert", false); w.WriteEndObject();
            Gpt2TokenizerJson.WriteByteLevel(w, addPrefixSpace: false, useRegex: false);
            w.WriteEndArray(); w.WriteEndObject();
        });
        var oddTok = HfTokenizer.FromJson(odd, """{"eos_token": "<|endoftext|>"}""");
        using var m = new CausalLM(new ModelConfig { VocabSize = oddTok.VocabSize, HiddenSize = 32, IntermediateSize = 32, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 2 }, seed: 1);
        e = Assert.Throws<GgufExportException>(() => GgufExporter.Export(m, oddTok, dir.File("y.gguf")));
        Assert.Contains(@"Split '\d+|\D+'", e.Message);
    }

    [Fact]
    public void Q8_0_and_f16_encodings_match_the_formats_by_hand()
    {
        // One Q8_0 block: max |x| = 127/64 → d = 1/64 (f16 0x2400), q = round(64·x) with halves away from zero:
        // 127/64 → 127, -1 → -64, 1/128 → 0.5 → 1, -3/128 → -1.5 → -2, 0.005 → 0.32 → 0; the other 27 values are 0.
        var x = new float[32];
        x[0] = 127f / 64; x[1] = -1f; x[2] = 1f / 128; x[3] = -3f / 128; x[4] = 0.005f;
        var q = GgufWriter.EncodeQ8_0(x);
        Assert.Equal(34, q.Length);
        Assert.Equal(new byte[] { 0x00, 0x24 }, q.Take(2).ToArray());
        Assert.Equal(new sbyte[] { 127, -64, 1, -2, 0 }, q.Skip(2).Take(5).Select(b => (sbyte)b).ToArray());
        Assert.All(q.Skip(7), b => Assert.Equal(0, b));
        // f16 of 1.0 is 0x3C00, of -2.0 0xC000, little-endian.
        Assert.Equal(new byte[] { 0x00, 0x3C, 0x00, 0xC0 }, GgufWriter.EncodeF16([1f, -2f]));
    }
}
