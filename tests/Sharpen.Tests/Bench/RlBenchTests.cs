using Sharpen.Bench;

namespace Sharpen.Tests.Bench;

public class RlBenchTests
{
    [Fact]
    public void The_grpo_option_rows_are_grpo_with_one_option_changed()
    {
        var grpo = RlBench.OptionsFor("grpo", 90, seed: 1);
        var dynamic = RlBench.OptionsFor("grpo+dynamic", 90, seed: 1);
        var entropy = RlBench.OptionsFor("grpo+entropy", 90, seed: 1);
        Assert.Equal(("grpo", false, 0.0), (grpo.Algorithm, grpo.DynamicSampling, grpo.EntropyCoefficient));
        Assert.Equal(grpo with { DynamicSampling = true }, dynamic);
        Assert.Equal(grpo with { EntropyCoefficient = 0.01 }, entropy);
        Assert.Equal(64, dynamic.PromptsPerIteration * dynamic.SamplesPerPrompt);   // 16 prompts × 4, as plain GRPO
        Assert.Equal("grpo", RlBench.BaseAlgorithm("grpo+dynamic"));
        Assert.Equal(["ppo", "remax", "grpo", "rloo", "reinforce", "grpo+dynamic", "grpo+entropy"], RlBench.Algorithms);
        Assert.False(RlBench.OptionsFor("ppo", 90, seed: 1).DynamicSampling);
    }
}
