using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tasks;
using Sharpen.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;
using Sharpen.Evaluation;
using Sharpen.Algorithms;

namespace Sharpen.Training.Sft;

/// <summary>What an SFT run produced.</summary>
public sealed record SftResult(int Steps, double FinalLoss, double? EvalLoss, EvalResult? Eval, string FinalCheckpoint, double Seconds);

/// <summary>
/// Supervised fine-tuning, top to bottom: tokenize once; per step take BatchSize × GradientAccumulation
/// examples in a seeded order, run the micro-batches (loss normalised by the step's total completion
/// tokens, so accumulation equals one large batch), clip, AdamW step with warm-up + cosine learning
/// rate; log, evaluate and checkpoint on schedule. Resuming restores weights, optimizer moments,
/// step and data position, so a stopped-and-resumed run ends where an uninterrupted one would.
/// With <see cref="SftOptions.ClassWeights"/> it is C-RLFT (OpenChat): each example's prompt is prefixed with its class's
/// condition, and its token log-likelihood is weighted by its class's weight in
/// <see cref="Algorithms.ClassConditionedLoss.WeightedNll"/> (still divided by the step's unweighted token count, so
/// accumulation stays exact); generation for evaluation conditions on the expert class's prefix.
/// </summary>
public sealed class SftTrainer(CausalLM model, ITokenizer tokenizer, SftOptions options)
{
    /// <summary>Receives one human-readable line per log step (progress, evaluation, checkpoints).</summary>
    public Action<string>? Log { get; init; }
    /// <summary>Optional task: held-out problems are generated greedily and verified for <c>eval_accuracy</c>.</summary>
    public IVerifiableTask? Task { get; init; }
    /// <summary>Held-out problems for task accuracy.</summary>
    public IReadOnlyList<Problem> EvalProblems { get; init; } = [];
    /// <summary>Stop strings for evaluation generation.</summary>
    public IReadOnlyList<string> EvalStopStrings { get; init; } = [];

    readonly SftOptions _o = options.Validate();

    sealed record Example(int[] Prompt, int[] Completion, float Weight = 1f);

    /// <summary>Trains; writes metrics.jsonl, summary.json, checkpoints/ and final/ into <paramref name="outDir"/>.</summary>
    public SftResult Run(IReadOnlyList<SftExample> train, IReadOnlyList<SftExample> heldOut, string outDir, bool resume = false,
        CancellationToken cancel = default)
    {
        if (train.Count == 0) throw new ArgumentException("the training set is empty");
        var sw = Stopwatch.StartNew();
        int truncated = 0;
        var data = Encode(train, ref truncated);
        var evalData = Encode(heldOut.Take(_o.EvalExamples).ToList(), ref truncated);
        int padId = tokenizer.PadTokenId ?? 0;
        var evalProblems = ConditionOnExpert(EvalProblems, _o);

        model.train();
        var trainable = model.TrainableParameters().ToList();   // all, or the LoRA adapters alone
        var decay = trainable.Where(p => p.dim() >= 2).ToList();
        var noDecay = trainable.Where(p => p.dim() < 2).ToList();
        using var opt = optim.AdamW(
            [new TorchSharp.Modules.AdamW.ParamGroup(decay, new TorchSharp.Modules.AdamW.Options { weight_decay = _o.WeightDecay }),
             new TorchSharp.Modules.AdamW.ParamGroup(noDecay, new TorchSharp.Modules.AdamW.Options { weight_decay = 0.0 })],
            lr: _o.LearningRate, beta1: _o.Beta1, beta2: _o.Beta2);
        var schedule = new LrSchedule(_o.LearningRate, _o.WarmupSteps, _o.MaxSteps, _o.MinLrRatio);
        var ckptRoot = Path.Combine(outDir, "checkpoints");

        int step = 0, epoch = 0, position = 0;
        var runLog = new RunLog(outDir, append: resume);
        if (resume) (step, epoch, position) = TrainingCheckpoint.Resume(ckptRoot, model, opt, runLog, Log);
        var cursor = new DataCursor(data.Count, _o.Seed, epoch, position);

        double lastLoss = double.NaN, tokensSinceLog = 0;
        var logTimer = Stopwatch.StartNew();
        double? evalLoss = null;
        EvalResult? eval = null;
        while (step < _o.MaxSteps)
        {
            cancel.ThrowIfCancellationRequested();
            // The step's examples, in the seeded order, wrapping into the next epoch.
            var batch = cursor.Next(_o.BatchSize * _o.GradientAccumulation).Select(i => data[i]).ToList();
            double lr = schedule.At(step);
            foreach (var g in opt.ParamGroups) g.LearningRate = lr;
            var (loss, gradNorm, tokens) = TrainStep(opt, batch, padId);
            step++;
            lastLoss = loss;
            tokensSinceLog += tokens;

            bool evalNow = Task is not null || evalData.Count > 0
                ? (_o.EvalEvery > 0 && step % _o.EvalEvery == 0) || step == _o.MaxSteps
                : false;
            if (step % _o.LogEvery == 0 || step == _o.MaxSteps || evalNow)
            {
                double secs = logTimer.Elapsed.TotalSeconds;
                double tps = tokensSinceLog / Math.Max(secs, 1e-9);
                var row = new JsonObject
                {
                    ["step"] = step, ["epoch"] = cursor.Epoch, ["loss"] = Round(loss), ["lr"] = lr, ["grad_norm"] = Round(gradNorm),
                    ["tokens_per_s"] = Math.Round(tps, 1), ["elapsed_s"] = Math.Round(sw.Elapsed.TotalSeconds, 2),
                };
                if (evalNow)
                {
                    if (evalData.Count > 0) { evalLoss = EvalLoss(evalData, padId); row["eval_loss"] = Round(evalLoss.Value); }
                    if (Task is not null && EvalProblems.Count > 0)
                    {
                        eval = Evaluator.Run(new RolloutEngine(model, tokenizer), Task, evalProblems.Take(_o.EvalProblems).ToList(),
                            maxNewTokens: _o.EvalMaxNewTokens, stopStrings: EvalStopStrings);
                        model.train();
                        row["eval_accuracy"] = eval.Accuracy;
                    }
                }
                runLog.Metrics(row);
                double stepSecs = sw.Elapsed.TotalSeconds / Math.Max(1, step - 0);
                var eta = TimeSpan.FromSeconds(stepSecs * (_o.MaxSteps - step));
                Log?.Invoke($"step {step}/{_o.MaxSteps}  loss {loss:F4}  lr {lr:E2}  tok/s {tps:F0}  eta {eta:mm\\:ss}" +
                            (row["eval_loss"] is not null ? $"  eval_loss {evalLoss:F4}" : "") +
                            (row["eval_accuracy"] is not null ? $"  eval_acc {eval!.Accuracy:P1}" : ""));
                tokensSinceLog = 0;
                logTimer.Restart();
            }
            if (_o.CheckpointEvery > 0 && step % _o.CheckpointEvery == 0 && step < _o.MaxSteps)
            {
                var dir = TrainingCheckpoint.Save(ckptRoot, step, model, tokenizer, opt,
                    cursor.CheckpointState(), _o.KeepCheckpoints);
                Log?.Invoke($"checkpoint {dir}");
            }
        }

        var finalDir = Path.Combine(outDir, "final");
        HfCheckpoint.SaveAtomically(finalDir, model, tokenizer);
        sw.Stop();
        var summary = new JsonObject
        {
            ["steps"] = step, ["final_loss"] = Round(lastLoss), ["examples"] = data.Count, ["truncated_examples"] = truncated,
            ["seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 2), ["final_checkpoint"] = finalDir,
        };
        if (evalLoss is not null) summary["eval_loss"] = Round(evalLoss.Value);
        if (eval is not null) summary["eval"] = eval.ToJson();
        runLog.Summary(summary);
        return new SftResult(step, lastLoss, evalLoss, eval, finalDir, sw.Elapsed.TotalSeconds);
    }

    (double Loss, double GradNorm, double Tokens) TrainStep(optim.Optimizer opt, List<Example> batch, int padId)
    {
        opt.zero_grad();
        var (lossSum, totalTokens) = Backward(batch, padId);
        double norm = _o.MaxGradNorm > 0
            ? nn.utils.clip_grad_norm_(model.TrainableParameters(), _o.MaxGradNorm)
            : double.NaN;
        opt.step();
        return (lossSum, norm, totalTokens);
    }

    /// <summary>Accumulates into .grad the gradient of the step's loss over <paramref name="examples"/>, in micro-batches of BatchSize.</summary>
    internal (double Loss, double Tokens) Backward(IReadOnlyList<SftExample> examples)
    {
        int truncated = 0;
        return Backward(Encode(examples, ref truncated), tokenizer.PadTokenId ?? 0);
    }

    (double Loss, double Tokens) Backward(List<Example> batch, int padId)
    {
        // Normalise by the completion tokens of the whole step, so micro-batching does not change the gradient.
        double totalTokens = batch.Sum(e => e.Completion.Length);
        double lossSum = 0;
        for (int start = 0; start < batch.Count; start += _o.BatchSize)
        {
            using var scope = NewDisposeScope();
            var micro = batch.Skip(start).Take(_o.BatchSize).ToList();
            var sb = SequenceBatch.Build(micro.Select(e => (IReadOnlyList<int>)e.Prompt).ToList(),
                micro.Select(e => (IReadOnlyList<int>)e.Completion).ToList(), padId);
            var logp = Scoring.CompletionLogProbs(model, sb);                                  // (b, A), 0 at padding
            var loss = _o.ConditionsOnClass()
                ? Algorithms.ClassConditionedLoss.WeightedNll(logp, tensor(micro.Select(e => e.Weight).ToArray()), totalTokens)
                : -logp.sum() / totalTokens;
            loss.backward();
            lossSum += loss.item<float>();
        }
        return (lossSum, totalTokens);
    }

    double EvalLoss(List<Example> evalData, int padId)
    {
        using var _ = no_grad();
        model.eval();
        double nll = 0, tokens = 0;
        for (int start = 0; start < evalData.Count; start += _o.BatchSize)
        {
            using var scope = NewDisposeScope();
            var micro = evalData.Skip(start).Take(_o.BatchSize).ToList();
            var sb = SequenceBatch.Build(micro.Select(e => (IReadOnlyList<int>)e.Prompt).ToList(),
                micro.Select(e => (IReadOnlyList<int>)e.Completion).ToList(), padId);
            nll -= Scoring.CompletionLogProbs(model, sb).sum().item<float>();
            tokens += micro.Sum(e => e.Completion.Length);
        }
        model.train();
        return nll / Math.Max(tokens, 1);
    }

    List<Example> Encode(IReadOnlyList<SftExample> examples, ref int truncated)
    {
        var result = new List<Example>(examples.Count);
        var eos = CompletionTokens.EosId(tokenizer, model.Config);
        foreach (var e in examples)
        {
            var (prompt, weight) = Condition(e, _o);
            var p = tokenizer.Encode(prompt, addSpecialTokens: true).ToArray();
            var c = CompletionTokens.Ids(tokenizer, eos, e.Completion);
            if (p.Length == 0) throw new ArgumentException($"an example's prompt encodes to no tokens: \"{e.Prompt}\"");
            if (p.Length + c.Length > _o.MaxSequenceLength)
            {
                truncated++;
                int keep = _o.MaxSequenceLength - p.Length;
                if (keep < 1) continue;
                c = c[..keep];
            }
            result.Add(new Example(p, c, (float)weight));
        }
        return result;
    }


    /// <summary>
    /// C-RLFT's view of an example: (its class's prefix + prompt, its class's weight); (prompt, 1) when C-RLFT is off.
    /// An example without the class field, or with a class that has no weight, is an error naming the known classes.
    /// </summary>
    internal static (string Prompt, double Weight) Condition(SftExample e, SftOptions o)
    {
        if (!o.ConditionsOnClass()) return (e.Prompt, 1.0);
        var known = string.Join(", ", o.ClassWeights!.Keys.Order(StringComparer.Ordinal));
        if (!e.Fields.TryGetValue(o.ClassField, out var c))
            throw new ArgumentException($"an example has no \"{o.ClassField}\" field (its class; known: {known}): \"{e.Prompt}\"");
        if (!o.ClassWeights!.TryGetValue(c, out var w))
            throw new ArgumentException($"an example has the unknown class \"{c}\" in \"{o.ClassField}\" (known: {known}): \"{e.Prompt}\"");
        return (o.ClassPrefixes![c] + e.Prompt, w);
    }

    /// <summary>Problems as generation sees them: with C-RLFT, each prompt gets the expert class's prefix.</summary>
    public static IReadOnlyList<Problem> ConditionOnExpert(IReadOnlyList<Problem> problems, SftOptions o) =>
        o.ConditionsOnClass() ? problems.Select(p => p with { Prompt = o.ClassPrefixes![o.ExpertClass()] + p.Prompt }).ToList() : problems;

    static double Round(double x) => double.IsFinite(x) ? Math.Round(x, 6) : x;
}
