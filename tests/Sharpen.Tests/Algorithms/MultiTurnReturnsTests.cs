using Sharpen.Algorithms;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

public class MultiTurnReturnsTests
{
    [Fact]
    public void Reward_to_go_over_turns_by_hand()
    {
        // γ = 0.5: G2 = 1, G1 = 0.5 + 0.5·1 = 1, G0 = 0 + 0.5·1 = 0.5.
        Assert.Equal([0.5, 1.0, 1.0], MultiTurnReturns.RewardToGo([0, 0.5, 1], 0.5));
        Assert.Equal([1.5, 1.5, 1.0], MultiTurnReturns.RewardToGo([0, 0.5, 1]));
        Assert.Empty(MultiTurnReturns.RewardToGo([]));
        Assert.Throws<ArgumentOutOfRangeException>(() => MultiTurnReturns.RewardToGo([1], 1.5));
    }

    [Fact]
    public void Turn_rewards_sit_on_each_turns_last_token()
    {
        var r = MultiTurnReturns.PlaceTurnRewards(10, [4, 9], [0.25, 1.0]);
        Assert.Equal([0f, 0, 0, 0, 0.25f, 0, 0, 0, 0, 1f], r);
        Assert.Throws<ArgumentOutOfRangeException>(() => MultiTurnReturns.PlaceTurnRewards(5, [5], [1]));
        Assert.Throws<ArgumentException>(() => MultiTurnReturns.PlaceTurnRewards(5, [3, 2], [1, 1]));
        Assert.Throws<ArgumentException>(() => MultiTurnReturns.PlaceTurnRewards(5, [3], [1, 1]));
    }

    [Theory]
    [InlineData(0.0, 1.0, 10.0, 11.0)]    // wrong → right: 1 + 10·(1 − 0)
    [InlineData(1.0, 0.0, 10.0, -10.0)]   // right → wrong: 0 + 10·(0 − 1)
    [InlineData(1.0, 1.0, 10.0, 1.0)]     // no change: no bonus
    [InlineData(0.0, 1.0, 0.0, 1.0)]      // α = 0: stage I's plain second-attempt reward
    public void Score_shaped_reward_by_hand(double r1, double r2, double alpha, double expected) =>
        Assert.Equal(expected, MultiTurnReturns.ScoreShapedReward(r1, r2, alpha));

    [Fact]
    public void Refuel_loss_by_hand()
    {
        // η = 2. Pair 1: ln-ratio(y) = −1 − (−2) = 1, ln-ratio(y′) = −3 − (−2.5) = −0.5, (1 − (−0.5))/2 = 0.75; Q̂ diff 1 − 0 = 1 → 0.0625.
        // Pair 2: both ratios 0, Q̂ diff 0 → 0. Mean 0.03125.
        using var scope = NewDisposeScope();
        var loss = MultiTurnReturns.RefuelLoss(tensor(new[] { -1f, -4f }), tensor(new[] { -2f, -4f }), tensor(new[] { -3f, -1f }),
            tensor(new[] { -2.5f, -1f }), tensor(new[] { 1f, 0.5f }), tensor(new[] { 0f, 0.5f }), eta: 2);
        Assert.Equal(0.03125, loss.item<float>(), 6);
        // Its gradient w.r.t. ln π_θ(y) of pair 1: 2·(0.75 − 1)·(1/η)/B = 2·(−0.25)·0.5/2 = −0.125.
        var lp = tensor(new[] { -1f, -4f }, requires_grad: true);
        MultiTurnReturns.RefuelLoss(lp, tensor(new[] { -2f, -4f }), tensor(new[] { -3f, -1f }), tensor(new[] { -2.5f, -1f }),
            tensor(new[] { 1f, 0.5f }), tensor(new[] { 0f, 0.5f }), eta: 2).backward();
        Assert.Equal(-0.125, lp.grad!.data<float>()[0], 6);
        Assert.Throws<ArgumentOutOfRangeException>(() => MultiTurnReturns.RefuelLoss(lp, lp, lp, lp, lp, lp, eta: 0));
    }
}
