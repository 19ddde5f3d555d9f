using Sharpen.Algorithms;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

public class DirectAdvantagePoTests
{
    [Fact]
    public void Monte_carlo_values_are_the_share_of_correct_rollouts()
    {
        var v = DirectAdvantagePo.MonteCarloValues(Mat(1, 3, 1, 0), Mat(1, 4, 4, 0));
        Close([0.75, 0.25, 0], v);
    }

    [Fact]
    public void Step_advantages_are_the_change_of_value_across_a_step()
    {
        var values = Mat(2, 0.5f, 0.75f, 1f, 0.4f, 0.2f, 0f);
        var mask = Mat(2, 1, 1, 1, 0);
        // Row 1: 0.75 − 0.5, 1 − 0.75. Row 2: 0.2 − 0.4, then a padded step.
        Close([0.25, 0.25, -0.2, 0], DirectAdvantagePo.StepAdvantages(values, mask));
        Assert.Throws<ArgumentException>(() => DirectAdvantagePo.StepAdvantages(Mat(2, 1, 2, 3, 4), mask));
    }

    [Fact]
    public void Step_log_probs_sum_the_tokens_of_each_step()
    {
        var lp = Leaf(2, -1, -2, -3, -4, -0.5f, -0.25f, -1, -1);
        var step = tensor(new long[] { 0, 0, 1, -1, 0, 1, 1, -1 }).reshape(2, 4);
        var s = DirectAdvantagePo.StepLogProbs(lp, step, steps: 2);
        Close([-3, -3, -0.5, -1.25], s);
        s.sum().backward();
        Close([1, 1, 1, 0, 1, 1, 1, 0], lp.grad!);   // tokens of no step get no gradient
    }

    [Fact]
    public void The_actor_loss_regresses_the_log_ratio_on_the_advantage_over_beta()
    {
        var logp = Leaf(1, -1.0f, -2.2f, 7f);
        var refLogp = Mat(1, -1.1f, -2.0f, 0f);
        var adv = Mat(1, 0.3f, -0.1f, 9f);
        var mask = Mat(1, 1, 1, 0);
        var loss = DirectAdvantagePo.ActorLoss(logp, refLogp, adv, mask, beta: 0.5);
        // log-ratios 0.1 and −0.2; A/β = 0.6 and −0.2; errors −0.5 and 0 → (0.25 + 0)/2 = 0.125; the padded step is ignored.
        Close(0.125, loss.item<float>());
        loss.backward();
        Close([2 * -0.5 / 2, 0, 0], logp.grad!);      // ∂/∂log π = 2·err/n
        // At the optimum the loss is 0: log π_θ = log π_ref + A/β.
        var opt = DirectAdvantagePo.ActorLoss(refLogp + adv / 0.5, refLogp, adv, mask, beta: 0.5);
        Close(0, opt.item<float>());
        Assert.Throws<ArgumentOutOfRangeException>(() => DirectAdvantagePo.ActorLoss(logp, refLogp, adv, mask, beta: 0));
    }
}
