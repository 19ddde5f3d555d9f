using Sharpen.Bench;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Search;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Search;

/// <summary>The inference FLOP accounting of the policy-size axis (<see cref="FlopCountingPolicy"/>, <see cref="SearchSizesBench"/>), by hand.</summary>
public class FlopCountingPolicyTests
{
    [Fact]
    public void Forward_parameters_are_the_layers_the_final_norm_and_the_head_but_not_the_embedding_lookup()
    {
        // Tiny: V 13, d 16, 4 heads × 4, 2 kv heads × 4, intermediate 24, 2 layers, no biases.
        // attention 16·16 (q) + 2·16·8 (k, v) + 16·16 (o) = 768; MLP 3·16·24 = 1152; 2 norms 32 → 1952 per layer.
        // 2 layers 3904 + final norm 16 + head 13·16 = 208 → 4128; the embedding (another 208) is a lookup.
        var untied = CausalLMTests.Tiny();
        Assert.Equal(4128, FlopCountingPolicy.ForwardParametersOf(untied));
        Assert.Equal(4128 + 208, untied.ParameterCount());
        // Tied: the one table is the head's matmul, counted once.
        Assert.Equal(4128, FlopCountingPolicy.ForwardParametersOf(CausalLMTests.Tiny(tied: true)));
        // And the real module has exactly those parameters.
        using var model = new CausalLM(untied, 3);
        Assert.Equal(4128 + 208, model.ParameterCount());
    }

    [Fact]
    public void Flops_are_two_n_times_context_tokens_per_continuation_plus_generated_tokens()
    {
        var tok = CharTokenizer.Create("ab,.");
        using var model = new CausalLM(CausalLMTests.Tiny() with { VocabSize = tok.VocabSize, InitializerRange = 0.5 }, 7);
        var lm = new LmSearchPolicy(new RolloutEngine(model, tok), StepSplitter.OnDelimiters(","), temperature: 1.0, maxStepTokens: 6, maxTotalTokens: 12);
        var counter = new FlopCountingPolicy(lm, s => tok.Encode(s).Count, forwardParameters: 1000);
        var meter = new SearchMeter(new SearchBudget(1000));
        ContinuationRequest[] requests = [new("ab", "", 8, OneStep: true, 6), new("ab", "a,", 4, OneStep: false, 12)];
        var outs = counter.Sample(requests, 5, meter);

        // Context: BOS + characters, once per continuation: 8 × |BOS a b| + 4 × |BOS a b a ,| = 8·3 + 4·5 = 44.
        Assert.Equal(44, counter.ContextTokens);
        long generated = outs.SelectMany(o => o).Sum(c => (long)c.Tokens);
        Assert.True(generated > 0);
        Assert.Equal(generated, counter.GeneratedTokens);
        Assert.Equal(2.0 * 1000 * (44 + generated), counter.Flops);
        // The wrapped policy's continuations pass through unchanged (same seed, same samples).
        var direct = new LmSearchPolicy(new RolloutEngine(model, tok), StepSplitter.OnDelimiters(","), temperature: 1.0, maxStepTokens: 6, maxTotalTokens: 12)
            .Sample(requests, 5, new SearchMeter(new SearchBudget(1000)));
        Assert.Equal(direct.SelectMany(o => o).Select(c => c.Text), outs.SelectMany(o => o).Select(c => c.Text));

        // A second call adds; Reset forgets.
        counter.Sample([new("b", "", 2, OneStep: true, 6)], 6, meter);
        Assert.Equal(44 + 2 * 2, counter.ContextTokens);
        counter.Reset();
        Assert.Equal(0, counter.ContextTokens);
        Assert.Equal(0.0, counter.Flops);
    }

    [Fact]
    public void Equal_flop_budgets_give_the_smaller_policy_proportionally_more_tokens()
    {
        // Budget = 4 samples of 48 tokens of a policy with 1,000,000 forward parameters: 2·10⁶·192 = 3.84·10⁸ FLOPs.
        double flops = 2.0 * 1_000_000 * 48 * 4;
        Assert.Equal(192, SearchSizesBench.TokenBudget(flops, 1_000_000));
        // A policy 5× smaller gets 5× the tokens (960), one 3× smaller ⌊192·3⌋ = 576 (⌊3.84e8 / 666,668⌋ = 575 as N rounds up).
        Assert.Equal(960, SearchSizesBench.TokenBudget(flops, 200_000));
        Assert.Equal(575, SearchSizesBench.TokenBudget(flops, 333_334));
        Assert.Equal(1, SearchSizesBench.TokenBudget(1, 1_000_000));
    }
}
