using Sharpen.Algorithms;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary>OSP's soft-preference cross-entropy and its ranked pairing, against numbers worked out by hand.</summary>
public class SoftPreferenceLossTests
{
    static double Softplus(double z) => Math.Log(1 + Math.Exp(z));

    [Fact]
    public void Soft_cross_entropy_matches_the_hand_value_and_its_gradient_is_beta_times_sigma_minus_p()
    {
        // β = 1, log π_θ(c) = −1, log π_θ(r) = −2, reference 0: h = 1. With p = 0.8:
        // loss = 0.8·softplus(−1) + 0.2·softplus(1) = softplus(−1) + 0.2·1 = 0.313262 + 0.2.
        using var pc = tensor(new[] { -1.0f }, requires_grad: true);
        using var pr = tensor(new[] { -2.0f }, requires_grad: true);
        using var zero = zeros(1);
        using var p = tensor(new[] { 0.8f });
        var (loss, m) = SoftPreferenceLosses.Osp(new PreferenceInput(pc, pr, zero, zero, Strengths: p), beta: 1.0);
        Assert.Equal(Softplus(-1) + 0.2, loss.item<float>(), 5);
        loss.backward();
        // ∂loss/∂h = β(σ(βh) − p) = σ(1) − 0.8 = 0.731059 − 0.8.
        Assert.Equal(1 / (1 + Math.Exp(-1)) - 0.8, pc.grad!.item<float>(), 5);
        Assert.Equal(-(1 / (1 + Math.Exp(-1)) - 0.8), pr.grad!.item<float>(), 5);
        Assert.Equal((1.0, 1.0), (m.Accuracy, m.Margin));
    }

    [Fact]
    public void Certain_pairs_give_dpo_and_the_minimum_sits_at_the_log_odds_of_the_strength()
    {
        using var pc = tensor(new[] { -1.0f, -0.5f });
        using var pr = tensor(new[] { -2.0f, -3.0f });
        using var rc = tensor(new[] { -1.5f, -1.0f });
        using var rr = tensor(new[] { -1.0f, -2.0f });
        var x = new PreferenceInput(pc, pr, rc, rr);
        var (osp, _) = SoftPreferenceLosses.Osp(x with { Strengths = ones(2) }, 0.5);
        var (none, _) = SoftPreferenceLosses.Osp(x, 0.5);
        var (dpo, _) = PreferenceLosses.Dpo(x, 0.5);
        Assert.Equal(dpo.item<float>(), osp.item<float>(), 6);
        Assert.Equal(dpo.item<float>(), none.item<float>(), 6);

        // At βh = log(p/(1−p)) the gradient is 0: p = 0.75, β = 2 → h = ln 3 / 2.
        double h = Math.Log(3) / 2;
        using var c = tensor(new[] { (float)h }, requires_grad: true);
        using var z = zeros(1);
        var (loss, _) = SoftPreferenceLosses.Osp(new PreferenceInput(c, z, z, z, Strengths: tensor(new[] { 0.75f })), 2.0);
        loss.backward();
        Assert.Equal(0.0, c.grad!.item<float>(), 5);
    }

    [Fact]
    public void Bad_strengths_are_named()
    {
        using var z = zeros(1);
        var e = Assert.Throws<ArgumentException>(() => SoftPreferenceLosses.Osp(new PreferenceInput(z, z, z, z, Strengths: tensor(new[] { 1.5f }))));
        Assert.Contains("Strengths", e.Message);
        Assert.Throws<ArgumentException>(() => SoftPreferenceLosses.Osp(new PreferenceInput(z, z, z, z, Strengths: zeros(2))));
        Assert.Throws<ArgumentException>(() => SoftPreferenceLosses.Osp(new PreferenceInput(z, z, null, null)));
    }

    [Fact]
    public void Ranked_pairing_matches_best_with_worst_with_sigmoid_strengths()
    {
        // Sorted: 1 (0.9), 2 (0.5), 0 (0.2), 3 (0.1) → (1, 3) with σ(0.8), (2, 0) with σ(0.3).
        var pairs = SoftPreferenceLosses.RankedPairs([0.2, 0.9, 0.5, 0.1]);
        Assert.Equal([(1, 3), (2, 0)], pairs.Select(p => (p.Chosen, p.Rejected)));
        Assert.Equal(1 / (1 + Math.Exp(-0.8)), pairs[0].Strength, 12);
        Assert.Equal(1 / (1 + Math.Exp(-0.3)), pairs[1].Strength, 12);
        // Temperature 0.5 doubles the logit: σ(1.6).
        Assert.Equal(1 / (1 + Math.Exp(-1.6)), SoftPreferenceLosses.RankedPairs([0.2, 0.9, 0.5, 0.1], 0.5)[0].Strength, 12);
        // Odd K leaves the middle out; equal scores make no pair.
        Assert.Equal([(0, 2)], SoftPreferenceLosses.RankedPairs([3.0, 2.0, 1.0]).Select(p => (p.Chosen, p.Rejected)));
        Assert.Empty(SoftPreferenceLosses.RankedPairs([1.0, 1.0]));
    }

    [Fact]
    public void Osp_is_registered_for_online_use_only()
    {
        Assert.True(PreferenceLosses.Registry.Contains("osp"));
        Assert.True(PreferenceLosses.Registry.Get("osp").OnlineOnly);
        Assert.DoesNotContain("osp", PreferenceLosses.Names);
    }
}
