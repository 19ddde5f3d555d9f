using Sharpen.Algorithms;
using Sharpen.Torch;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary>CPO, CPO-SimPO, SimPO with label smoothing, and KTO against values worked out by hand from the papers' formulas.</summary>
public class CpoAndKtoLossesTests
{
    // Summed policy log-probs: chosen [−2, −6] over [2, 3] tokens, rejected [−4, −3] over [2, 1] tokens.
    static PreferenceInput Pairs(float[]? rejected = null) => new(Vec(-2, -6).requires_grad_(true), Vec(rejected ?? [-4, -3]).requires_grad_(true),
        null, null, Lengths(2, 3), Lengths(2, 1));

    static Tensor Lengths(params long[] values)
    {
        TorchRuntime.EnsureLoaded();
        return tensor(values);
    }

    [Fact]
    public void Cpo_is_the_summed_log_sigmoid_margin_plus_the_length_averaged_chosen_nll()
    {
        using var scope = NewDisposeScope();
        // β = 0.5, α = 1. Pair 0: β(−2 − (−4)) = 1 → softplus(−1) = 0.3132617; NLL = 2/2 = 1 → 1.3132617.
        // Pair 1: β(−6 − (−3)) = −1.5 → softplus(1.5) = 1.7014132; NLL = 6/3 = 2 → 3.7014132. Mean 2.5073375.
        var x = Pairs();
        var (loss, m) = PreferenceLosses.Cpo(x, beta: 0.5, alpha: 1.0);
        Close(2.5073375, loss.item<float>());
        loss.backward();
        // ∂/∂πc_i = (−β σ(−z_i) − α/|c_i|)/B: (−0.5·0.2689414 − 0.5)/2 = −0.3172354; (−0.5·0.8175745 − 1/3)/2 = −0.3710603.
        // ∂/∂πr_i = β σ(−z_i)/B: 0.0672354, 0.2043936.
        Close([-0.3172354, -0.3710603], x.PolicyChosen.grad!);
        Close([0.0672354, 0.2043936], x.PolicyRejected.grad!);
        // Rewards β·log π: chosen [−1, −3], rejected [−2, −1.5]; only pair 0 is ordered right.
        Close(0.5, m.Accuracy); Close(-0.25, m.Margin); Close(-2.0, m.ChosenReward); Close(-1.75, m.RejectedReward);
    }

    [Fact]
    public void Cpo_label_smoothing_mixes_both_directions_of_the_preference_term()
    {
        using var scope = NewDisposeScope();
        // α = 0, ε = 0.2: 0.8·softplus(−1) + 0.2·softplus(1) = 0.5132617; 0.8·softplus(1.5) + 0.2·softplus(−1.5) = 1.4014132.
        var (loss, _) = PreferenceLosses.Cpo(Pairs(), beta: 0.5, alpha: 0.0, labelSmoothing: 0.2);
        Close(0.9573375, loss.item<float>());
    }

    [Fact]
    public void Simpo_with_label_smoothing_and_cpo_simpo_match_the_hand_values()
    {
        using var scope = NewDisposeScope();
        // Rejected [−4, −2] over [2, 1]: averages chosen [−1, −2], rejected [−2, −2]. β = 2, γ = 0.5:
        // z = [2·1 − 0.5, 2·0 − 0.5] = [1.5, −0.5]; ε = 0.1: 0.9·softplus(−z) + 0.1·softplus(z) → mean 0.6377451.
        var (simpo, _) = PreferenceLosses.SimPo(Pairs([-4, -2]), beta: 2, gamma: 0.5, labelSmoothing: 0.1);
        Close(0.6377451, simpo.item<float>());
        // ε = 0 is the paper's loss: mean(softplus(−1.5), softplus(0.5)) = (0.2014132 + 0.9740770)/2.
        var (plain, _) = PreferenceLosses.SimPo(Pairs([-4, -2]), beta: 2, gamma: 0.5);
        Close(0.5877451, plain.item<float>());
        // CPO-SimPO adds α·NLL of the chosen, α = 0.5: + 0.5·mean(1, 2) = + 0.75.
        var (cpoSimpo, _) = PreferenceLosses.CpoSimPo(Pairs([-4, -2]), beta: 2, gamma: 0.5, alpha: 0.5, labelSmoothing: 0.1);
        Close(1.3877451, cpoSimpo.item<float>());
    }

    [Fact]
    public void Cpo_and_cpo_simpo_are_registered_reference_free()
    {
        Assert.False(PreferenceLosses.Registry.Get("cpo").NeedsReference);
        Assert.False(PreferenceLosses.Registry.Get("cpo_simpo").NeedsReference);
        using var scope = NewDisposeScope();
        var c = new PreferenceCoefficients(Beta: 0.5, Alpha: 1.0);
        Close(2.5073375, PreferenceLosses.Registry.Get("cpo").Compute(Pairs(), c).Loss.item<float>());
    }

    [Fact]
    public void Kto_reference_point_is_the_clamped_detached_mean_log_ratio()
    {
        using var scope = NewDisposeScope();
        // mean(−2 − (−3), −3 − (−3.5)) = mean(1, 0.5) = 0.75.
        var p = Vec(-2, -3).requires_grad_(true);
        var z = UnpairedLosses.KtoReferencePoint(p, Vec(-3, -3.5f));
        Close(0.75, z.item<float>());
        Assert.False(z.requires_grad);
        // A negative estimate is clamped to 0: −4 − (−3) = −1 → 0.
        Close(0.0, UnpairedLosses.KtoReferencePoint(Vec(-4), Vec(-3)).item<float>());
    }

    [Fact]
    public void Kto_loss_gradients_and_metrics_match_the_hand_values()
    {
        using var scope = NewDisposeScope();
        // β = 0.5, λ_D = 1, λ_U = 2, z₀ = 0.2; r = policy − reference = [1, −1, 0]; desirable [T, F, T].
        //   row 0 (D): 1·(1 − σ(0.5·(1 − 0.2)))  = 1 − σ(0.4)
        //   row 1 (U): 2·(1 − σ(0.5·(0.2 + 1)))  = 2·(1 − σ(0.6))
        //   row 2 (D): 1·(1 − σ(0.5·(0 − 0.2)))  = 1 − σ(−0.1)
        //   mean = 0.5449930
        var policy = Vec(-2, -5, -3).requires_grad_(true);
        var x = new KtoInput(policy, Vec(-3, -4, -3), tensor(new[] { true, false, true }), tensor(0.2f));
        var (loss, m) = UnpairedLosses.Kto(x, beta: 0.5, desirableWeight: 1, undesirableWeight: 2);
        Close(0.5449930, loss.item<float>());
        loss.backward();
        // ∂/∂r_i = −λ_i β s_i σ'(β s_i (r_i − z₀))/B with s = +1 (D) / −1 (U): −0.0400435, +0.0762614, −0.0415627.
        Close([-0.0400435, 0.0762614, -0.0415627], policy.grad!);
        // Rewards β·r: desirable mean(0.5, 0) = 0.25, undesirable −0.5.
        Close(0.25, m.DesirableReward); Close(-0.5, m.UndesirableReward); Close(0.2, m.ReferencePoint);
        Assert.Equal(2, m.Desirable); Assert.Equal(1, m.Undesirable);
    }

    [Fact]
    public void Kto_does_not_backpropagate_through_the_reference_point()
    {
        using var scope = NewDisposeScope();
        var z0 = tensor(0.3f).requires_grad_(true);
        var x = new KtoInput(Vec(-1).requires_grad_(true), Vec(-1), tensor(new[] { true }), z0);
        var (loss, _) = UnpairedLosses.Kto(x, beta: 1.0);
        loss.backward();
        Assert.Null(z0.grad);
    }
}
