using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;
using Sharpen.Rewards;
using Sharpen.Algorithms;

namespace Sharpen.Training.RewardModels;

/// <summary>Bradley–Terry reward-model settings (recipe keys under <c>reward_model</c>).</summary>
public sealed record RewardModelOptions : StepSchedule
{
    /// <summary>Margin m in −log σ(r_c − r_r − m) (Llama 2's margin variant; 0 = plain Bradley–Terry).</summary>
    public double Margin { get; init; } = 0.0;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field (recipe key in snake_case).</summary>
    public RewardModelOptions Validate()
    {
        ValidateSchedule("reward_model");
        OptionChecks.NonNegative("reward_model", Margin, "margin");
        return this;
    }
}

/// <summary>What a reward-model run produced.</summary>
public sealed record RewardModelResult(int Steps, double FinalLoss, double FinalAccuracy, double FinalMargin, string FinalCheckpoint);

/// <summary>
/// Bradley–Terry reward model (Ouyang et al. 2022): a <see cref="CausalLM"/> backbone plus a <see cref="ScalarHead"/>;
/// r(x, y) is the head's value at the last real token of prompt + completion + EOS. Per step, BatchSize pairs in a
/// seeded order are scored in one stacked pass and trained with −log σ(r_c − r_r − m) = softplus(−(r_c − r_r − m)),
/// AdamW on backbone and head, warm-up + cosine learning rate. The final checkpoint (with
/// <c>scalar_head.safetensors</c> and the tokenizer) goes to <c>outDir/final</c>; <see cref="Rewards.ModelReward"/> reads it.
/// </summary>
public sealed class RewardModelTrainer(CausalLM backbone, ScalarHead head, ITokenizer tokenizer, RewardModelOptions options)
{
    /// <summary>Receives one human-readable line per log step.</summary>
    public Action<string>? Log { get; init; }

    readonly RewardModelOptions _o = options.Validate();

    sealed record Pair(int[] Prompt, int[] Chosen, int[] Rejected);

    /// <summary>Trains; writes metrics.jsonl, summary.json and final/ (model, head, tokenizer) into <paramref name="outDir"/>.</summary>
    public RewardModelResult Run(IReadOnlyList<PreferenceExample> pairs, string outDir, CancellationToken cancel = default) =>
        Run(pairs, outDir, resume: false, cancel);

    /// <summary>
    /// Trains as <see cref="Run(IReadOnlyList{PreferenceExample}, string, CancellationToken)"/>; with <paramref name="resume"/>,
    /// continues from the newest checkpoint under <c>outDir/checkpoints</c> (backbone, head, optimizer, step, data position),
    /// ending with the weights an uninterrupted run would have.
    /// </summary>
    public RewardModelResult Run(IReadOnlyList<PreferenceExample> pairs, string outDir, bool resume, CancellationToken cancel = default)
    {
        if (pairs.Count == 0) throw new ArgumentException("the preference set is empty");
        var sw = Stopwatch.StartNew();
        Directory.CreateDirectory(outDir);
        var data = pairs.Select(e =>
        {
            var (p, c) = RewardModelScoring.Encode(tokenizer, backbone.Config, e.Prompt, e.Chosen);
            var (_, r) = RewardModelScoring.Encode(tokenizer, backbone.Config, e.Prompt, e.Rejected);
            return new Pair(p, c, r);
        }).ToList();
        int padId = tokenizer.PadTokenId ?? 0;

        backbone.train();
        head.train();
        var parameters = backbone.parameters().Concat(head.parameters()).ToList();
        using var opt = optim.AdamW(parameters, lr: _o.LearningRate, weight_decay: 0.0);
        var schedule = new LrSchedule(_o.LearningRate, _o.WarmupSteps, _o.MaxSteps, _o.MinLrRatio);
        var runLog = new RunLog(outDir, append: resume);
        var ckptRoot = Path.Combine(outDir, "checkpoints");

        int step = 0, epoch = 0, position = 0;
        if (resume) (step, epoch, position) = TrainingCheckpoint.Resume(ckptRoot, backbone, opt, runLog, Log, head);
        var cursor = new DataCursor(data.Count, _o.Seed, epoch, position);
        double lastLoss = double.NaN, lastAccuracy = double.NaN, lastMargin = double.NaN;
        while (step < _o.MaxSteps)
        {
            cancel.ThrowIfCancellationRequested();
            var batch = cursor.Next(_o.BatchSize);
            double lr = schedule.At(step);
            foreach (var g in opt.ParamGroups) g.LearningRate = lr;
            var (loss, accuracy, margin, gradNorm) = TrainStep(opt, parameters, data, batch, padId);   // before the update
            step++;
            (lastLoss, lastAccuracy, lastMargin) = (loss, accuracy, margin);

            if (step % _o.LogEvery == 0 || step == _o.MaxSteps)
            {
                runLog.Metrics(new JsonObject
                {
                    ["step"] = step, ["epoch"] = cursor.Epoch, ["loss"] = Round(loss), ["accuracy"] = Round(accuracy),
                    ["margin"] = Round(margin), ["lr"] = lr, ["grad_norm"] = Round(gradNorm),
                    ["elapsed_s"] = Math.Round(sw.Elapsed.TotalSeconds, 2),
                });
                Log?.Invoke($"step {step}/{_o.MaxSteps}  loss {loss:F4}  acc {accuracy:P0}  margin {margin:F4}  lr {lr:E2}");
            }
            if (_o.CheckpointEvery > 0 && step % _o.CheckpointEvery == 0 && step < _o.MaxSteps)
                Log?.Invoke($"checkpoint {TrainingCheckpoint.Save(ckptRoot, step, backbone, tokenizer, opt, cursor.CheckpointState(), _o.KeepCheckpoints, head)}");
        }

        var finalDir = Path.Combine(outDir, "final");
        HfCheckpoint.SaveAtomically(finalDir, backbone, tokenizer, head);
        sw.Stop();
        runLog.Summary(new JsonObject
        {
            ["steps"] = step, ["final_loss"] = Round(lastLoss), ["final_accuracy"] = Round(lastAccuracy),
            ["final_margin"] = Round(lastMargin), ["reward_margin"] = _o.Margin, ["pairs"] = data.Count,
            ["seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 2), ["final_checkpoint"] = finalDir,
        });
        return new RewardModelResult(step, lastLoss, lastAccuracy, lastMargin, finalDir);
    }

    (double Loss, double Accuracy, double Margin, double GradNorm) TrainStep(optim.Optimizer opt, List<TorchSharp.Modules.Parameter> parameters,
        List<Pair> data, List<int> batch, int padId)
    {
        using var scope = NewDisposeScope();
        opt.zero_grad();
        int b = batch.Count;
        var pairs = batch.Select(i => data[i]).ToList();
        // One stacked pass: rows 0..b-1 are the chosen completions, rows b..2b-1 the rejected ones.
        var sb = SequenceBatch.Build(pairs.Select(p => (IReadOnlyList<int>)p.Prompt).Concat(pairs.Select(p => p.Prompt)).ToList(),
            pairs.Select(p => (IReadOnlyList<int>)p.Chosen).Concat(pairs.Select(p => p.Rejected)).ToList(), padId);
        var r = RewardModelScoring.Rewards(backbone, head, sb);
        var rc = r.narrow(0, 0, b);
        var rr = r.narrow(0, b, b);
        var loss = PreferenceLosses.BradleyTerry(rc, rr, _o.Margin);
        double lossValue = loss.item<float>();
        var diff = (rc - rr).detach();
        double accuracy = (diff > 0).to(ScalarType.Float32).mean().item<float>();
        double margin = diff.mean().item<float>();
        loss.backward();
        double norm = _o.MaxGradNorm > 0 ? nn.utils.clip_grad_norm_(parameters, _o.MaxGradNorm) : double.NaN;
        opt.step();
        return (lossValue, accuracy, margin, norm);
    }


    static double Round(double x) => double.IsFinite(x) ? Math.Round(x, 6) : x;
}
