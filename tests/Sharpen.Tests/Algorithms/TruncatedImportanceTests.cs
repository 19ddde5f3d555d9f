using Sharpen.Algorithms;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary>Truncated importance weights and the engine/trainer mismatch on hand-worked tensors (Yao et al. 2025).</summary>
public class TruncatedImportanceTests
{
    // Trainer's old probabilities 0.5, 0.2, 0.9; engine's 0.25, 0.4, 0.3; the third token is padding.
    static Tensor Trainer() => Mat(1, (float)Math.Log(0.5), (float)Math.Log(0.2), (float)Math.Log(0.9));
    static Tensor Engine() => Mat(1, (float)Math.Log(0.25), (float)Math.Log(0.4), (float)Math.Log(0.3));
    static Tensor Mask() => Mat(1, 1, 1, 0);

    [Fact]
    public void Weights_are_the_probability_ratio_capped_at_C_and_zero_at_padding()
    {
        // π_t/π_e = 0.5/0.25 = 2 → min(2, 1.5) = 1.5; 0.2/0.4 = 0.5; padding (ratio 3) → 0.
        Close([1.5, 0.5, 0.0], TruncatedImportance.Weights(Trainer(), Engine(), Mask(), cap: 1.5));
        // With C = 2 (the default of rollout.tis_cap) the first ratio is exactly at the cap.
        Close([2.0, 0.5, 0.0], TruncatedImportance.Weights(Trainer(), Engine(), Mask(), cap: 2));
        // A token whose engine log-prob is unknown (NaN) keeps weight 1.
        var engine = Mat(1, float.NaN, (float)Math.Log(0.4), 0);
        Close([1.0, 0.5, 0.0], TruncatedImportance.Weights(Trainer(), engine, Mask(), cap: 2));
    }

    [Fact]
    public void Mismatch_is_the_mean_absolute_log_prob_gap_and_the_k3_kl()
    {
        // log r = ln 2 and ln 0.5: mean |Δ| = ln 2; k3 = (2 − 1 − ln 2 + 0.5 − 1 + ln 2) / 2 = 0.25.
        var (abs, kl) = TruncatedImportance.Mismatch(Trainer(), Engine(), Mask());
        Close(Math.Log(2), abs, 1e-6);
        Close(0.25, kl, 1e-6);
        var (same, zero) = TruncatedImportance.Mismatch(Trainer(), Trainer(), Mask());
        Close(0, same, 0);
        Close(0, zero, 0);
    }

    [Fact]
    public void Weighting_the_advantages_weights_each_tokens_ppo_loss_and_gradient()
    {
        // At θ = θ_old the ratio is 1 and nothing is clipped: loss_t = −w_t A_t, token mean over the 2 real tokens.
        // A = (1, −2): loss = −(1.5·1 + 0.5·(−2)) / 2 = −0.25; ∂loss/∂log π_t = −w_t A_t / 2 = (−0.75, 0.5, 0).
        var logp = Leaf(1, (float)Math.Log(0.5), (float)Math.Log(0.2), (float)Math.Log(0.9));
        var w = TruncatedImportance.Weights(Trainer(), Engine(), Mask(), cap: 1.5);
        var adv = Mat(1, 1, -2, 5);
        var input = new PolicyLossInput(logp, Trainer(), adv * w, Mask());
        var (loss, _) = PolicyLosses.PpoClip(input, new ClipOptions(0.2, 0.2), new Aggregation(LossAggregation.TokenMean));
        Close(-0.25, loss.item<float>());
        loss.backward();
        Close([-0.75, 0.5, 0.0], logp.grad!);
    }
}
