using Sharpen.Algorithms;
using Sharpen.Training.Rl;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary>Trajectory balance and sub-trajectory balance (Flow of Reasoning, arXiv:2406.05673), worked by hand.</summary>
public class FlowBalanceTests
{
    // log Z = 0.5, log P_F = [−1, −2], log R = [0, −3]: δ = [−0.5, 1.5], loss = (0.25 + 2.25)/2 = 1.25, ∂/∂log Z = mean 2δ = 1.
    [Fact]
    public void Trajectory_balance_is_the_mean_squared_log_flow_mismatch()
    {
        using var scope = NewDisposeScope();
        var logZ = tensor(0.5f).requires_grad_(true);
        var loss = FlowBalance.TrajectoryBalance(logZ, Vec(-1, -2), Vec(0, -3));
        Close(1.25, loss.item<float>());
        loss.backward();
        Close(1.0, logZ.grad!.item<float>());
    }

    // A learned log Z trained by SGD on TB alone reaches the mean of log R − log P_F: [1, 3] → 2.
    [Fact]
    public void A_learned_log_z_converges_to_the_mean_of_log_r_minus_log_pf()
    {
        using var scope = NewDisposeScope();
        var logZ = nn.Parameter(tensor(0f));
        var opt = optim.SGD([logZ], 0.1);
        for (int i = 0; i < 200; i++)
        {
            opt.zero_grad();
            FlowBalance.TrajectoryBalance(logZ, Vec(-1, -2), Vec(0, 1)).backward();
            opt.step();
        }
        Close(2.0, logZ.item<float>(), 1e-4);
    }

    // Groups of 2: log R − log P_F = [1, −1 | 3, 1] → log Z* = [0, 0, 2, 2]; A = −δ = (log R − log P_F) − group mean = [1, −1, 1, −1].
    [Fact]
    public void Group_optimal_log_z_and_the_advantages_with_the_trajectory_balance_gradient()
    {
        using var scope = NewDisposeScope();
        var logR = Vec(0, -3, 0, 0);
        Close([0, 0, 2, 2], FlowBalance.OptimalLogZ(Vec(-1, -2, -3, -1), logR, 2));
        var (adv, seq) = FlowBalance.TrajectoryBalanceAdvantages(Vec(-1, -2, -3, -1), logR, ones(4, 3), 2);
        Close([1, -1, 1, -1], seq);
        Close([1, 1, 1, -1, -1, -1, 1, 1, 1, -1, -1, -1], adv);
        // ∇ TB(log Z*, log P_F, log R) w.r.t. log P_F = 2δ/B = −2A/B (log Z* held fixed).
        var logPf = Vec(-1, -2, -3, -1).requires_grad_(true);
        FlowBalance.TrajectoryBalance(FlowBalance.OptimalLogZ(logPf, logR, 2), logPf, logR).backward();
        Close([-0.5, 0.5, -0.5, 0.5], logPf.grad!);
    }

    // One row, two steps: log F = [0, −0.5, 1], log P_F = [−1, −0.2]. Pairs (0,1): 0 − 1 + 0.5 = −0.5; (0,2): −1.2 − 1 = −2.2;
    // (1,2): −0.5 − 0.2 − 1 = −1.7. λ = 1: (0.25 + 4.84 + 2.89)/3 = 2.66. λ = 0.5: (0.5·0.25 + 0.25·4.84 + 0.5·2.89)/1.25 = 2.224.
    // A second row with one real step: log F = [0, 2, 9], log P_F = [−1, 5], mask [1, 0] → only (0,1): (0 − 1 − 2)² = 9.
    [Fact]
    public void Sub_trajectory_balance_weights_every_sub_trajectory_by_lambda_to_its_length()
    {
        using var scope = NewDisposeScope();
        Close(2.66, FlowBalance.SubTrajectoryBalance(Mat(1, 0, -0.5f, 1), Mat(1, -1, -0.2f), ones(1, 2), 1.0).item<float>(), 1e-5);
        Close(2.224, FlowBalance.SubTrajectoryBalance(Mat(1, 0, -0.5f, 1), Mat(1, -1, -0.2f), ones(1, 2), 0.5).item<float>(), 1e-5);
        Close((2.66 + 9) / 2, FlowBalance.SubTrajectoryBalance(Mat(2, 0, -0.5f, 1, 0, 2, 9), Mat(2, -1, -0.2f, -1, 5), Mat(2, 1, 1, 1, 0), 1.0).item<float>(), 1e-5);
    }

    // The registered estimator: R = exp(r/β) with β = 0.5, r = [1, 0], log π = [−1, −2] (token sums): log R − log π = [3, 2],
    // group mean 2.5 → A = [0.5, −0.5]; equal rewards still carry signal through log π.
    [Fact]
    public void Trajectory_balance_estimator_uses_the_rollout_log_probs_and_the_reward_temperature()
    {
        using var scope = NewDisposeScope();
        var ctx = new AdvantageContext(Vec(1, 0), ones(2, 2), 2, zeros(2, 2), 0.5, false, null, null, new MovingAverageBaseline(0.9),
            1, 1, RewardScaling.None, OldLogProbs: Mat(2, -0.5f, -0.5f, -1, -1));
        var est = AdvantageEstimators.Registry.Get("trajectory_balance").Estimate(ctx);
        Close([0.5, 0.5, -0.5, -0.5], est.Advantages);
        Assert.Equal("flow_of_reasoning", RlAlgorithms.Get("flow_of_reasoning").Name);
        Assert.Contains("samples_per_prompt", Assert.Throws<ArgumentException>(() => (RlOptions.For("flow_of_reasoning") with { SamplesPerPrompt = 1 }).Validate()).Message);
    }
}
