using Sharpen.Algorithms;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

public class OfflinePolicyLossesTests
{
    [Fact]
    public void Copg_on_two_pairs_by_hand()
    {
        using var scope = NewDisposeScope();
        // β = 0.5. Log-ratios (π − ref):
        //   pair 0: y1 −2 − (−3) = +1, y2 −4 − (−3) = −1 → h = 2;  R = (2, 0) → ΔR = 2;  residual ΔR − βh = 2 − 1 = 1
        //   pair 1: y1 −5 − (−4) = −1, y2 −3 − (−3) =  0 → h = −1; R = (0, 1) → ΔR = −1; residual = −1 + 0.5 = −0.5
        //   loss = (1² + 0.5²)/2 = 1.25/2 = 0.625
        var p1 = Vec(-2, -5).requires_grad_(true);
        var p2 = Vec(-4, -3).requires_grad_(true);
        var (loss, metrics) = OfflinePolicyLosses.Copg(p1, p2, Vec(-3, -4), Vec(-3, -3), Vec(2, 0), Vec(0, 1), beta: 0.5);
        Close(0.625, loss.item<float>());
        // d loss/d p1_i = 2·residual_i·(−β)/B = −0.5·residual_i → [−0.5, 0.25]; d loss/d p2_i = +0.5·residual_i → [0.5, −0.25].
        loss.backward();
        Close([-0.5, 0.25], p1.grad!);
        Close([0.5, -0.25], p2.grad!);
        // Metrics: ΔR mean (2 − 1)/2 = 0.5; βh mean (1 − 0.5)/2 = 0.25; |residual| mean (1 + 0.5)/2 = 0.75.
        Close(0.5, metrics.RewardMargin);
        Close(0.25, metrics.ImplicitMargin);
        Close(0.75, metrics.AbsResidual);
    }

    [Fact]
    public void Copg_at_the_papers_scale_has_the_papers_gradient()
    {
        using var scope = NewDisposeScope();
        // The paper's ascent direction per pair is residual·∇(log π(y1) − log π(y2)), so the descent gradient of the batch mean
        // is −residual_i/B on p1 and +residual_i/B on p2. Same pairs as above with β = 0.25 (2β ≠ 1, so the scales differ):
        //   pair 0: h = 2, ΔR = 2 → residual 2 − 0.5 = 1.5;  pair 1: h = −1, ΔR = −1 → residual −1 + 0.25 = −0.75
        //   squared loss (1.5² + 0.75²)/2 = 1.40625; paper scale 1.40625/(2·0.25) = 2.8125
        //   paper-scale gradient: p1 = −residual/B = [−0.75, 0.375], p2 = [0.75, −0.375] (the squared loss's is 2β = 0.5 times it)
        var p1 = Vec(-2, -5).requires_grad_(true);
        var p2 = Vec(-4, -3).requires_grad_(true);
        var (loss, _) = OfflinePolicyLosses.Copg(p1, p2, Vec(-3, -4), Vec(-3, -3), Vec(2, 0), Vec(0, 1), beta: 0.25, paperScale: true);
        Close(2.8125, loss.item<float>());
        loss.backward();
        Close([-0.75, 0.375], p1.grad!);
        Close([0.75, -0.375], p2.grad!);
        var q1 = Vec(-2, -5).requires_grad_(true);
        var (squared, _) = OfflinePolicyLosses.Copg(q1, Vec(-4, -3), Vec(-3, -4), Vec(-3, -3), Vec(2, 0), Vec(0, 1), beta: 0.25);
        Close(1.40625, squared.item<float>());
        squared.backward();
        Close([-0.375, 0.1875], q1.grad!);
    }

    [Fact]
    public void Copg_with_policy_equal_to_reference_and_equal_rewards_has_zero_loss_and_gradient()
    {
        using var scope = NewDisposeScope();
        // h = 0 and ΔR = 0 for every pair → residual 0 → loss 0 and gradient −2β·0 = 0, whatever β.
        foreach (var beta in new[] { 0.1, 1.0 })
        {
            var p1 = Vec(-3, -7).requires_grad_(true);
            var p2 = Vec(-2, -4).requires_grad_(true);
            var (loss, _) = OfflinePolicyLosses.Copg(p1, p2, Vec(-3, -7), Vec(-2, -4), Vec(0.3f, -1), Vec(0.3f, -1), beta);
            Close(0.0, loss.item<float>());
            loss.backward();
            Close([0, 0], p1.grad!);
            Close([0, 0], p2.grad!);
        }
    }

    [Fact]
    public void Copg_with_preference_only_rewards_is_beta_squared_times_ipo()
    {
        using var scope = NewDisposeScope();
        // R(y_w) = +1/4, R(y_l) = −1/4 → ΔR = 1/2, and τ = β: (1/2 − βh)² = β²(h − 1/(2β))² = β²·IPO(τ = β).
        // β = 0.5, h = [2, −1]: IPO = ((2 − 1)² + (−1 − 1)²)/2 = 2.5; CoPG = ((0.5 − 1)² + (0.5 + 0.5)²)/2 = 0.625 = 0.25·2.5.
        const double beta = 0.5;
        var c = Vec(-2, -5).requires_grad_(true);
        var r = Vec(-4, -3).requires_grad_(true);
        var ipo = PreferenceLosses.Ipo(new PreferenceInput(c, r, Vec(-3, -4), Vec(-3, -3)), tau: beta).Loss;
        Close(2.5, ipo.item<float>());
        ipo.backward();
        var ipoChosen = Values(c.grad!);
        var ipoRejected = Values(r.grad!);

        var p1 = Vec(-2, -5).requires_grad_(true);
        var p2 = Vec(-4, -3).requires_grad_(true);
        var (copg, _) = OfflinePolicyLosses.Copg(p1, p2, Vec(-3, -4), Vec(-3, -3), Vec(0.25f, 0.25f), Vec(-0.25f, -0.25f), beta);
        Close(0.625, copg.item<float>());
        Close(beta * beta * 2.5, copg.item<float>());
        copg.backward();
        Close(ipoChosen.Select(g => beta * beta * g).ToArray(), p1.grad!);
        Close(ipoRejected.Select(g => beta * beta * g).ToArray(), p2.grad!);
    }

    [Theory]
    [InlineData(1.0, 0.0)]     // rewards 1/0: ΔR = 1 → τ = β/(2ΔR) = β/2
    [InlineData(1.0, -1.0)]    // rewards ±1:  ΔR = 2 → τ = β/4
    public void Copg_on_preference_only_rewards_is_beta_squared_times_ipo_with_tau_beta_over_two_delta_r(double rw, double rl)
    {
        using var scope = NewDisposeScope();
        // β = 0.5; log-ratios: pair 0 h = (−2 + 3) − (−4 + 3) = 2, pair 1 h = (−5 + 4) − (−3 + 3) = −1.
        // The paper's per-pair loss (R(y_w) − β log π/π_ref(y_w) − R(y_l) + β log π/π_ref(y_l))², in plain doubles:
        const double beta = 0.5;
        double dr = rw - rl, tau = beta / (2 * dr);
        double[] h = [2, -1];
        double copgByHand = h.Average(x => (dr - beta * x) * (dr - beta * x));
        double ipoByHand = h.Average(x => (x - 1 / (2 * tau)) * (x - 1 / (2 * tau)));
        Assert.Equal(copgByHand, beta * beta * ipoByHand, 12);
        // 1/0: ((1 − 1)² + (1 + 0.5)²)/2 = 1.125;  ±1: ((2 − 1)² + (2 + 0.5)²)/2 = 3.625.
        Assert.Equal(dr == 1 ? 1.125 : 3.625, copgByHand, 12);

        var p1 = Vec(-2, -5).requires_grad_(true);
        var p2 = Vec(-4, -3).requires_grad_(true);
        var (copg, _) = OfflinePolicyLosses.Copg(p1, p2, Vec(-3, -4), Vec(-3, -3), Vec((float)rw, (float)rw), Vec((float)rl, (float)rl), beta);
        Close(copgByHand, copg.item<float>());
        var c = Vec(-2, -5).requires_grad_(true);
        var r = Vec(-4, -3).requires_grad_(true);
        var ipo = PreferenceLosses.Ipo(new PreferenceInput(c, r, Vec(-3, -4), Vec(-3, -3)), tau).Loss;
        Close(ipoByHand, ipo.item<float>());
        copg.backward();
        ipo.backward();
        Close(Values(c.grad!).Select(g => beta * beta * g).ToArray(), p1.grad!);
        Close(Values(r.grad!).Select(g => beta * beta * g).ToArray(), p2.grad!);
    }

    [Fact]
    public void Alol_on_three_rows_by_hand_with_clipped_detached_weight()
    {
        using var scope = NewDisposeScope();
        // ε = 0.2.
        //   row 0: log π −2, ref −2 → ratio 1 → w = 1;              R 1, V 0.5 → A = 0.5 (kept)
        //   row 1: log π −1, ref −2 → ratio e ≈ 2.718 → w = 1.2;   R 2, V 0   → A = 2   (kept, clipped)
        //   row 2: log π −3, ref −1 → ratio e⁻² → w would be 0.8;   R 0, V 1   → A = −1  (dropped)
        //   K = 2, loss = −(0.5·1·(−2) + 2·1.2·(−1))/2 = −(−1 − 2.4)/2 = 1.7
        var logp = Vec(-2, -1, -3).requires_grad_(true);
        var (loss, metrics) = OfflinePolicyLosses.Alol(logp, Vec(-2, -2, -1), Vec(1, 2, 0), Vec(0.5f, 0, 1), clip: 0.2);
        Close(1.7, loss.item<float>());
        // Gradient −A·w/K: row 0 −0.5·1/2 = −0.25, row 1 −2·1.2/2 = −1.2, row 2 0.
        // (Were w not detached, row 0 would get −A·(w + w·log π)/K = −0.5·(1 − 2)/2 = +0.25.)
        loss.backward();
        Close([-0.25, -1.2, 0], logp.grad!);
        // Metrics: kept 2/3; over kept rows A mean 1.25, w mean 1.1, clipped 1 of 2.
        Close(2.0 / 3, metrics.KeptFraction);
        Close(1.25, metrics.AdvantageMean);
        Close(1.1, metrics.WeightMean);
        Close(0.5, metrics.ClipFraction);
    }

    [Fact]
    public void Alol_negative_advantage_rows_contribute_nothing()
    {
        using var scope = NewDisposeScope();
        // Row 1 has A = 0 − 3 = −3: adding it (with any log-probs) changes neither the loss nor the other rows' gradients.
        //   row 0 alone: ratio 1, A = 1 → loss = −1·1·(−4)/1 = 4, gradient −1.
        var logp = Vec(-4, -0.5f).requires_grad_(true);
        var (loss, metrics) = OfflinePolicyLosses.Alol(logp, Vec(-4, -9), Vec(1, 0), Vec(0, 3));
        Close(4.0, loss.item<float>());
        loss.backward();
        Close([-1, 0], logp.grad!);
        Close(0.5, metrics.KeptFraction);

        // All rows negative: loss 0, zero gradient, metrics 0.
        var all = Vec(-1, -2).requires_grad_(true);
        var (none, m) = OfflinePolicyLosses.Alol(all, Vec(-1, -2), Vec(0, 0), Vec(1, 2));
        Close(0.0, none.item<float>());
        none.backward();
        Close([0, 0], all.grad!);
        Assert.Equal(new AlolMetrics(0, 0, 0, 0), m);

        // A = 0 is dropped too (A ≤ 0): it would add no gradient but would count in K and halve row 0's.
        var z = Vec(-4, -1).requires_grad_(true);
        var (withZero, mz) = OfflinePolicyLosses.Alol(z, Vec(-4, -1), Vec(1, 2), Vec(0, 2));
        Close(4.0, withZero.item<float>());
        withZero.backward();
        Close([-1, 0], z.grad!);
        Close(0.5, mz.KeptFraction);
    }

    [Fact]
    public void Alol_default_clip_is_0_9_so_ratios_in_0_1_to_1_9_pass_unclipped()
    {
        using var scope = NewDisposeScope();
        // ratios e^0.5 ≈ 1.6487 (inside [0.1, 1.9]) and e^1 ≈ 2.718 (clipped to 1.9); A = 1 and 2; K = 2.
        // gradient −A·w/K: [−1·1.6487/2, −2·1.9/2] = [−0.82436, −1.9].
        var logp = Vec(-1.5f, -1).requires_grad_(true);
        var (loss, m) = OfflinePolicyLosses.Alol(logp, Vec(-2, -2), Vec(1, 2), Vec(0, 0));
        loss.backward();
        Close([-Math.Exp(0.5) / 2, -1.9], logp.grad!);
        Close((Math.Exp(0.5) + 1.9) / 2, m.WeightMean);
        Close(0.5, m.ClipFraction);
    }

    // The three hand rows of the A-LoL variants (ε = 0.9, β = 0.1), V = 0.5 for all:
    //   a: log π −4, log π_ref −5, R 0.8 → A = 0.3, ratio e ≈ 2.718 → w = clamp(e, 0.1, 1.9) = 1.9
    //   b: log π −6, log π_ref −6, R 0.9 → A = 0.4, ratio 1 → w = 1
    //   c: log π −3, log π_ref −2, R 0.2 → A = −0.3, dropped (K = 2)
    static (Tensor Logp, Tensor Ref, Tensor R, Tensor V) HandRows() =>
        (Vec(-4, -6, -3).requires_grad_(true), Vec(-5, -6, -2), Vec(0.8f, 0.9f, 0.2f), Vec(0.5f, 0.5f, 0.5f));

    [Fact]
    public void Alol_main_on_the_hand_rows()
    {
        using var scope = NewDisposeScope();
        // loss = −(0.3·1.9·(−4) + 0.4·1·(−6))/2 = (2.28 + 2.4)/2 = 2.34; d loss/d log π = −A·w/K = (−0.285, −0.2, 0).
        var (logp, refLogp, r, v) = HandRows();
        var (loss, m) = OfflinePolicyLosses.Alol(logp, refLogp, r, v, clip: 0.9);
        Close(2.34, loss.item<float>());
        loss.backward();
        Close([-0.285, -0.2, 0], logp.grad!);
        // Kept 2/3; A mean 0.35; w mean (1.9 + 1)/2 = 1.45; 1 of 2 clipped; log-ratio mean (1 + 0)/2 = 0.5.
        Close(2.0 / 3, m.KeptFraction);
        Close(0.35, m.AdvantageMean);
        Close(1.45, m.WeightMean);
        Close(0.5, m.ClipFraction);
        Close(0.5, m.LogRatioMean);
    }

    [Fact]
    public void Alol_ref_free_has_weight_one()
    {
        using var scope = NewDisposeScope();
        // loss = −(0.3·(−4) + 0.4·(−6))/2 = (1.2 + 2.4)/2 = 1.8; gradient −A/K = (−0.15, −0.2, 0).
        var (logp, _, r, v) = HandRows();
        var (loss, m) = OfflinePolicyLosses.AlolRefFree(logp, r, v);
        Close(1.8, loss.item<float>());
        loss.backward();
        Close([-0.15, -0.2, 0], logp.grad!);
        Assert.Equal((1.0, 0.0, 0.0), (m.WeightMean, m.ClipFraction, m.LogRatioMean));
        Close(0.35, m.AdvantageMean);
    }

    [Fact]
    public void Alol_kl_adds_beta_times_the_log_ratio_and_has_no_weight()
    {
        using var scope = NewDisposeScope();
        // Per kept row A·(−log π) + β·(log π − log π_ref): a 0.3·4 + 0.1·1 = 1.3, b 0.4·6 + 0.1·0 = 2.4 → loss (1.3 + 2.4)/2 = 1.85.
        // Gradient (β − A)/K: a (0.1 − 0.3)/2 = −0.1, b (0.1 − 0.4)/2 = −0.15, c 0 (dropped, its KL term too).
        var (logp, refLogp, r, v) = HandRows();
        var (loss, m) = OfflinePolicyLosses.AlolKl(logp, refLogp, r, v, beta: 0.1);
        Close(1.85, loss.item<float>());
        loss.backward();
        Close([-0.1, -0.15, 0], logp.grad!);
        Close(0.5, m.LogRatioMean);
        Assert.Equal((1.0, 0.0), (m.WeightMean, m.ClipFraction));
    }

    [Fact]
    public void Alol_seq_clips_each_token_ratio()
    {
        using var scope = NewDisposeScope();
        // Row b with per-token log π (−1, −5) and log π_ref (−2, −4) (sums −6, −6 as in the hand rows), R 0.9, V 0.5 → A = 0.4.
        //   token ratios e¹ → clamp 1.9, e⁻¹ ≈ 0.36788 (inside [0.1, 1.9]); loss = 0.4·(1.9·1 + 0.36788·5) ≈ 1.49576.
        // Row c (one token −3 then padding, ref −2): A = −0.3, dropped; its padding column holds 0 and is masked.
        var logp = Mat(2, -1, -5, -3, 0).requires_grad_(true);
        var refLogp = Mat(2, -2, -4, -2, 0);
        var mask = Mat(2, 1, 1, 1, 0);
        var (loss, m) = OfflinePolicyLosses.AlolSeq(logp, refLogp, mask, Vec(0.9f, 0.2f), Vec(0.5f, 0.5f), clip: 0.9);
        double e1 = Math.Exp(-1);
        Close(0.4 * (1.9 * 1 + e1 * 5), loss.item<float>());
        Close(1.49576, loss.item<float>(), 1e-4);
        // Gradient −A·w_t/K per token of the kept row (K = 1): (−0.76, −0.4·e⁻¹ ≈ −0.14715); row c 0.
        loss.backward();
        Close([-0.76, -0.4 * e1, 0, 0], logp.grad!.view(-1));
        // Over the kept row's 2 tokens: w mean (1.9 + e⁻¹)/2, 1 of 2 clipped; summed log-ratio 1 − 1 = 0.
        Close(0.5, m.KeptFraction);
        Close((1.9 + e1) / 2, m.WeightMean);
        Close(0.5, m.ClipFraction);
        Close(0.0, m.LogRatioMean);
    }

    [Fact]
    public void Alol_seq_on_one_token_completions_is_the_main_loss()
    {
        using var scope = NewDisposeScope();
        // With one token per completion the per-token ratio is the sequence ratio: same loss and gradient as the main variant.
        var (logp, refLogp, r, v) = HandRows();
        var (main, _) = OfflinePolicyLosses.Alol(logp, refLogp, r, v);
        main.backward();
        var tokens = Vec(-4, -6, -3).view(3, 1).requires_grad_(true);
        var (seq, _) = OfflinePolicyLosses.AlolSeq(tokens, refLogp.view(3, 1), Mat(3, 1, 1, 1), r, v);
        seq.backward();
        Close(main.item<float>(), seq.item<float>());
        Close(Values(logp.grad!).Select(x => (double)x).ToArray(), tokens.grad!.view(-1));
    }

    [Fact]
    public void Crlft_weighted_nll_by_hand_and_split_into_micro_batches_sums_to_the_whole()
    {
        using var scope = NewDisposeScope();
        // Rows (token log-probs, 0 = padding): r0 [−1, −2] (2 tokens, w 1), r1 [−3, 0] (1 token, w 0.1), r2 [−0.5, −0.5] (2 tokens, w 1).
        // N = 5 (unweighted tokens of the whole step). Loss = −(1·(−3) + 0.1·(−3) + 1·(−1))/5 = 4.3/5 = 0.86.
        // Gradient w.r.t. each token log-prob: −w_i/N → r0 −0.2, r1 −0.02 (0 at padding, which the caller masks), r2 −0.2.
        var logp = Mat(3, -1, -2, -3, 0, -0.5f, -0.5f).requires_grad_(true);
        var w = Vec(1, 0.1f, 1);
        var loss = ClassConditionedLoss.WeightedNll(logp, w, totalTokens: 5);
        Close(0.86, loss.item<float>());
        loss.backward();
        Close([-0.2, -0.2, -0.02, -0.02, -0.2, -0.2], logp.grad!.view(-1));
        // Micro-batches {r0, r1} and {r2} with the same global N: (3 + 0.3)/5 + 1/5 = 0.86, the same loss.
        var a = ClassConditionedLoss.WeightedNll(Mat(2, -1, -2, -3, 0), Vec(1, 0.1f), 5);
        var b = ClassConditionedLoss.WeightedNll(Mat(1, -0.5f, -0.5f), Vec(1), 5);
        Close(0.86, a.item<float>() + b.item<float>());
        Assert.Equal("weights", Assert.ThrowsAny<ArgumentException>(() => ClassConditionedLoss.WeightedNll(logp, Vec(1, 1), 5)).ParamName);
        Assert.Equal("totalTokens", Assert.ThrowsAny<ArgumentException>(() => ClassConditionedLoss.WeightedNll(logp, w, 0)).ParamName);
    }

    [Fact]
    public void Bad_arguments_name_the_parameter()
    {
        using var scope = NewDisposeScope();
        void Named(string param, Action act) => Assert.Equal(param, Assert.ThrowsAny<ArgumentException>(act).ParamName);
        var v = Vec(-1, -2);
        Named("policy1", () => OfflinePolicyLosses.Copg(Mat(1, -1, -2), v, v, v, v, v));
        Named("policy1", () => OfflinePolicyLosses.Copg(null!, v, v, v, v, v));
        Named("policy2", () => OfflinePolicyLosses.Copg(v, Vec(-1), v, v, v, v));
        Named("ref2", () => OfflinePolicyLosses.Copg(v, v, v, Vec(-1, -2, -3), v, v));
        Named("reward1", () => OfflinePolicyLosses.Copg(v, v, v, v, null!, v));
        Named("reward2", () => OfflinePolicyLosses.Copg(v, v, v, v, v, Vec(1)));
        Named("beta", () => OfflinePolicyLosses.Copg(v, v, v, v, v, v, beta: 0));
        Named("beta", () => OfflinePolicyLosses.Copg(v, v, v, v, v, v, beta: double.NaN));
        Named("policyLogp", () => OfflinePolicyLosses.Alol(Vec(), Vec(), Vec(), Vec()));
        Named("refLogp", () => OfflinePolicyLosses.Alol(v, Vec(-1), v, v));
        Named("rewards", () => OfflinePolicyLosses.Alol(v, v, null!, v));
        Named("values", () => OfflinePolicyLosses.Alol(v, v, v, Vec(1, 2, 3)));
        Named("clip", () => OfflinePolicyLosses.Alol(v, v, v, v, clip: 0));
        Named("clip", () => OfflinePolicyLosses.Alol(v, v, v, v, clip: 1));
        Named("values", () => OfflinePolicyLosses.AlolRefFree(v, v, Vec(1)));
        Named("beta", () => OfflinePolicyLosses.AlolKl(v, v, v, v, beta: 0));
        Named("refLogp", () => OfflinePolicyLosses.AlolKl(v, Vec(1), v, v));
        var t = Mat(2, -1, -2, -3, -4);
        Named("policyTokenLogp", () => OfflinePolicyLosses.AlolSeq(v, v, v, v, v));
        Named("mask", () => OfflinePolicyLosses.AlolSeq(t, t, Mat(1, 1, 1), v, v));
        Named("rewards", () => OfflinePolicyLosses.AlolSeq(t, t, t, Vec(1, 2, 3), Vec(1, 2, 3)));
        Named("values", () => OfflinePolicyLosses.AlolSeq(t, t, t, v, Vec(1)));
        Named("clip", () => OfflinePolicyLosses.AlolSeq(t, t, t, v, v, clip: 1.5));
    }
}
