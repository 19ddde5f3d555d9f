using Sharpen.Algorithms;
using Sharpen.Torch;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

public class PreferenceLossesTests
{
    /// <summary>Token counts as an int64 vector.</summary>
    static Tensor Lengths(params long[] values)
    {
        TorchRuntime.EnsureLoaded();
        return tensor(values);
    }

    /// <summary>
    /// The B = 2 batch used by the reference-based losses. Log-ratios (π − ref):
    ///   pair 0: chosen −2 − (−3) = +1, rejected −4 − (−3) = −1 → h = 2
    ///   pair 1: chosen −5 − (−4) = −1, rejected −3 − (−3) =  0 → h = −1
    /// </summary>
    static PreferenceInput Pairs() => new(Vec(-2, -5).requires_grad_(true), Vec(-4, -3).requires_grad_(true), Vec(-3, -4), Vec(-3, -3));

    static PreferenceInput Leaves(out Tensor chosen, out Tensor rejected, float[] pc, float[] pr, float[]? rc, float[]? rr,
        long[]? lc = null, long[]? lr = null)
    {
        chosen = Vec(pc).requires_grad_(true);
        rejected = Vec(pr).requires_grad_(true);
        return new PreferenceInput(chosen, rejected, rc is null ? null : Vec(rc), rr is null ? null : Vec(rr),
            lc is null ? null : Lengths(lc), lr is null ? null : Lengths(lr));
    }

    [Fact]
    public void Dpo_with_policy_equal_to_reference_is_ln_2_for_any_beta()
    {
        using var scope = NewDisposeScope();
        // h = 0 for every pair → −log σ(0) = ln 2 = 0.6931472, whatever β. Rewards all 0: accuracy 0 (not strictly >), margin 0.
        foreach (var beta in new[] { 0.1, 1.0, 5.0 })
        {
            var x = new PreferenceInput(Vec(-3, -5), Vec(-4, -2), Vec(-3, -5), Vec(-4, -2));
            var (loss, metrics) = PreferenceLosses.Dpo(x, beta);
            Close(0.6931472, loss.item<float>());
            Assert.Equal(new PreferenceMetrics(0, 0, 0, 0), metrics);
        }
    }

    [Fact]
    public void Dpo_on_two_pairs_with_metrics_and_gradient_signs()
    {
        using var scope = NewDisposeScope();
        // β = 0.5, h = [2, −1] (see Pairs): βh = [1, −0.5].
        //   pair 0: softplus(−1)  = ln(1 + e^−1)  = ln 1.3678794 = 0.3132617
        //   pair 1: softplus(0.5) = ln(1 + e^0.5) = ln 2.6487213 = 0.9740770
        //   mean = 1.2873387 / 2 = 0.6436693
        var x = Pairs();
        var (loss, metrics) = PreferenceLosses.Dpo(x, beta: 0.5);
        Close(0.6436693, loss.item<float>());
        // d loss / d πc_i = −β σ(−βh_i) / B, d loss / d πr_i = +β σ(−βh_i) / B:
        //   pair 0: σ(−1) = 0.2689414 → ∓0.5·0.2689414/2 = ∓0.0672354
        //   pair 1: σ(0.5) = 0.6224593 → ∓0.5·0.6224593/2 = ∓0.1556148
        loss.backward();
        Close([-0.0672354, -0.1556148], x.PolicyChosen.grad!);
        Close([0.0672354, 0.1556148], x.PolicyRejected.grad!);
        Assert.All(Values(x.PolicyChosen.grad!), g => Assert.True(g < 0));    // raises the chosen log-prob
        Assert.All(Values(x.PolicyRejected.grad!), g => Assert.True(g > 0));  // lowers the rejected log-prob
        // Rewards β·(π − ref): chosen [0.5, −0.5] → mean 0; rejected [−0.5, 0] → mean −0.25;
        // margins [1, −0.5] → mean 0.25; only pair 0 has chosen > rejected → accuracy 0.5.
        Close(0.5, metrics.Accuracy);
        Close(0.25, metrics.Margin);
        Close(0.0, metrics.ChosenReward);
        Close(-0.25, metrics.RejectedReward);
    }

    [Fact]
    public void Cdpo_and_rdpo_with_zero_noise_are_exactly_dpo()
    {
        using var scope = NewDisposeScope();
        // ε = 0: cDPO = 1·softplus(−βh) + 0·softplus(βh) and rDPO = (1·softplus(−βh) − 0)/1, both bit-for-bit DPO.
        var dpo = PreferenceLosses.Dpo(Pairs(), 0.5);
        var cdpo = PreferenceLosses.CDpo(Pairs(), 0.5, labelSmoothing: 0);
        var rdpo = PreferenceLosses.RDpo(Pairs(), 0.5, flipRate: 0);
        Assert.Equal(dpo.Loss.item<float>(), cdpo.Loss.item<float>());
        Assert.Equal(dpo.Loss.item<float>(), rdpo.Loss.item<float>());
        Assert.Equal(dpo.Metrics, cdpo.Metrics);
        Assert.Equal(dpo.Metrics, rdpo.Metrics);
    }

    [Fact]
    public void Cdpo_smooths_the_label()
    {
        using var scope = NewDisposeScope();
        // β = 0.5, ε = 0.25, βh = [1, −0.5]; per pair 0.75·softplus(−βh) + 0.25·softplus(βh):
        //   pair 0: 0.75·0.3132617 + 0.25·1.3132617 = 0.2349463 + 0.3283154 = 0.5632617
        //   pair 1: 0.75·0.9740770 + 0.25·0.4740770 = 0.7305577 + 0.1185193 = 0.8490770
        //   mean = 1.4123387 / 2 = 0.7061693
        var (loss, metrics) = PreferenceLosses.CDpo(Pairs(), beta: 0.5, labelSmoothing: 0.25);
        Close(0.7061693, loss.item<float>());
        Close(0.5, metrics.Accuracy);   // same rewards as DPO
        Close(0.25, metrics.Margin);
    }

    [Fact]
    public void Rdpo_debiases_for_flipped_labels()
    {
        using var scope = NewDisposeScope();
        // β = 0.5, ε = 0.25, βh = [1, −0.5]; per pair [0.75·softplus(−βh) − 0.25·softplus(βh)] / 0.5:
        //   pair 0: (0.2349463 − 0.3283154) / 0.5 = −0.0933692 / 0.5 = −0.1867383
        //   pair 1: (0.7305577 − 0.1185193) / 0.5 =  0.6120385 / 0.5 =  1.2240770
        //   mean = 1.0373387 / 2 = 0.5186693
        var x = Pairs();
        var (loss, metrics) = PreferenceLosses.RDpo(x, beta: 0.5, flipRate: 0.25);
        Close(0.5186693, loss.item<float>());
        // d/dz of [(1−ε)softplus(−z) − ε softplus(z)]/(1−2ε) = [−(1−ε)σ(−z) − εσ(z)]/(1−2ε); times β/B for πc:
        //   pair 0, z = 1:    [−0.75·0.2689414 − 0.25·0.7310586]/0.5 = (−0.2017061 − 0.1827647)/0.5 = −0.7689414 → ·0.25 = −0.1922354
        //   pair 1, z = −0.5: [−0.75·0.6224593 − 0.25·0.3775407]/0.5 = (−0.4668445 − 0.0943852)/0.5 = −1.1224593 → ·0.25 = −0.2806148
        loss.backward();
        Close([-0.1922354, -0.2806148], x.PolicyChosen.grad!);
        Close(0.5, metrics.Accuracy);
    }

    [Fact]
    public void Ipo_is_zero_with_zero_gradient_at_its_target()
    {
        using var scope = NewDisposeScope();
        // τ = 0.25 → target 1/(2τ) = 2. πc − rc = −1 − (−2) = 1, πr − rr = −3 − (−2) = −1 → h = 2: loss (2 − 2)² = 0,
        // d loss / d h = 2(h − 2) = 0, so both policy gradients are 0.
        var x = Leaves(out var pc, out var pr, [-1], [-3], [-2], [-2]);
        var (loss, _) = PreferenceLosses.Ipo(x, tau: 0.25);
        Close(0.0, loss.item<float>());
        loss.backward();
        Close([0.0], pc.grad!);
        Close([0.0], pr.grad!);
    }

    [Fact]
    public void Ipo_on_two_pairs_uses_the_summed_log_ratios()
    {
        using var scope = NewDisposeScope();
        // τ = 0.25, target 2, h = [2, −1]: losses (2 − 2)² = 0 and (−1 − 2)² = 9 → mean 4.5.
        // d loss / d πc_i = 2(h_i − 2)/B = [0, −3]; d loss / d πr_i = [0, 3].
        var x = Pairs();
        var (loss, metrics) = PreferenceLosses.Ipo(x, tau: 0.25);
        Close(4.5, loss.item<float>());
        loss.backward();
        Close([0, -3], x.PolicyChosen.grad!);
        Close([0, 3], x.PolicyRejected.grad!);
        // Rewards τ·(π − ref): chosen 0.25·[1, −1] → mean 0; rejected 0.25·[−1, 0] → mean −0.125;
        // margins [0.5, −0.25] → mean 0.125; accuracy 0.5.
        Assert.Equal(0.5, metrics.Accuracy);
        Close(0.125, metrics.Margin);
        Close(0.0, metrics.ChosenReward);
        Close(-0.125, metrics.RejectedReward);
    }

    [Fact]
    public void Simpo_with_equal_normalised_log_probs_is_softplus_gamma()
    {
        using var scope = NewDisposeScope();
        // πc/|c| = −6/3 = −2 = πr/|r| = −4/2 → β·(−2) − β·(−2) − γ = −γ → −log σ(−γ) = softplus(γ).
        // γ = 1: ln(1 + e) = 1.3132617. No reference is needed.
        var x = Leaves(out _, out _, [-6], [-4], null, null, [3], [2]);
        var (loss, metrics) = PreferenceLosses.SimPo(x, beta: 2, gamma: 1);
        Close(1.3132617, loss.item<float>());
        Close(0.0, metrics.Margin);
        Close(0.0, metrics.Accuracy);
    }

    [Fact]
    public void Simpo_on_two_pairs()
    {
        using var scope = NewDisposeScope();
        // β = 2, γ = 0.5. Rewards β·π/|y|:
        //   pair 0: chosen 2·(−4/4) = −2, rejected 2·(−9/3) = −6 → z = −2 + 6 − 0.5 =  3.5 → softplus(−3.5) = 0.0297504
        //   pair 1: chosen 2·(−6/2) = −6, rejected 2·(−10/5) = −4 → z = −6 + 4 − 0.5 = −2.5 → softplus(2.5) = 2.5788897
        //   mean = 2.6086401 / 2 = 1.3043201
        var x = Leaves(out var pc, out var pr, [-4, -6], [-9, -10], null, null, [4, 2], [3, 5]);
        var (loss, metrics) = PreferenceLosses.SimPo(x, beta: 2, gamma: 0.5);
        Close(1.3043201, loss.item<float>());
        // d loss / d πc_i = −σ(−z_i)·(β/|c_i|)/B, d loss / d πr_i = +σ(−z_i)·(β/|r_i|)/B; σ(−3.5) = 0.0293122, σ(2.5) = 0.9241418:
        //   πc: [−0.0293122·0.5/2, −0.9241418·1/2] = [−0.0073281, −0.4620709]
        //   πr: [0.0293122·(2/3)/2, 0.9241418·0.4/2] = [0.0097707, 0.1848284]
        loss.backward();
        Close([-0.0073281, -0.4620709], pc.grad!);
        Close([0.0097707, 0.1848284], pr.grad!);
        // chosen rewards [−2, −6] → −4; rejected [−6, −4] → −5; margins [4, −2] → 1 (γ not subtracted); accuracy 0.5.
        Assert.Equal(new PreferenceMetrics(0.5, 1, -4, -5), metrics);
    }

    [Fact]
    public void Orpo_on_two_pairs_with_odds_from_length_averaged_log_probs()
    {
        using var scope = NewDisposeScope();
        // λ = 0.5. Length-averaged log-probs chosen as logs of simple probabilities:
        //   pair 0: chosen 2·ln 0.5 over 2 tokens → P = 0.5, odds 1, log odds 0;
        //           rejected 3·ln 0.25 over 3 tokens → P = 0.25, odds 1/3, log odds −ln 3.
        //           log OR = ln 3 → −log σ(ln 3) = ln(1 + 1/3) = ln(4/3) = 0.2876821; NLL = −ln 0.5 = 0.6931472
        //           pair loss = 0.6931472 + 0.5·0.2876821 = 0.8369882
        //   pair 1: chosen 4·ln 0.25 over 4 tokens → log odds −ln 3; rejected ln 0.8 over 1 token → odds 4, log odds ln 4.
        //           log OR = −ln 12 → −log σ(−ln 12) = ln(1 + 12) = ln 13 = 2.5649494; NLL = −ln 0.25 = 1.3862944
        //           pair loss = 1.3862944 + 0.5·2.5649494 = 2.6687690
        //   mean = 3.5057572 / 2 = 1.7528786
        float l5 = MathF.Log(0.5f), l25 = MathF.Log(0.25f), l8 = MathF.Log(0.8f);
        var x = Leaves(out _, out _, [2 * l5, 4 * l25], [3 * l25, l8], null, null, [2, 4], [3, 1]);
        var (loss, metrics) = PreferenceLosses.Orpo(x, lambda: 0.5);
        Close(1.7528786, loss.item<float>());
        // Rewards are the averaged log-probs: chosen [ln 0.5, ln 0.25] → mean −1.0397208; rejected [ln 0.25, ln 0.8] → mean −0.8047190;
        // margins [ln 2, ln(0.25/0.8)] = [0.6931472, −1.1631508] → mean −0.2350018; accuracy 0.5.
        Close(0.5, metrics.Accuracy);
        Close(-0.2350018, metrics.Margin);
        Close(-1.0397208, metrics.ChosenReward);
        Close(-0.8047190, metrics.RejectedReward);
    }

    [Fact]
    public void Orpo_with_zero_lambda_is_the_length_averaged_nll_of_the_chosen()
    {
        using var scope = NewDisposeScope();
        // λ = 0: mean of −πc/|c| = (6/3 + 2/1)/2 = 2; d loss / d πc_i = −1/(|c_i|·B) = [−1/6, −1/2]; the rejected gets no gradient.
        var x = Leaves(out var pc, out var pr, [-6, -2], [-1, -1], null, null, [3, 1], [2, 2]);
        var (loss, _) = PreferenceLosses.Orpo(x, lambda: 0);
        Close(2.0, loss.item<float>());
        loss.backward();
        Close([-1.0 / 6, -0.5], pc.grad!);
        Close([0, 0], pr.grad!);
    }

    [Fact]
    public void Registry_lists_the_known_names_for_an_unknown_one()
    {
        Assert.Equal(["dpo", "cdpo", "ipo", "rdpo", "orpo", "simpo", "cpo", "cpo_simpo", "cream", "upo", "tpo"], PreferenceLosses.Names);
        foreach (var name in PreferenceLosses.Names) PreferenceLosses.EnsureKnown(name);
        var e = Assert.Throws<ArgumentException>(() => PreferenceLosses.EnsureKnown("kto"));
        Assert.Contains("'kto'", e.Message);
        Assert.Contains("dpo, cdpo, ipo, rdpo, orpo, simpo, cpo, cpo_simpo", e.Message);
        Assert.Equal("name", e.ParamName);
    }

    [Fact]
    public void Bad_arguments_name_the_parameter()
    {
        using var scope = NewDisposeScope();
        var x = Pairs();
        void Named(string param, Action act) => Assert.Equal(param, Assert.ThrowsAny<ArgumentException>(act).ParamName);

        Named("beta", () => PreferenceLosses.Dpo(x, 0));
        Named("beta", () => PreferenceLosses.Dpo(x, double.NaN));
        Named("beta", () => PreferenceLosses.SimPo(x, beta: -1));
        Named("labelSmoothing", () => PreferenceLosses.CDpo(x, labelSmoothing: 0.5));
        Named("labelSmoothing", () => PreferenceLosses.CDpo(x, labelSmoothing: -0.1));
        Named("flipRate", () => PreferenceLosses.RDpo(x, flipRate: 0.5));
        Named("tau", () => PreferenceLosses.Ipo(x, tau: 0));
        Named("lambda", () => PreferenceLosses.Orpo(x, lambda: -1));
        Named("gamma", () => PreferenceLosses.SimPo(x, gamma: -1));

        Named("ReferenceChosen", () => PreferenceLosses.Dpo(x with { ReferenceChosen = null }));
        Named("ReferenceRejected", () => PreferenceLosses.Ipo(x with { ReferenceRejected = Vec(1, 2, 3) }));
        Named("PolicyRejected", () => PreferenceLosses.Dpo(x with { PolicyRejected = Vec(1) }));
        Named("PolicyChosen", () => PreferenceLosses.Dpo(x with { PolicyChosen = Mat(2, 1, 2, 3, 4) }));
        Named("ChosenLengths", () => PreferenceLosses.SimPo(x));
        Named("RejectedLengths", () => PreferenceLosses.Orpo(x with { ChosenLengths = Lengths(1, 2), RejectedLengths = Lengths(3, 0) }));
    }

    [Fact]
    public void Results_belong_to_the_caller_dispose_scope()
    {
        Tensor loss;
        using (NewDisposeScope())
        {
            (loss, _) = PreferenceLosses.Dpo(Pairs());
            loss.backward();
            Assert.False(loss.IsInvalid);
        }
        Assert.True(loss.IsInvalid);
    }
}
