using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Sharpen.Training.Preference;

/// <summary>
/// AlignDistil settings (the <c>align_distil</c> section of a recipe): the teacher's checkpoints, its mixing weight α and the
/// step schedule. The teacher is log π_ref + α·(log π_dpo − log π_ref) (<see cref="AlignDistilLosses.TeacherLogProbs"/>), or,
/// with <see cref="ReverseModel"/>, the contrastive log π_ref + α_t·(log π_dpo − log π_rdpo) with the token-adaptive α_t
/// (<see cref="AlignDistilLosses.AdaptiveAlpha"/>, <see cref="AlignDistilLosses.ContrastiveTeacherLogProbs"/>).
/// </summary>
public sealed record AlignDistilOptions : StepSchedule
{
    /// <summary>The DPO model's checkpoint folder (Hugging Face layout). Required.</summary>
    public string? DpoModel { get; init; }
    /// <summary>The reference model's checkpoint folder (the model DPO started from). Null = the student's starting weights.</summary>
    public string? ReferenceModel { get; init; }
    /// <summary>A reverse DPO model (trained on swapped preferences): turns on the contrastive teacher with the token-adaptive weight.</summary>
    public string? ReverseModel { get; init; }
    /// <summary>α = β_dpo/β: 0 is the reference, 1 the DPO model, &gt; 1 extrapolates (the contrastive teacher's base weight).</summary>
    public double Alpha { get; init; } = 1.0;
    /// <summary>The cap α_max of the token-adaptive weight (contrastive teacher only; null = 10·α).</summary>
    public double? AlphaMax { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field (recipe key in snake_case).</summary>
    public AlignDistilOptions Validate()
    {
        if (string.IsNullOrWhiteSpace(DpoModel)) throw new ArgumentException("align_distil.dpo_model is required: the DPO model's checkpoint folder (the teacher)");
        if (!(Alpha >= 0) || double.IsInfinity(Alpha)) throw new ArgumentException($"align_distil.alpha must be a finite number ≥ 0, got {Alpha}");
        if (ReverseModel is null && AlphaMax is not null)
            throw new ArgumentException("align_distil.alpha_max caps the token-adaptive weight of the contrastive teacher; it needs align_distil.reverse_model");
        if (ReverseModel is not null)
        {
            if (!(Alpha > 0)) throw new ArgumentException($"align_distil.alpha must be > 0 with a reverse_model, got {Alpha}");
            if (AlphaMax is { } m && (!(m >= Alpha) || double.IsInfinity(m)))
                throw new ArgumentException($"align_distil.alpha_max must be finite and ≥ align_distil.alpha ({Alpha}), got {m}");
        }
        ValidateSchedule("align_distil");
        return this;
    }
}

/// <summary>What an AlignDistil run produced: steps, the last step's loss (the masked mean KL(π* ‖ π_θ)), the final checkpoint.</summary>
public sealed record AlignDistilResult(int Steps, double FinalLoss, string FinalCheckpoint);

/// <summary>
/// AlignDistil (Zhang et al. 2025, arXiv:2503.02832) on the <see cref="StepLoop"/>: per step take BatchSize prompt/response
/// rows in a seeded order; run the frozen DPO model, reference (and reverse DPO model) over them without gradients and build
/// the teacher distribution at every response position (<see cref="AlignDistilOptions"/>); run the student with gradients and
/// minimise the token-level forward KL(π* ‖ π_θ) averaged over response tokens (<see cref="AlignDistilLosses.Distill"/>).
/// The responses are the data's, never samples from the student (the RLHF objective behind the teacher takes y ~ π_θ; a
/// sampling mode is not built): docs/recipes.md, "AlignDistil".
/// </summary>
public sealed class AlignDistilTrainer(CausalLM student, ITokenizer tokenizer, CausalLM dpo, CausalLM reference, CausalLM? reverse, AlignDistilOptions options)
{
    /// <summary>Receives one human-readable line per log step.</summary>
    public Action<string>? Log { get; init; }

    AlignDistilOptions _o = options.Validate();

    sealed record Example(int[] Prompt, int[] Completion);

    /// <summary>Trains on (prompt, response) pairs; writes metrics.jsonl, summary.json, checkpoints/ and final/ into <paramref name="outDir"/>.</summary>
    public AlignDistilResult Run(IReadOnlyList<(string Prompt, string Completion)> rows, string outDir, bool resume = false, CancellationToken cancel = default)
    {
        if (rows.Count == 0) throw new ArgumentException("the AlignDistil set is empty");
        SameVocab(dpo, "align_distil.dpo_model");
        SameVocab(reference, "align_distil.reference_model");
        if (reverse is not null) SameVocab(reverse, "align_distil.reverse_model");
        long started = Stopwatch.GetTimestamp();
        Directory.CreateDirectory(outDir);
        var eos = CompletionTokens.EosId(tokenizer, student.Config);
        var data = rows.Select(r =>
        {
            var (p, c) = CompletionTokens.Row(tokenizer, eos, r.Prompt, r.Completion, "a row's prompt");
            return new Example(p, c);
        }).ToList();
        _o = StepSchedule.Sized(_o, data.Count);
        int padId = tokenizer.PadTokenId ?? 0;
        double alphaMax = _o.AlphaMax ?? 10 * _o.Alpha;
        foreach (var m in new[] { dpo, reference, reverse }) m?.eval();

        student.train();
        using var opt = optim.AdamW(student.TrainableParameters(), lr: _o.LearningRate, weight_decay: 0.0);
        var work = new StepWork
        {
            Items = data.Count,
            Backward = batch =>
            {
                var micro = batch.Select(i => data[i]).ToList();
                var sb = SequenceBatch.Build(micro.Select(e => (IReadOnlyList<int>)e.Prompt).ToList(),
                    micro.Select(e => (IReadOnlyList<int>)e.Completion).ToList(), padId);
                long p = sb.PromptLength, a = sb.CompletionIds.shape[1];
                Tensor teacher;
                double alphaMean = _o.Alpha;
                using (no_grad())
                {
                    var lRef = ResponseLogits(reference, sb, p, a);                                 // (b, A, V)
                    var lDpo = ResponseLogits(dpo, sb, p, a);                                       // (b, A, V)
                    if (reverse is null) teacher = AlignDistilLosses.TeacherLogProbs(lRef, lDpo, _o.Alpha);
                    else
                    {
                        var lRev = ResponseLogits(reverse, sb, p, a);                               // (b, A, V)
                        var alpha = AlignDistilLosses.AdaptiveAlpha(lDpo, lRev, _o.Alpha, alphaMax);   // (b, A)
                        alphaMean = ((alpha * sb.CompletionMask).sum() / sb.CompletionMask.sum().clamp_min(1)).item<float>();
                        teacher = AlignDistilLosses.ContrastiveTeacherLogProbs(lRef, lDpo, lRev, alpha);
                    }
                }
                var studentLogits = ResponseLogits(student, sb, p, a);                              // (b, A, V), with grad
                var (loss, kl) = AlignDistilLosses.Distill(studentLogits, teacher, sb.CompletionMask);
                loss.backward();
                var metrics = new List<KeyValuePair<string, double>> { new("kl", kl) };
                if (reverse is not null) metrics.Add(new("alpha_mean", alphaMean));
                return new StepOutcome(kl, metrics);
            },
            Summary = r => new JsonObject
            {
                ["steps"] = r.Steps, ["loss_name"] = "align_distil", ["final_loss"] = StepLoop.Round(r.FinalLoss), ["examples"] = data.Count,
                ["teacher"] = reverse is null ? "dpo_reference_mix" : "contrastive_adaptive", ["alpha"] = _o.Alpha,
                ["seconds"] = Math.Round(r.Seconds, 2), ["final_checkpoint"] = r.FinalCheckpoint,
            },
        };
        var loop = new StepLoop(student, tokenizer, opt, student.TrainableParameters(), StepLoopSettings.From("align_distil", _o) with { LossLabel = "align_distil" })
            { Log = Log, Started = started };
        var result = loop.Run(work, outDir, resume, cancel);
        return new AlignDistilResult(result.Steps, result.FinalLoss, result.FinalCheckpoint);
    }

    /// <summary>The logits that predict the response tokens, <c>(b, A, V)</c> float32: positions P−1 … P+A−2.</summary>
    static Tensor ResponseLogits(CausalLM model, SequenceBatch sb, long p, long a) =>
        model.Forward(sb.InputIds, sb.AttentionMask).Logits.narrow(1, p - 1, a).to(ScalarType.Float32);

    void SameVocab(CausalLM other, string key)
    {
        if (other.Config.VocabSize != student.Config.VocabSize)
            throw new ArgumentException($"{key}: its vocabulary has {other.Config.VocabSize} tokens but the student's has {student.Config.VocabSize}; " +
                "the teacher is mixed token by token, so every model must share the student's tokenizer");
    }
}
