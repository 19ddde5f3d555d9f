using Sharpen.Algorithms;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

public class PolicyLossesTests
{
    /// <summary>One row; old log-probs 0, so the ratio of each token is exp(logp) and logp = ln ρ.</summary>
    static PolicyLossInput Row(float[] ratios, float[] advantages, float[]? mask = null) => new(
        Leaf(1, [.. ratios.Select(r => MathF.Log(r))]),
        zeros(1, ratios.Length),
        Mat(1, advantages),
        Mat(1, mask ?? [.. ratios.Select(_ => 1f)]));

    [Fact]
    public void Ppo_clip_on_both_sides_of_the_ratio()
    {
        using var scope = NewDisposeScope();
        // ε = 0.2; loss_t = −min(ρA, clip(ρ, 0.8, 1.2)A); d loss_t / d logp_t = −ρA when unclipped, 0 when clipped.
        //   t0 A=+1 ρ=1.5 → −min(1.5, 1.2)   = −1.2 clipped, grad 0
        //   t1 A=−1 ρ=0.5 → −min(−0.5, −0.8) =  0.8 clipped, grad 0
        //   t2 A=+2 ρ=1.1 → −2.2 unclipped, grad −2.2
        //   t3 A=−1 ρ=0.9 →  0.9 unclipped, grad  0.9
        //   t4 A=+1 ρ=0.5 → −min(0.5, 0.8)   = −0.5 unclipped, grad −0.5
        //   t5 A=−1 ρ=1.5 → −min(−1.5, −1.2) =  1.5 unclipped, grad  1.5
        //   t6 padding (mask 0): not counted, grad 0
        // TokenMean: (−1.2 + 0.8 − 2.2 + 0.9 − 0.5 + 1.5) / 6 = −0.7 / 6; gradients / 6.
        var x = Row([1.5f, 0.5f, 1.1f, 0.9f, 0.5f, 1.5f, 3f], [1, -1, 2, -1, 1, -1, 5], [1, 1, 1, 1, 1, 1, 0]);
        var (loss, metrics) = PolicyLosses.PpoClip(x, new ClipOptions(), new Aggregation());
        Close(-0.7 / 6, loss.item<float>());
        loss.backward();
        Close([0, 0, -2.2 / 6, 0.9 / 6, -0.5 / 6, 1.5 / 6, 0], x.LogProbs.grad!);

        Close(2.0 / 6, metrics.ClipFraction);
        // ApproxKl = ½ mean (ln ρ)² over the 6 real tokens; RatioMean = (1.5+0.5+1.1+0.9+0.5+1.5)/6 = 1; RatioMax = 1.5.
        double[] lnRatios = [Math.Log(1.5), Math.Log(0.5), Math.Log(1.1), Math.Log(0.9), Math.Log(0.5), Math.Log(1.5)];
        Close(0.5 * lnRatios.Sum(l => l * l) / 6, metrics.ApproxKl);
        Close(1.0, metrics.RatioMean);
        Close(1.5, metrics.RatioMax);
    }

    [Fact]
    public void Clip_higher_raises_only_the_upper_bound()
    {
        using var scope = NewDisposeScope();
        // ε_low = 0.2, ε_high = 0.28 (DAPO); SeqMeanTokenSum over one sequence = plain sum.
        //   A=+1 ρ=1.25 → below 1.28, unclipped: −1.25, grad −1.25 (a symmetric 0.2 clip would give −1.2, grad 0)
        //   A=−1 ρ=0.75 → below 0.8, clipped:     0.8, grad 0
        //   A=+1 ρ=1.4  → above 1.28, clipped:   −1.28, grad 0
        // Sum = −1.25 + 0.8 − 1.28 = −1.73.
        var x = Row([1.25f, 0.75f, 1.4f], [1, -1, 1]);
        var (loss, metrics) = PolicyLosses.PpoClip(x, ClipOptions.Dapo(), new Aggregation(LossAggregation.SeqMeanTokenSum));
        Close(-1.73, loss.item<float>());
        loss.backward();
        Close([-1.25, 0, 0], x.LogProbs.grad!);
        Close(2.0 / 3, metrics.ClipFraction);

        var symmetric = Row([1.25f, 0.75f, 1.4f], [1, -1, 1]);
        var (symmetricLoss, _) = PolicyLosses.PpoClip(symmetric, new ClipOptions(), new Aggregation(LossAggregation.SeqMeanTokenSum));
        Close(-1.2 + 0.8 - 1.2, symmetricLoss.item<float>());   // = −1.6
    }

    [Fact]
    public void Dual_clip_caps_the_loss_of_negative_advantages()
    {
        using var scope = NewDisposeScope();
        // c = 3, ε = 0.2; SeqMeanTokenSum over one sequence = plain sum.
        //   A=−1 ρ=5   → PPO loss −min(−5, −1.2) = 5, capped at −c·A = 3: loss 3, grad 0
        //   A=−1 ρ=2   → PPO loss 2 < 3: loss 2, grad −ρA = 2
        //   A=+1 ρ=5   → clipped above: −1.2, grad 0 (dual clip only for A < 0)
        //   A=−1 ρ=0.5 → clipped below: 0.8, grad 0
        // Sum = 3 + 2 − 1.2 + 0.8 = 4.6; clipped tokens 0, 2, 3 → 3/4.
        var x = Row([5f, 2f, 5f, 0.5f], [-1, -1, 1, -1]);
        var (loss, metrics) = PolicyLosses.PpoClip(x, new ClipOptions(DualClip: 3), new Aggregation(LossAggregation.SeqMeanTokenSum));
        Close(4.6, loss.item<float>());
        loss.backward();
        Close([0, 2, 0, 0], x.LogProbs.grad!);
        Close(0.75, metrics.ClipFraction);
        Assert.Throws<ArgumentOutOfRangeException>(() => PolicyLosses.PpoClip(x, new ClipOptions(DualClip: 1), new Aggregation()));
    }

    [Fact]
    public void Vanilla_is_minus_advantage_times_log_prob()
    {
        using var scope = NewDisposeScope();
        // logp = [−1, −2], A = [1, −1]: loss_t = −A·logp = [1, −2]; TokenMean = −0.5; grad = −A/2 = [−0.5, 0.5].
        var x = new PolicyLossInput(Leaf(1, -1, -2), Mat(1, -1, -2), Mat(1, 1, -1), Mat(1, 1, 1));
        var (loss, metrics) = PolicyLosses.Vanilla(x, new Aggregation());
        Close(-0.5, loss.item<float>());
        loss.backward();
        Close([-0.5, 0.5], x.LogProbs.grad!);
        Assert.Equal(new PolicyLossMetrics(0, 0, 1, 1), metrics);
    }

    [Fact]
    public void Topr_weights_positives_by_one_and_truncates_the_ratio_of_negatives()
    {
        using var scope = NewDisposeScope();
        // Old log-probs all −1. Token log-ratios (logp − old):
        //   row 0: [ln 2, ln 2]  seq ratio 4,   R−c = +1 → w = 1 (positives: no importance sampling)
        //   row 1: [ln ½, 0]     seq ratio 0.5, R−c = −1 → w = 0.5
        //   row 2: [ln 2, 0]     seq ratio 2,   R−c = −2 → w = min(2, 1) = 1 (truncated)
        // loss_t = −w(R−c)·logp_t; SeqMeanTokenSum over 3 sequences:
        //   row 0: −1·1·(2·(ln2 − 1))           = 0.6137056
        //   row 1: −0.5·(−1)·((ln½ − 1) + (−1)) = 0.5·(−2.6931472) = −1.3465736
        //   row 2: −1·(−2)·((ln2 − 1) + (−1))   = 2·(−1.3068528)   = −2.6137056
        //   total / 3 = −3.3465736 / 3 = −1.1155245
        // Detached weights: d loss / d logp_t = −w(R−c)/3 = row 0: −1/3, row 1: +1/6, row 2: +2/3.
        float ln2 = MathF.Log(2);
        var old = full(3, 2, -1f);
        var logp = Leaf(3, -1 + ln2, -1 + ln2, -1 - ln2, -1, -1 + ln2, -1);
        var x = new PolicyLossInput(logp, old, zeros(3, 2), ones(3, 2));
        var (loss, metrics) = PolicyLosses.Topr(x, Vec(1, -1, -2), new Aggregation(LossAggregation.SeqMeanTokenSum));
        Close(-1.1155245, loss.item<float>());
        loss.backward();
        Close([-1.0 / 3, -1.0 / 3, 1.0 / 6, 1.0 / 6, 2.0 / 3, 2.0 / 3], logp.grad!);
        Close(2.0 / 6, metrics.ClipFraction);   // only row 1's two tokens have w < 1
        Close(2.0, metrics.RatioMax);
    }

    [Fact]
    public void Results_belong_to_the_caller_dispose_scope()
    {
        Tensor loss, advantages, returns;
        using (NewDisposeScope())
        {
            var x = Row([1.5f, 0.5f], [1, -1]);
            (loss, _) = PolicyLosses.PpoClip(x, new ClipOptions(), new Aggregation());
            loss.backward();
            advantages = AdvantageEstimators.Grpo(new GroupOutcomeInput(Vec(1, 0), ones(2, 2), 2)).Advantages;
            returns = AdvantageEstimators.Gae(new GaeInput(ones(1, 2), zeros(1, 2), ones(1, 2), 1, 1)).Returns!;
            Assert.False(loss.IsInvalid || advantages.IsInvalid || returns.IsInvalid);
        }
        Assert.True(loss.IsInvalid && advantages.IsInvalid && returns.IsInvalid);
    }

    [Fact]
    public void Registry_lists_the_known_names_for_an_unknown_one()
    {
        Assert.Equal(["ppo_clip", "vanilla", "topr", "p3o_clip", "refuel"], PolicyLosses.Names);
        foreach (var name in PolicyLosses.Names) PolicyLosses.EnsureKnown(name);
        var e = Assert.Throws<ArgumentException>(() => PolicyLosses.EnsureKnown("ppo"));
        Assert.Contains("'ppo'", e.Message);
        Assert.Contains("ppo_clip, vanilla, topr", e.Message);
    }

    [Fact]
    public void Token_entropy_and_its_gradient_match_the_closed_form()
    {
        using var scope = NewDisposeScope();
        // Token 0: logits (0, ln 3) → p = (1/4, 3/4), H = −(¼ ln ¼ + ¾ ln ¾) = 0.562335.
        // Token 1: logits (0, 0) → H = ln 2, the maximum, so its gradient is 0.
        // dH/dz_i = −p_i (ln p_i + H): token 0 → (−¼(ln ¼ + H), −¾(ln ¾ + H)) = (0.205990, −0.205990).
        var logits = tensor(new float[] { 0f, MathF.Log(3f), 0f, 0f }).view(1, 2, 2).requires_grad_(true);
        var h = PolicyLosses.TokenEntropy(logits);
        Assert.Equal([1L, 2L], h.shape);
        double h0 = -(0.25 * Math.Log(0.25) + 0.75 * Math.Log(0.75));
        Assert.Equal(h0, h[0, 0].item<float>(), 5);
        Assert.Equal(Math.Log(2), h[0, 1].item<float>(), 5);
        h.sum().backward();
        var g = logits.grad!.view(-1).data<float>().ToArray();
        Assert.Equal(-0.25 * (Math.Log(0.25) + h0), g[0], 5);
        Assert.Equal(-0.75 * (Math.Log(0.75) + h0), g[1], 5);
        Assert.Equal(0.0, g[2], 6);
        Assert.Equal(0.0, g[3], 6);
    }
}
