using Sharpen.Algorithms;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary><c>rl.scale_rewards</c> (group | batch | none) and <c>rl.group_by</c> (id groups) in GRPO and RLOO, worked by hand.</summary>
public class GroupScalingTests
{
    // Two groups of 2 consecutive rows: r = [1, 0 | 1, 1]. Group means 0.5 and 1 → centred [0.5, −0.5, 0, 0].
    // Batch: mean 0.75, Σ(r − 0.75)² = 0.0625 + 0.5625 + 0.0625 + 0.0625 = 0.75, unbiased var 0.75/3 = 0.25 → std 0.5.
    [Fact]
    public void Batch_scaling_divides_group_centred_rewards_by_the_batch_std()
    {
        using var scope = NewDisposeScope();
        var x = new GroupOutcomeInput(Vec(1, 0, 1, 1), ones(4, 1), 2);
        Close([0.5 / 0.500001, -0.5 / 0.500001, 0, 0], AdvantageEstimators.Grpo(x, RewardScaling.Batch).Advantages);
        Close([0.5, -0.5, 0, 0], AdvantageEstimators.Grpo(x, RewardScaling.None).Advantages);
        // Group: each group's own unbiased std, √(2·0.25/1) = 0.7071068 for [1, 0]; 0 for [1, 1] (0 / eps = 0).
        Close([0.7071058, -0.7071058, 0, 0], AdvantageEstimators.Grpo(x, RewardScaling.Group).Advantages);
    }

    // Six rows, ids [0,1,0,1,0,1]: group 0 = rows 0,2,4 with r = 1, 2, 0; group 1 = rows 1,3,5 with r = 0, 4, 3.
    // Group 0: mean 1, Σ dev² = 0 + 1 + 1 = 2, unbiased std √(2/2) = 1.
    // Group 1: mean 7/3, dev = −7/3, 5/3, 2/3, Σ dev² = 26/3, unbiased std √(13/3) = 2.0816660.
    // Batch of all six: mean 10/6, Σ dev² = 40/3, unbiased std √(8/3) = 1.6329932.
    static Tensor Ids() => tensor(new long[] { 0, 1, 0, 1, 0, 1 });
    static GroupOutcomeInput Interleaved() => new(Vec(1, 0, 2, 4, 0, 3), ones(6, 2), 3, Ids());

    static double[] Twice(params double[] perRow) => [.. perRow.SelectMany(v => new[] { v, v })];

    [Fact]
    public void Grpo_with_id_groups_centres_and_scales_within_the_rows_sharing_an_id()
    {
        using var scope = NewDisposeScope();
        const double s1 = 2.0816660, sb = 1.6329932;
        Close(Twice(0, (0 - 7.0 / 3) / s1, 1 / 1.000001, (4 - 7.0 / 3) / s1, -1 / 1.000001, (3 - 7.0 / 3) / s1),
            AdvantageEstimators.Grpo(Interleaved(), RewardScaling.Group).Advantages);
        Close(Twice(0, -7.0 / 3, 1, 5.0 / 3, -1, 2.0 / 3), AdvantageEstimators.Grpo(Interleaved(), RewardScaling.None).Advantages);
        Close(Twice(0, (-7.0 / 3) / sb, 1 / sb, (5.0 / 3) / sb, -1 / sb, (2.0 / 3) / sb),
            AdvantageEstimators.Grpo(Interleaved(), RewardScaling.Batch).Advantages);
    }

    [Fact]
    public void Rloo_with_id_groups_leaves_one_out_of_its_own_group()
    {
        using var scope = NewDisposeScope();
        // Group 0 (1, 2, 0): 1 − (2+0)/2 = 0, 2 − (1+0)/2 = 1.5, 0 − (1+2)/2 = −1.5.
        // Group 1 (0, 4, 3): 0 − 7/2 = −3.5, 4 − 3/2 = 2.5, 3 − 4/2 = 1.
        Close(Twice(0, -3.5, 1.5, 2.5, -1.5, 1), AdvantageEstimators.Rloo(Interleaved(), RewardScaling.None).Advantages);
        const double sb = 1.6329932;
        Close(Twice(0, -3.5 / sb, 1.5 / sb, 2.5 / sb, -1.5 / sb, 1 / sb), AdvantageEstimators.Rloo(Interleaved(), RewardScaling.Batch).Advantages);
        // A group of one row has no one to leave out.
        var lonely = new GroupOutcomeInput(Vec(1, 0, 2), ones(3, 1), 2, tensor(new long[] { 0, 0, 1 }));
        var e = Assert.Throws<ArgumentException>(() => AdvantageEstimators.Rloo(lonely, RewardScaling.None));
        Assert.Contains("at least 2 rows", e.Message);
    }

    [Fact]
    public void Id_groups_equal_to_consecutive_runs_give_the_consecutive_advantages()
    {
        using var scope = NewDisposeScope();
        var r = Vec(1, 0, 0, 1, 3, 2, 2, 5);
        var byRuns = AdvantageEstimators.Grpo(new GroupOutcomeInput(r, ones(8, 1), 4)).Advantages;
        var byIds = AdvantageEstimators.Grpo(new GroupOutcomeInput(r, ones(8, 1), 4, tensor(new long[] { 0, 0, 0, 0, 1, 1, 1, 1 }))).Advantages;
        Close([.. Values(byRuns).Select(v => (double)v)], byIds, 1e-6);
    }

    [Fact]
    public void Dense_group_ids_number_ids_by_first_appearance()
    {
        var (idx, k) = AdvantageEstimators.DenseGroupIds(["q7", "q2", "q7", "x", "q2"]);
        Assert.Equal([0L, 1, 0, 2, 1], idx);
        Assert.Equal(3, k);
    }
}
