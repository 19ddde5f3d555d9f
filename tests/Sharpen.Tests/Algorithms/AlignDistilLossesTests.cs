using Sharpen.Algorithms;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary>AlignDistil's teachers (the DPO/reference logit mix, the contrastive one, the adaptive weight) and its distillation
/// loss against numbers worked out by hand.</summary>
public class AlignDistilLossesTests
{
    static readonly float Ln3 = (float)Math.Log(3);

    [Fact]
    public void The_teacher_mixes_dpo_and_reference_log_probs_linearly()
    {
        using var scope = NewDisposeScope();
        // π_ref = [½, ½], π_dpo = [¾, ¼]. α = 2: π* ∝ π_dpo²/π_ref = [1.125, 0.125] → [0.9, 0.1]. α = 0 → π_ref, α = 1 → π_dpo.
        var reference = tensor(new float[] { 0, 0 }).reshape(1, 1, 2);
        var dpo = tensor(new float[] { Ln3, 0 }).reshape(1, 1, 2);
        var p2 = Values(AlignDistilLosses.TeacherLogProbs(reference, dpo, 2).exp());
        Close(0.9, p2[0]); Close(0.1, p2[1]);
        Close(0.5, Values(AlignDistilLosses.TeacherLogProbs(reference, dpo, 0).exp())[0]);
        Close(0.75, Values(AlignDistilLosses.TeacherLogProbs(reference, dpo, 1).exp())[0]);
    }

    [Fact]
    public void Distillation_loss_is_the_masked_forward_kl_and_its_gradient_is_student_minus_teacher()
    {
        using var scope = NewDisposeScope();
        // Position 0: teacher [0.9, 0.1], student uniform: KL = 0.9 ln 1.8 + 0.1 ln 0.2 = 0.3680642; ∂/∂logits = π_θ − π* = [−0.4, 0.4].
        // Position 1 is masked out: whatever its logits, it adds nothing and gets no gradient.
        var teacher = tensor(new float[] { 0.9f, 0.1f, 0.5f, 0.5f }).reshape(1, 2, 2).log();
        var logits = tensor(new float[] { 0, 0, 5, -5 }).reshape(1, 2, 2).requires_grad_(true);
        var (loss, kl) = AlignDistilLosses.Distill(logits, teacher, Mat(1, 1, 0));
        Close(0.3680642, loss.item<float>()); Close(0.3680642, kl);
        loss.backward();
        Close([-0.4, 0.4, 0, 0], logits.grad!);
    }

    [Fact]
    public void Contrastive_teacher_and_token_adaptive_weight_by_hand()
    {
        using var scope = NewDisposeScope();
        // π_dpo = [¾, ¼], π_rdpo = [¼, ¾] at position 0 (TV = ½); identical at position 1 (TV = 0).
        var dpo = tensor(new float[] { Ln3, 0, 1, 2 }).reshape(1, 2, 2);
        var rev = tensor(new float[] { 0, Ln3, 1, 2 }).reshape(1, 2, 2);
        // α_t = min(α_max, α/TV): α = 0.2, α_max = 1 → [0.4, 1] (the second capped).
        Close([0.4, 1.0], AlignDistilLosses.AdaptiveAlpha(dpo, rev, 0.2, 1.0));
        // Base uniform, α_t = ½ at position 0: log π* ∝ ½·(ln 3, −ln 3) → π* ∝ [√3, 1/√3] = [¾, ¼]. Position 1: diff 0 → the base.
        var baseLogits = zeros(1, 2, 2);
        var p = Values(AlignDistilLosses.ContrastiveTeacherLogProbs(baseLogits, dpo, rev, Mat(1, 0.5f, 0.5f)).exp());
        Close(0.75, p[0]); Close(0.25, p[1]); Close(0.5, p[2]); Close(0.5, p[3]);
    }

    [Fact]
    public void Mismatched_shapes_are_refused()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentException>(() => AlignDistilLosses.TeacherLogProbs(zeros(1, 2, 3), zeros(1, 2, 4), 1));
        Assert.Throws<ArgumentException>(() => AlignDistilLosses.Distill(zeros(1, 2, 3), zeros(1, 2, 3), zeros(1, 3)));
        Assert.Throws<ArgumentOutOfRangeException>(() => AlignDistilLosses.AdaptiveAlpha(zeros(1, 2, 3), zeros(1, 2, 3), 2, 1));
    }
}
