using Sharpen.Models;
using static TorchSharp.torch;

namespace Sharpen.Tests.Models;

public class CausalLMTests
{
    internal static ModelConfig Tiny(string type = "llama", bool tied = false, int kvHeads = 2) => new()
    {
        ModelType = type, VocabSize = 13, HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = 2,
        NumAttentionHeads = 4, NumKeyValueHeads = kvHeads, TieWordEmbeddings = tied, MaxPositionEmbeddings = 64,
        RmsNormEps = 1e-5, RopeTheta = 10000, EosTokenIds = [2], PadTokenId = 0, BosTokenId = 1, InitializerRange = 0.2,
    };

    static Dictionary<string, double[]> Weights(CausalLM m) =>
        m.Weights().ToDictionary(w => w.Name, w => w.Tensor.detach().to(ScalarType.Float64).contiguous().data<double>().ToArray());

    static double MaxAbsDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();

    [Theory]
    [InlineData("llama", false, 2)]
    [InlineData("llama", true, 4)]
    [InlineData("qwen2", true, 2)]
    [InlineData("mistral", false, 1)]
    public void Logits_match_a_naive_reference_implementation(string type, bool tied, int kv)
    {
        var cfg = Tiny(type, tied, kv);
        using var model = new CausalLM(cfg, seed: 3);
        if (type == "qwen2")
        {
            // Give the q/k/v biases non-zero values so the reference checks they are applied.
            using var _ = no_grad();
            foreach (var (name, t) in model.Weights().Where(w => w.Name.EndsWith(".bias")))
                t.copy_(randn(t.shape) * 0.3);
        }
        int[] ids = [1, 5, 7, 3, 12, 4, 4, 9];
        var expected = ReferenceLlama.Logits(cfg, Weights(model), ids);
        using var scope = NewDisposeScope();
        var logits = model.Forward(tensor(ids.Select(i => (long)i).ToArray()).view(1, -1)).Logits;   // (1, T, V)
        var got = logits.squeeze(0).to(ScalarType.Float64).data<double>().ToArray();
        for (int t = 0; t < ids.Length; t++)
            for (int v = 0; v < cfg.VocabSize; v++)
                Assert.True(Math.Abs(expected[t][v] - got[t * cfg.VocabSize + v]) < 1e-4,
                    $"position {t}, token {v}: expected {expected[t][v]}, got {got[t * cfg.VocabSize + v]}");
    }

    [Fact]
    public void Parameter_names_are_hugging_face_names()
    {
        using var model = new CausalLM(Tiny("qwen2", tied: false), seed: 1);
        var names = model.Weights().Select(w => w.Name).ToHashSet();
        Assert.Contains("model.embed_tokens.weight", names);
        Assert.Contains("model.layers.0.self_attn.q_proj.weight", names);
        Assert.Contains("model.layers.0.self_attn.q_proj.bias", names);
        Assert.Contains("model.layers.1.self_attn.v_proj.bias", names);
        Assert.DoesNotContain("model.layers.0.self_attn.o_proj.bias", names);   // Qwen2: no o_proj bias
        Assert.Contains("model.layers.1.mlp.gate_proj.weight", names);
        Assert.Contains("model.layers.1.post_attention_layernorm.weight", names);
        Assert.Contains("model.norm.weight", names);
        Assert.Contains("lm_head.weight", names);
        // 2 layers × (4 attn weights + 3 bias + 3 mlp + 2 norms) + embed + norm + head
        Assert.Equal(2 * 12 + 3, names.Count);
        Assert.Equal(Tiny("qwen2").ParameterCount(), model.ParameterCount());
    }

    [Fact]
    public async Task The_same_seed_gives_the_same_weights_even_while_the_global_rng_is_in_use()
    {
        using var stop = new CancellationTokenSource();
        var noise = Task.Run(() => { while (!stop.IsCancellationRequested) using (var t = randn(64)) { } });
        try
        {
            using var a = new CausalLM(Tiny(), seed: 21);
            using var b = new CausalLM(Tiny(), seed: 21);
            using var c = new CausalLM(Tiny(), seed: 22);
            var wb = b.Weights().ToDictionary(w => w.Name, w => w.Tensor);
            var wc = c.Weights().ToDictionary(w => w.Name, w => w.Tensor);
            foreach (var (name, t) in a.Weights())
            {
                Assert.True(t.eq(wb[name]).all().item<bool>(), name);
                if (!name.EndsWith("norm.weight")) Assert.False(t.eq(wc[name]).all().item<bool>(), name);
            }
        }
        finally { stop.Cancel(); await noise; }
    }

    [Fact]
    public void Tied_model_has_no_lm_head_parameter()
    {
        using var model = new CausalLM(Tiny(tied: true), seed: 1);
        Assert.DoesNotContain(model.Weights(), w => w.Name == "lm_head.weight");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Padding_on_either_side_does_not_change_real_positions(bool left)
    {
        using var model = new CausalLM(Tiny(), seed: 5);
        using var scope = NewDisposeScope();
        long[] a = [1, 4, 6, 8, 3], b = [1, 9, 7];
        var alone = model.Forward(tensor(b).view(1, -1)).Logits;                    // (1, 3, V)
        long[] padded = left ? [0, 0, 1, 9, 7] : [1, 9, 7, 0, 0];
        long[] mask = left ? [0, 0, 1, 1, 1] : [1, 1, 1, 0, 0];
        var batch = stack([tensor(a), tensor(padded)]);
        var am = stack([ones(5, dtype: ScalarType.Int64), tensor(mask)]);
        var both = model.Forward(batch, am).Logits;                                // (2, 5, V)
        var fromBatch = both[1].narrow(0, left ? 2 : 0, 3);
        Assert.True(MaxAbsDiff(alone.squeeze(0), fromBatch) < 1e-5);
        var aAlone = model.Forward(tensor(a).view(1, -1)).Logits.squeeze(0);
        Assert.True(MaxAbsDiff(aAlone, both[0]) < 1e-5);
        Assert.False(both.isnan().any().item<bool>());
    }

    [Fact]
    public void Kv_cache_steps_give_the_logits_of_a_full_recompute()
    {
        using var model = new CausalLM(Tiny(kvHeads: 2), seed: 7);
        using var scope = NewDisposeScope();
        // Two left-padded rows; prefill 4 positions, then 4 single-token steps.
        var ids = tensor(new long[] { 0, 1, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7, 8 }).view(2, 8);
        var mask = tensor(new long[] { 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 }).view(2, 8);
        var full = model.Forward(ids, mask).Logits;                                // (2, 8, V)
        using var cache = model.CreateCache(2, 8);
        var pre = model.Forward(ids.narrow(1, 0, 4), mask.narrow(1, 0, 4), cache).Logits;
        Assert.True(MaxAbsDiff(pre, full.narrow(1, 0, 4)) < 1e-4);
        for (int t = 4; t < 8; t++)
        {
            var step = model.Forward(ids.narrow(1, t, 1), mask.narrow(1, 0, t + 1), cache).Logits;   // (2, 1, V)
            Assert.True(MaxAbsDiff(step, full.narrow(1, t, 1)) < 1e-4, $"step {t}");
        }
        Assert.Equal(8, cache.Length);
    }

    [Fact]
    public void Hidden_states_feed_a_scalar_head()
    {
        using var model = new CausalLM(Tiny(), seed: 2);
        using var head = new ScalarHead(16, initStd: 0.1);
        using var scope = NewDisposeScope();
        var output = model.Forward(tensor(new long[] { 1, 2, 3, 0, 4, 5, 6, 7 }).view(2, 4),
            tensor(new long[] { 1, 1, 1, 0, 1, 1, 1, 1 }).view(2, 4), returnHidden: true);
        Assert.NotNull(output.Hidden);
        Assert.Equal(new long[] { 2, 4, 16 }, output.Hidden!.shape);
        var values = head.forward(output.Hidden);                                  // (2, 4)
        var last = ScalarHead.AtLastToken(values, tensor(new long[] { 1, 1, 1, 0, 1, 1, 1, 1 }).view(2, 4));
        Assert.Equal(values[0, 2].item<float>(), last[0].item<float>());
        Assert.Equal(values[1, 3].item<float>(), last[1].item<float>());
    }
}
