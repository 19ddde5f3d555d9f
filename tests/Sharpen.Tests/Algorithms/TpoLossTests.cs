using Sharpen.Algorithms;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary>TPO's listwise ranking loss and Adaptive Step Reward against numbers worked out by hand from their formulas.</summary>
public class TpoLossTests
{
    [Fact]
    public void A_two_response_list_without_lambda_weights_is_dpo()
    {
        using var scope = NewDisposeScope();
        // r = [1, −1], ψ = [1, 0], β = 0.5: one pair, z = 0.5·2 = 1, loss = −log σ(1) = ln(1 + e^−1) = 0.3132617.
        var (loss, m) = ListwisePreferenceLosses.Tpo(Mat(1, 1, -1), Mat(1, 1, 0), beta: 0.5, lambdaWeighted: false);
        Close(0.3132617, loss.item<float>());
        var dpo = PreferenceLosses.Dpo(new PreferenceInput(Vec(1), Vec(-1), Vec(0), Vec(0)), beta: 0.5).Loss;
        Close(dpo.item<float>(), loss.item<float>());
        Close(1, m.Accuracy); Close(1, m.Margin); Close(0.5, m.ChosenReward); Close(-0.5, m.RejectedReward);
    }

    [Fact]
    public void Lambda_weighted_list_loss_gradient_and_metrics_by_hand()
    {
        using var scope = NewDisposeScope();
        // r = [0.2, 0.5, −0.4], labels ψ = [2, 1, 0], β = 1. The model ranks response 1 first, 0 second, 2 third:
        //   1/D(τ) = 1/log2(1+τ): response 0 → 1/log2 3 = 0.6309298, response 1 → 1, response 2 → 0.5; gains 2^ψ − 1 = [3, 1, 0].
        //   λ01 = 2·0.3690702 = 0.7381404, λ02 = 3·0.1309298 = 0.3927893, λ12 = 1·0.5 = 0.5.
        //   z01 = −0.3, z02 = 0.6, z12 = 0.9; −log σ: 0.8543552, 0.4374879, 0.3411538.
        //   loss = (0.7381404·0.8543552 + 0.3927893·0.4374879 + 0.5·0.3411538) / 3 pairs = 0.3243506.
        var r = Mat(1, 0.2f, 0.5f, -0.4f).requires_grad_(true);
        var (loss, m) = ListwisePreferenceLosses.Tpo(r, Mat(1, 2, 1, 0), beta: 1.0);
        Close(0.3243506, loss.item<float>());
        loss.backward();
        // ∂/∂r0 = −(λ01 σ(0.3) + λ02 σ(−0.6))/3 = −0.1877339; ∂/∂r2 = (λ02 σ(−0.6) + λ12 σ(−0.9))/3 = 0.0945692 (λ held fixed).
        var g = Values(r.grad!);
        Close(-0.1877339, g[0]); Close(0.0945692, g[2]);
        // Two of the three ordered pairs are ranked right; margins −0.3, 0.6, 0.9 → mean 0.4; top ψ = response 0, bottom = 2.
        Close(2.0 / 3, m.Accuracy); Close(0.4, m.Margin); Close(0.2, m.ChosenReward); Close(-0.4, m.RejectedReward);
        // Unweighted: (0.8543552 + 0.4374879 + 0.3411538)/3 = 0.5443323.
        Close(0.5443323, ListwisePreferenceLosses.Tpo(r, Mat(1, 2, 1, 0), beta: 1.0, lambdaWeighted: false).Loss.item<float>());
    }

    [Fact]
    public void Tpo_on_pairs_is_lambda_times_dpo_and_is_registered_listwise()
    {
        using var scope = NewDisposeScope();
        // A pair is a list of two with ψ = [1, 0]: λ = (2¹ − 1)·(1/log2 2 − 1/log2 3) = 0.3690702 in either model order.
        var x = new PreferenceInput(Vec(-1, -3), Vec(-2, -1), Vec(-1.5f, -2), Vec(-1.5f, -2));
        var dpo = PreferenceLosses.Dpo(x, 0.5).Loss.item<float>();
        Close(0.3690702 * dpo, ListwisePreferenceLosses.TpoPairs(x, 0.5).Loss.item<float>());
        Assert.True(PreferenceLosses.Registry.Get("tpo").Listwise);
        Assert.Throws<ArgumentException>(() => new Sharpen.Training.Preference.OnlineDpoOptions { Loss = "tpo" }.Validate());
    }

    [Fact]
    public void Padded_responses_and_ties_form_no_pairs()
    {
        using var scope = NewDisposeScope();
        // List [r0, r1, pad]: only (0, 1) counts; the pad's reward 100 and label −5 change nothing. Tied labels give no pair.
        var (loss, _) = ListwisePreferenceLosses.Tpo(Mat(1, 1, -1, 100), Mat(1, 1, 0, -5), Mat(1, 1, 1, 0), beta: 0.5, lambdaWeighted: false);
        Close(0.3132617, loss.item<float>());
        var (tied, _) = ListwisePreferenceLosses.Tpo(Mat(1, 1, -1), Mat(1, 1, 1), beta: 0.5);
        Close(0, tied.item<float>());
    }

    [Fact]
    public void Adaptive_step_reward_weights_steps_by_similarity_to_the_top_response()
    {
        using var scope = NewDisposeScope();
        // Response 0 (top): step log-ratio sums [2, 4] over [2, 2] tokens → means [1, 2]; embeddings [1,0], [0,1].
        // Response 1: sums [3, −2, 7] over [1, 2, 0] tokens (third step missing) → means [3, −1]; embeddings [1,0], [1,0], [0,0].
        //   weights 1 + cos to the top's same step: response 0 → [2, 2]; response 1 → [1 + 1, 1 + 0] = [2, 1].
        //   r0 = (2·1 + 2·2)/4 = 1.5; r1 = (2·3 + 1·(−1))/3 = 5/3.  Without embeddings: r1 = (3 − 1)/2 = 1.
        var sums = tensor(new float[] { 2, 4, 0, 3, -2, 7 }).reshape(1, 2, 3);
        var lens = tensor(new float[] { 2, 2, 0, 1, 2, 0 }).reshape(1, 2, 3);
        var emb = tensor(new float[] { 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0 }).reshape(1, 2, 3, 2);
        var r = Values(ListwisePreferenceLosses.AdaptiveStepRewards(sums, lens, emb));
        Close(1.5, r[0]); Close(5.0 / 3, r[1]);
        var plain = Values(ListwisePreferenceLosses.AdaptiveStepRewards(sums, lens));
        Close(1.5, plain[0]); Close(1.0, plain[1]);
    }

    [Fact]
    public void Bad_shapes_are_refused_with_the_name_of_the_argument()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentException>(() => ListwisePreferenceLosses.Tpo(Mat(1, 1, 2), Mat(1, 1, 2, 3)));
        Assert.Throws<ArgumentException>(() => ListwisePreferenceLosses.Tpo(Vec(1, 2), Vec(1, 2)));
        Assert.Throws<ArgumentOutOfRangeException>(() => ListwisePreferenceLosses.Tpo(Mat(1, 1, 2), Mat(1, 1, 2), beta: 0));
    }
}
