using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Sharpen.Tests.Generation;

/// <summary>
/// q/k/v and gate/up parameters are row blocks of one fused matrix (<see cref="FusedLinear"/>) that the decode fast path uses
/// without copying: in-place updates (optimizer steps, edits) must reach it, a replaced parameter must make the fast path
/// fall back to copies, and the parameters must look to training exactly as before.
/// </summary>
public class FusedWeightsTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcdefghijk ");
    static readonly string[] Prompts = ["abc", "hello", "k", "badge jab"];
    static readonly SamplingOptions Greedy = new() { Temperature = 0, MaxNewTokens = 10, StopAtEos = false };

    static CausalLM Model(string type = "llama", bool tied = false) =>
        new(CausalLMTests.Tiny(type, tied, 2) with { VocabSize = Tok.VocabSize, InitializerRange = 0.5 }, seed: 5);

    static Attention Attn(CausalLM m, int layer = 0) => m.Stack.Layers[layer].Attn;

    // The fast path's greedy tokens and log-probs against the reference path (CausalLM.Forward with a KV cache, which reads
    // the parameters themselves).
    static void FastMatchesReference(RolloutEngine engine)
    {
        var fast = engine.Generate(Prompts, Greedy);
        var reference = engine.Generate(Prompts, Greedy with { FastDecode = false });
        for (int i = 0; i < fast.Count; i++)
        {
            Assert.Equal(reference[i].CompletionIds, fast[i].CompletionIds);
            for (int t = 0; t < fast[i].LogProbs.Length; t++)
                Assert.True(Math.Abs(reference[i].LogProbs[t] - fast[i].LogProbs[t]) < 1e-4, $"sequence {i} token {t}: {reference[i].LogProbs[t]} vs {fast[i].LogProbs[t]}");
        }
    }

    [Theory]
    [InlineData("llama", false)]
    [InlineData("qwen2", true)]
    public void Parameters_are_views_of_the_fused_matrix_with_the_same_names_and_shapes(string type, bool tied)
    {
        using var model = Model(type, tied);
        var c = model.Config;
        var names = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        Assert.Equal([4L * 4, 16], names["model.layers.0.self_attn.q_proj.weight"]);      // 4 heads × head_dim 4
        Assert.Equal([2L * 4, 16], names["model.layers.0.self_attn.k_proj.weight"]);
        Assert.Equal([2L * 4, 16], names["model.layers.0.self_attn.v_proj.weight"]);
        Assert.Equal([24L, 16], names["model.layers.1.mlp.up_proj.weight"]);
        var attn = Attn(model);
        Assert.True(attn.Qkv.Intact);
        Assert.Equal([32L, 16], attn.Qkv.Weight.shape);                                   // 16 + 8 + 8 rows
        Assert.Equal(type == "qwen2", attn.Qkv.Bias is not null);
        // Rows 16..23 of the fused matrix are k_proj's weight, element for element.
        var k = attn.Projections().First(p => p.Name == "k_proj").Linear.weight!;
        Assert.Equal(k.data<float>().ToArray(), attn.Qkv.Weight.narrow(0, 16, 8).contiguous().data<float>().ToArray());
        Assert.True(model.parameters().All(p => p.requires_grad && p.is_leaf));
        Assert.Equal(c.NumHiddenLayers, model.Stack.Layers.Count(l => l.Mlp.GateUp.Intact));
    }

    [Fact]
    public void An_optimizer_step_reaches_the_fused_matrix_and_the_fast_path()
    {
        using var model = Model();
        var engine = new RolloutEngine(model, Tok);
        var before = engine.Generate(Prompts, Greedy);
        var gate = model.Stack.Layers[1].Mlp.Projections().First(p => p.Name == "gate_proj").Linear.weight!;
        float fusedBefore = model.Stack.Layers[1].Mlp.GateUp.Weight[3, 5].item<float>();
        using var opt = optim.AdamW(model.parameters(), lr: 0.05);
        model.train();
        for (int step = 0; step < 3; step++)
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            var ids = tensor(Tok.Encode("badge jab").Select(i => (long)i).ToArray()).view(1, -1);
            var logits = model.Forward(ids).Logits;
            // Push every position towards token 3: a real gradient through q/k/v and gate/up.
            var loss = -logits.log_softmax(-1).select(-1, 3).mean();
            loss.backward();
            Assert.NotNull(gate.grad);
            Assert.True(gate.grad!.abs().sum().item<float>() > 0);
            opt.step();
        }
        model.eval();
        float fusedAfter = model.Stack.Layers[1].Mlp.GateUp.Weight[3, 5].item<float>();
        Assert.NotEqual(fusedBefore, fusedAfter);                                          // AdamW moved it (lr 0.05)
        Assert.Equal(gate[3, 5].item<float>(), fusedAfter);                                // the parameter is that element
        Assert.True(Attn(model).Qkv.Intact);
        FastMatchesReference(engine);
        Assert.NotEqual(before.Select(r => r.LogProbs[0]), engine.Generate(Prompts, Greedy).Select(r => r.LogProbs[0]));
    }

    [Fact]
    public void In_place_edits_and_loaded_weights_reach_the_fast_path()
    {
        using var model = Model("qwen2", true);
        var engine = new RolloutEngine(model, Tok);
        var before = engine.Generate(Prompts, Greedy);
        using (no_grad())
        {
            using var g = new Generator(3);
            foreach (var (_, w) in model.Weights()) w.add_(randn(w.shape, generator: g) * 0.3);   // as a test of served weights does
        }
        FastMatchesReference(engine);
        Assert.NotEqual(before.Select(r => r.LogProbs[0]), engine.Generate(Prompts, Greedy).Select(r => r.LogProbs[0]));

        using var other = new CausalLM(model.Config, seed: 11);
        using (NewDisposeScope()) model.LoadWeights(other.Weights().ToDictionary(w => w.Name, w => w.Tensor), "other");
        Assert.True(Attn(model).Qkv.Intact);
        var otherOut = new RolloutEngine(other, Tok).Generate(Prompts, Greedy);
        Assert.Equal(otherOut.Select(r => r.CompletionIds), engine.Generate(Prompts, Greedy).Select(r => r.CompletionIds));
        FastMatchesReference(engine);
    }

    [Fact]
    public void A_replaced_parameter_is_detected_and_the_fast_path_falls_back_to_copies()
    {
        using var model = Model();
        var engine = new RolloutEngine(model, Tok);
        var before = engine.Generate(Prompts, Greedy);
        var v = Attn(model, 1).Projections().First(p => p.Name == "v_proj").Linear;
        using (no_grad())
            v.weight = new TorchSharp.Modules.Parameter(v.weight!.detach().clone() + 0.5);   // a new tensor: no longer a view
        Assert.False(Attn(model, 1).Qkv.Intact);
        Assert.True(Attn(model, 0).Qkv.Intact);
        Assert.Null(Attn(model, 1).Qkv.Plain(Attn(model, 1).Adapters, "q_proj", "k_proj", "v_proj"));
        // The fused matrix still holds the old v rows, so using it would differ from the reference path.
        FastMatchesReference(engine);
        Assert.NotEqual(before.Select(r => r.LogProbs[0]), engine.Generate(Prompts, Greedy).Select(r => r.LogProbs[0]));
    }
}
