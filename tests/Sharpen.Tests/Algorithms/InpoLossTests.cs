using Sharpen.Algorithms;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary>INPO's loss against values worked out by hand from its formula, and its reduction to IPO when η = τ.</summary>
public class InpoLossTests
{
    // Summed log-probs. Policy: chosen [−2, −1], rejected [−4, −1]; reference: [−3, −2] / [−3, −1]; previous iterate: [−2.5, −1] / [−3.5, −2].
    static PreferenceInput Pairs() => new(Vec(-2, -1).requires_grad_(true), Vec(-4, -1).requires_grad_(true), Vec(-3, -2), Vec(-3, -1),
        PreviousChosen: Vec(-2.5f, -1), PreviousRejected: Vec(-3.5f, -2));

    [Fact]
    public void Inpo_loss_gradient_and_metrics_by_hand()
    {
        using var scope = NewDisposeScope();
        // τ = 0.05, η = 0.1: weights τ/η = 0.5 on the reference, (η − τ)/η = 0.5 on π_t; target 1/(2η) = 5.
        //   pair 0: chosen −2 − 0.5(−3) − 0.5(−2.5) = 0.75; rejected −4 − 0.5(−3) − 0.5(−3.5) = −0.75; h = 1.5; (1.5 − 5)² = 12.25
        //   pair 1: chosen −1 − 0.5(−2) − 0.5(−1) = 0.5;    rejected −1 − 0.5(−1) − 0.5(−2)   = 0.5;   h = 0;   (0 − 5)² = 25
        //   mean 18.625
        var x = Pairs();
        var (loss, m) = PreferenceLosses.Inpo(x, tau: 0.05, eta: 0.1);
        Close(18.625, loss.item<float>(), 1e-4);
        loss.backward();
        // ∂/∂πc_i = 2(h_i − 5)/B = [−3.5, −5]; ∂/∂πr_i = [3.5, 5].
        Close([-3.5, -5.0], x.PolicyChosen.grad!);
        Close([3.5, 5.0], x.PolicyRejected.grad!);
        // Rewards: chosen [0.75, 0.5], rejected [−0.75, 0.5]: one strict win, margin mean 0.75.
        Close(0.5, m.Accuracy); Close(0.75, m.Margin); Close(0.625, m.ChosenReward); Close(-0.125, m.RejectedReward);
    }

    [Fact]
    public void Inpo_with_eta_equal_to_tau_is_ipo()
    {
        using var scope = NewDisposeScope();
        // (η − τ)/η = 0: the previous iterate drops out and h is IPO's log-ratio difference with target 1/(2τ).
        var (inpo, _) = PreferenceLosses.Inpo(Pairs(), tau: 0.2, eta: 0.2);
        var (ipo, _) = PreferenceLosses.Ipo(Pairs(), tau: 0.2);
        Close(ipo.item<float>(), inpo.item<float>());
    }

    [Fact]
    public void Inpo_needs_the_previous_iterate_and_tau_at_most_eta()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentOutOfRangeException>(() => PreferenceLosses.Inpo(Pairs(), tau: 0.2, eta: 0.1));
        var noPrevious = Pairs() with { PreviousChosen = null };
        Assert.Throws<ArgumentException>(() => PreferenceLosses.Inpo(noPrevious, tau: 0.05, eta: 0.1));
        var entry = PreferenceLosses.Registry.Get("inpo");
        Assert.True(entry.NeedsPrevious && entry.OnlineOnly && entry.NeedsReference);
        Assert.DoesNotContain("inpo", PreferenceLosses.Names);   // offline recipes cannot name it
    }
}
