using System.Text.Json.Nodes;
using Sharpen.Bench;

namespace Sharpen.Tests.Bench;

/// <summary>The MaxMin bench's policy optimiser against closed forms, and a tiny end-to-end run.</summary>
public class MaxMinBenchTests
{
    [Fact]
    public void With_one_reward_model_the_optimiser_reaches_the_kl_regularised_optimum()
    {
        // max Σ π r − β KL(π ‖ uniform) has π ∝ exp(r/β): r = [0, 1, 0], β = 1 → [1, e, 1]/(2 + e).
        var p = MaxMinBench.Optimise([[0, 1, 0]], new MaxMinBenchOptions { Beta = 1, PolicySteps = 3000 });
        double z = 2 + Math.E;
        Assert.Equal(1 / z, p[0], 2e-3); Assert.Equal(Math.E / z, p[1], 2e-3); Assert.Equal(1 / z, p[2], 2e-3);
    }

    [Fact]
    public void With_two_conflicting_reward_models_the_max_min_policy_equalises_them()
    {
        // Arms a, b, c with group rewards r1 = [1, 0, 0.4], r2 = [0, 1, 0.4]: any policy with π(a) = π(b) = q has
        // min utility q + 0.4(1 − 2q), largest at q = ½ (0.5 > 0.4): the max-min policy splits between a and b.
        var p = MaxMinBench.Optimise([[1, 0, 0.4], [0, 1, 0.4]], new MaxMinBenchOptions { Beta = 0.01, PolicySteps = 3000 });
        Assert.Equal(p[0], p[1], 0.05);
        Assert.True(p[2] < 0.1, $"π(c) = {p[2]}");
    }

    [Fact]
    public void A_tiny_run_writes_rows_for_both_methods_and_the_run_files()
    {
        using var dir = new TempDir();
        var o = new MaxMinBenchOptions { Seeds = 1, MajorityUsers = 8, MinorityUsers = 2, ComparisonsPerUser = 10, PolicySteps = 200 };
        var result = MaxMinBench.Run(_ => { }, dir.Path, o);
        var rows = result["rows"]!.AsArray();
        Assert.Equal(["single_rm", "maxmin"], rows.Select(r => r!["method"]!.GetValue<string>()));
        Assert.All(rows, r => Assert.Equal(9, r!["policy"]!.AsArray().Count));
        Assert.True(File.Exists(Path.Combine(dir.Path, "metrics.jsonl")) && File.Exists(Path.Combine(dir.Path, "summary.json")));
        Assert.NotNull(result["claims"]!["minority_gain_percent"]);
    }
}
