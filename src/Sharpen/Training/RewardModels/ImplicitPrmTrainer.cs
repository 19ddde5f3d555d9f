using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Sharpen.Training.RewardModels;

/// <summary>Implicit-PRM settings (recipe keys under <c>implicit_prm</c>). Defaults follow Yuan et al. 2024 where they apply (β = 0.05, cross-entropy).</summary>
public sealed record ImplicitPrmOptions : StepSchedule
{
    /// <summary>The shared schedule's defaults, with a lower peak learning rate.</summary>
    public ImplicitPrmOptions() { LearningRate = 5e-6; }

    /// <summary><c>ce</c> (cross-entropy on outcome labels) or <c>dpo</c> (pairs of a correct and an incorrect completion of one prompt).</summary>
    public string Loss { get; init; } = "ce";
    /// <summary>β in r = β log π_θ/π_ref.</summary>
    public double Beta { get; init; } = 0.05;
    /// <summary>Completions or pairs per forward pass (0 = the whole batch); the loss is divided by the batch, so this does not change the gradient.</summary>
    public int MicroBatchSize { get; init; }
    /// <summary>The step rule saved with the model (<see cref="Data.StepSplitter.Parse"/>); completions are tokenised step by step with it, as the scorer does.</summary>
    public string StepSplitter { get; init; } = "newline";

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field (recipe key in snake_case).</summary>
    public ImplicitPrmOptions Validate()
    {
        if (Loss is not ("ce" or "dpo")) throw new ArgumentException($"implicit_prm.loss is '{Loss}'; expected ce or dpo");
        OptionChecks.Positive("implicit_prm", Beta, "beta");
        ValidateSchedule("implicit_prm");
        OptionChecks.NonNegative("implicit_prm", MicroBatchSize, "micro_batch_size");
        try { Data.StepSplitter.Parse(StepSplitter); }
        catch (ArgumentException e) { throw new ArgumentException($"implicit_prm.step_splitter: {e.Message}"); }
        return this;
    }
}

/// <summary>What an implicit-PRM run produced.</summary>
/// <param name="Steps">Optimizer steps.</param>
/// <param name="FinalLoss">Loss of the last step.</param>
/// <param name="FinalAccuracy">ce: fraction of completions with σ(r) on the side of 0.5 their label is; dpo: fraction of pairs with r(correct) &gt; r(incorrect).</param>
/// <param name="Examples">Completions (ce) or pairs (dpo) trained on.</param>
/// <param name="FinalCheckpoint">The folder <see cref="ImplicitPrm.Load"/> reads.</param>
public sealed record ImplicitPrmResult(int Steps, double FinalLoss, double FinalAccuracy, int Examples, string FinalCheckpoint);

/// <summary>
/// Trains an implicit PRM (Yuan et al. 2024): the policy starts from a checkpoint and a frozen copy of that checkpoint is
/// the reference; the outcome reward is r = β·Σ log π_θ/π_ref over the completion's tokens (steps tokenised as
/// <see cref="StepEncoding"/> does, then EOS), trained on outcome labels with <see cref="ProcessLosses.ImplicitCrossEntropy"/>
/// or, on (correct, incorrect) pairs of one prompt, <see cref="ProcessLosses.ImplicitDpo"/>. The reference's summed log-probs
/// are computed once before training. Writes metrics.jsonl, summary.json and <c>final/</c>: the policy with its tokenizer,
/// the reference in <c>final/reference/</c> and <c>implicit_prm.json</c> (β, loss, step splitter), so the folder is
/// self-contained. No mid-run checkpoints or resume.
/// </summary>
public sealed class ImplicitPrmTrainer(CausalLM policy, ITokenizer tokenizer, ImplicitPrmOptions options)
{
    /// <summary>Receives one human-readable line per log step.</summary>
    public Action<string>? Log { get; init; }

    readonly ImplicitPrmOptions _o = options.Validate();

    /// <summary>The ids the trainer scores: the prompt with special tokens, the completion's steps tokenised one by one, then EOS.</summary>
    public static (int[] Prompt, int[] Completion) Encode(ITokenizer tokenizer, int eos, StepSplitter splitter, string prompt, string completion)
    {
        var steps = splitter.Split(completion);
        if (steps.Count == 0)
        {
            return (CompletionTokens.PromptIds(tokenizer, prompt), [eos]);
        }
        var e = StepEncoding.Encode(tokenizer, prompt, steps, eos);
        return (e.Prompt, e.Completion);
    }

    /// <summary>Trains on outcome-labelled completions; writes into <paramref name="outDir"/>.</summary>
    public ImplicitPrmResult Run(IReadOnlyList<OutcomeExample> examples, string outDir, CancellationToken cancel = default) =>
        Run(examples, outDir, resume: false, cancel);

    /// <summary>As <see cref="Run(IReadOnlyList{OutcomeExample}, string, CancellationToken)"/>; with <paramref name="resume"/>, continues
    /// from the newest checkpoint under <c>outDir/checkpoints</c>. The policy handed in must be the starting model: the
    /// reference is a frozen copy of it, taken before the checkpoint's weights are loaded.</summary>
    public ImplicitPrmResult Run(IReadOnlyList<OutcomeExample> examples, string outDir, bool resume, CancellationToken cancel = default)
    {
        if (examples.Count == 0) throw new ArgumentException("the outcome-labelled set is empty");
        long started = Stopwatch.GetTimestamp();
        Directory.CreateDirectory(outDir);
        var splitter = Data.StepSplitter.Parse(_o.StepSplitter);
        int eos = CompletionTokens.EosId(tokenizer, policy.Config), padId = tokenizer.PadTokenId ?? 0;
        var enc = examples.Select(e => Encode(tokenizer, eos, splitter, e.Prompt, e.Completion)).ToList();
        bool dpo = _o.Loss == "dpo";
        // Units of training: one completion (ce) or a (correct, incorrect) pair of the same prompt (dpo).
        var units = dpo ? Pairs(examples) : Enumerable.Range(0, examples.Count).Select(i => (i, -1)).ToList();
        if (units.Count == 0) throw new ArgumentException("no prompt has both a correct (label ≥ 0.5) and an incorrect completion, so the dpo loss has no pairs");

        using var reference = policy.Copy(trainable: false);
        var refLogp = SummedLogProbs(reference, enc, padId, _o.MicroBatchSize == 0 ? _o.BatchSize : _o.MicroBatchSize);
        int micro = _o.MicroBatchSize == 0 ? _o.BatchSize : _o.MicroBatchSize;

        policy.train();
        var parameters = policy.parameters().Where(p => p.requires_grad).ToList();
        using var opt = optim.AdamW(parameters, lr: _o.LearningRate, weight_decay: 0.0);
        double lastAcc = double.NaN;
        var work = new StepWork
        {
            Items = units.Count,
            Backward = indices =>
            {
                List<(int A, int B)> batch = indices.Select(i => units[i]).ToList();
                double loss = 0, hits = 0, rewardSum = 0;
                for (int start = 0; start < batch.Count; start += micro)
                {
                    using var scope = NewDisposeScope();
                    var part = batch.Skip(start).Take(micro).ToList();
                    var rows = dpo ? part.Select(u => u.A).Concat(part.Select(u => u.B)).ToList() : part.Select(u => u.A).ToList();
                    var sb = SequenceBatch.Build(rows.Select(i => (IReadOnlyList<int>)enc[i].Prompt).ToList(), rows.Select(i => (IReadOnlyList<int>)enc[i].Completion).ToList(), padId);
                    var lp = Scoring.CompletionLogProbs(policy, sb).sum(1);                            // (rows)
                    var rf = tensor(rows.Select(i => refLogp[i]).ToArray());
                    Tensor l;
                    var r = (_o.Beta * (lp.detach() - rf)).to(ScalarType.Float64).data<double>().ToArray();
                    if (dpo)
                    {
                        int m = part.Count;
                        l = ProcessLosses.ImplicitDpo(lp.narrow(0, 0, m), rf.narrow(0, 0, m), lp.narrow(0, m, m), rf.narrow(0, m, m), _o.Beta, batch.Count);
                        for (int k = 0; k < m; k++) { if (r[k] > r[m + k]) hits++; rewardSum += r[k] - r[m + k]; }
                    }
                    else
                    {
                        var labels = rows.Select(i => (float)examples[i].Label).ToArray();
                        l = ProcessLosses.ImplicitCrossEntropy(lp, rf, tensor(labels), _o.Beta, batch.Count);
                        for (int k = 0; k < rows.Count; k++) { if ((r[k] >= 0) == (labels[k] >= 0.5)) hits++; rewardSum += r[k]; }
                    }
                    loss += l.item<float>();
                    l.backward();
                }
                lastAcc = hits / batch.Count;
                return new StepOutcome(loss, [new("accuracy", lastAcc), new(dpo ? "reward_margin" : "reward_mean", rewardSum / batch.Count)]);
            },
            WriteFinal = finalDir =>
            {
                HfCheckpoint.SaveAtomically(Path.Combine(finalDir, ImplicitPrm.ReferenceFolder), reference, tokenizer);
                ImplicitPrm.WriteMarker(finalDir, _o.Beta, _o.StepSplitter, _o.Loss);
            },
            Summary = r => new JsonObject
            {
                ["steps"] = r.Steps, ["final_loss"] = StepLoop.Round(r.FinalLoss), ["final_accuracy"] = StepLoop.Round(lastAcc), ["loss"] = _o.Loss,
                ["beta"] = _o.Beta, [dpo ? "pairs" : "completions"] = units.Count, ["step_splitter"] = _o.StepSplitter,
                ["seconds"] = Math.Round(r.Seconds, 2), ["final_checkpoint"] = r.FinalCheckpoint,
            },
        };
        var loop = new StepLoop(policy, tokenizer, opt, parameters, StepLoopSettings.From("implicit_prm", StepSchedule.Sized(_o, units.Count))) { Log = Log, Started = started };
        var result = loop.Run(work, outDir, resume, cancel);
        return new ImplicitPrmResult(result.Steps, result.FinalLoss, lastAcc, units.Count, result.FinalCheckpoint);
    }

    /// <summary>Every (correct, incorrect) pair of completions sharing a prompt, prompts in first-seen order.</summary>
    static List<(int, int)> Pairs(IReadOnlyList<OutcomeExample> examples)
    {
        var pairs = new List<(int, int)>();
        foreach (var g in Enumerable.Range(0, examples.Count).GroupBy(i => examples[i].Prompt))
            foreach (var c in g.Where(i => examples[i].Label >= 0.5))
                foreach (var w in g.Where(i => examples[i].Label < 0.5))
                    pairs.Add((c, w));
        return pairs;
    }

    static float[] SummedLogProbs(CausalLM model, List<(int[] Prompt, int[] Completion)> enc, int padId, int micro)
    {
        var result = new float[enc.Count];
        using var _ = no_grad();
        for (int start = 0; start < enc.Count; start += micro)
        {
            using var scope = NewDisposeScope();
            var part = enc.Skip(start).Take(micro).ToList();
            var sb = SequenceBatch.Build(part.Select(e => (IReadOnlyList<int>)e.Prompt).ToList(), part.Select(e => (IReadOnlyList<int>)e.Completion).ToList(), padId);
            var s = Scoring.CompletionLogProbs(model, sb).sum(1).data<float>().ToArray();
            Array.Copy(s, 0, result, start, s.Length);
        }
        return result;
    }
}
