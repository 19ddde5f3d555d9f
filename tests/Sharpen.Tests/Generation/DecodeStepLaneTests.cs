using Sharpen.Models;
using Sharpen.Tests.Models;
using static TorchSharp.torch;

namespace Sharpen.Tests.Generation;

/// <summary>The decode step lane of <see cref="DecodeSession"/> (one token per row, fewer native calls) against the general
/// step of the same session type, which the reference-path tests in <see cref="DecodeFastPathTests"/> already check.</summary>
public class DecodeStepLaneTests
{
    static CausalLM Model(string type, bool tied, int kvHeads)
    {
        var model = new CausalLM(CausalLMTests.Tiny(type, tied, kvHeads) with { InitializerRange = 0.5 }, seed: 11);
        if (type == "qwen2")
        {
            using var _ = no_grad();
            foreach (var (name, t) in model.Weights().Where(w => w.Name.EndsWith(".bias"))) t.normal_(0, 0.5);   // biases matter
        }
        return model;
    }

    // Runs `steps` greedy decode steps of two sessions over the same prompts (left-padded when `padded`), one through the lane
    // and one through the general path, feeding both the lane's arg-max; returns the largest logit difference and the tensors
    // one lane step and one general step create.
    static (double MaxDiff, int LaneTensors, int GeneralTensors) Compare(CausalLM model, bool padded, int steps = 12)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        model.eval();
        long b = 3, p = 5;
        var mask = padded ? tensor(new long[] { 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1 }).view(b, p) : ones(b, p, dtype: ScalarType.Int64);
        var ids = randint(3, 13, [b, p], generator: new Generator(4)) * mask;             // padding id 0
        using var lane = model.StartDecoding(b, p + steps + 1);
        using var general = model.StartDecoding(b, p + steps + 1);
        general.ForceGeneralStep = true;
        Assert.True(lane.HasStepLane);
        var a = lane.Prefill(ids, mask);
        var g = general.Prefill(ids, mask);
        double maxDiff = (a - g).abs().max().item<float>();
        int laneTensors = 0, generalTensors = 0;
        for (int s = 0; s < steps; s++)
        {
            var next = a.argmax(-1).view(b, 1);
            int before = scope.DisposablesCount;
            a = lane.Step(next);
            laneTensors = scope.DisposablesCount - before;
            before = scope.DisposablesCount;
            g = general.Step(next);
            generalTensors = scope.DisposablesCount - before;
            maxDiff = Math.Max(maxDiff, (a - g).abs().max().item<float>());
        }
        return (maxDiff, laneTensors, generalTensors);
    }

    [Theory]
    [InlineData("llama", false, 4, false)]
    [InlineData("llama", false, 2, true)]
    [InlineData("llama", true, 1, true)]
    [InlineData("qwen2", true, 2, true)]
    [InlineData("qwen3", false, 2, true)]
    public void Lane_steps_give_the_general_steps_logits_to_float_rounding(string type, bool tied, int kvHeads, bool padded)
    {
        using var model = Model(type, tied, kvHeads);
        var (diff, _, _) = Compare(model, padded);
        Assert.True(diff < 1e-5, $"largest logit difference {diff}");
    }

    [Fact]
    public void A_lane_step_of_a_llama_creates_26_tensors_per_layer_and_10_more()
    {
        // Counted by hand from StepLane/LaneLayer for a Llama layer without bias or q/k norm: RMSNorm 3 (square, mean, mul;
        // add_/rsqrt_/mul_ are in place) twice, q/k/v mm + view 2, q/k narrow 1, rotary 2 (mul, roll; addcmul_ in place),
        // cache writes 4 (select + narrow for k and v), query narrow + view 2, keys/values narrows + sdpa 3, reshape + addmm 2,
        // gate/up mm 1, gate and up narrows 2 (silu_/mul_ in place), down addmm 1. Per step: cos/sin lookups + views 4, ids view +
        // embedding 2, final RMSNorm 3 + head mm 1.
        using var model = Model("llama", false, 2);
        var (_, lane, general) = Compare(model, padded: false, steps: 3);
        Assert.Equal(26 * 2 + 10, lane);
        Assert.True(general > lane, $"general step {general} tensors, lane {lane}");
    }

    [Fact]
    public void Models_with_soft_capping_sliding_windows_or_sandwich_norms_keep_the_general_step()
    {
        using var gemma2 = new CausalLM(CausalLMTests.Tiny("gemma2", false, 2) with { SlidingWindow = 4, AttnLogitSoftcapping = 50, FinalLogitSoftcapping = 30 }, seed: 1);
        using var session = gemma2.StartDecoding(1, 8);
        Assert.False(session.HasStepLane);
        using var mistral = new CausalLM(CausalLMTests.Tiny("mistral", false, 2) with { SlidingWindow = 4 }, seed: 1);
        using var slid = mistral.StartDecoding(1, 8);
        Assert.False(slid.HasStepLane);
        using var llama = new CausalLM(CausalLMTests.Tiny(), seed: 1);
        using (var budgeted = llama.StartDecoding(1, 8, new KvBudget(4, 2))) Assert.False(budgeted.HasStepLane);
    }

    // Prefill and `steps` greedy steps of two sessions over the same prompts, one with inference mode (the default) and one
    // without; returns the largest logit difference. Each returned logits tensor gets an in-place add outside inference mode,
    // which torch refuses for an inference tensor: callers (the rollout engine, the server) may modify the logits they get.
    static double CompareInferenceMode(CausalLM model, bool general, KvBudget? budget, int steps = 10)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        model.eval();
        long b = 2, p = 5;
        var mask = tensor(new long[] { 0, 1, 1, 1, 1, 1, 1, 1, 1, 1 }).view(b, p);
        var ids = randint(3, 13, [b, p], generator: new Generator(5)) * mask;
        using var inference = model.StartDecoding(b, p + steps + 1, budget);
        using var plain = model.StartDecoding(b, p + steps + 1, budget);
        Assert.True(inference.UseInferenceMode);
        plain.UseInferenceMode = false;
        inference.ForceGeneralStep = plain.ForceGeneralStep = general;
        var a = inference.Prefill(ids, mask).add_(0);
        var c = plain.Prefill(ids, mask);
        double maxDiff = (a - c).abs().max().item<float>();
        for (int s = 0; s < steps; s++)
        {
            var next = a.argmax(-1).view(b, 1);
            a = inference.Step(next).add_(0);
            c = plain.Step(next);
            maxDiff = Math.Max(maxDiff, (a - c).abs().max().item<float>());
        }
        return maxDiff;
    }

    [Theory]
    [InlineData("llama", false, 2, false, false)]
    [InlineData("llama", false, 2, true, false)]
    [InlineData("qwen2", true, 2, false, false)]
    [InlineData("qwen2", true, 2, true, false)]
    [InlineData("llama", false, 2, true, true)]   // H₂O: eviction (in-place scatter into the cache) runs inside inference mode
    public void Inference_mode_gives_the_same_logits_bit_for_bit(string type, bool tied, int kvHeads, bool general, bool budget)
    {
        using var model = Model(type, tied, kvHeads);
        double diff = CompareInferenceMode(model, general, budget ? new KvBudget(4, 2) : null);
        Assert.Equal(0.0, diff);
    }
}
