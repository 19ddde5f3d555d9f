using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tokenizers;
using Sharpen.Training.RewardModels;
using TorchSharp;
using static TorchSharp.torch;

namespace Sharpen.Training.Rl;

/// <summary>What a step-level Direct Advantage Policy Optimization run produced.</summary>
/// <param name="Steps">Actor optimizer steps taken.</param>
/// <param name="FinalLoss">Actor loss of the last step (before its update).</param>
/// <param name="Solutions">Step-labelled solutions trained on.</param>
/// <param name="CriticMse">Mean squared error of the critic's step values against the data's Monte-Carlo step labels.</param>
/// <param name="CriticDirectory">The critic (a PRM folder) the advantages came from.</param>
/// <param name="FinalCheckpoint">The final actor folder.</param>
public sealed record DirectAdvantagePoResult(int Steps, double FinalLoss, int Solutions, double CriticMse, string CriticDirectory, string FinalCheckpoint);

/// <summary>
/// Step-level Direct Advantage Policy Optimization (Liu et al. 2024, arXiv:2412.18279; <see cref="DirectAdvantagePo"/>), the
/// <c>offline_pg</c> loss <c>direct_advantage_po</c>, in two stages that never share an update:
/// <list type="number">
/// <item><b>Critic.</b> Unless <see cref="OfflinePolicyOptions.Critic"/> names a trained one, a copy of the starting policy plus a
/// zero-initialised <see cref="ScalarHead"/> is fitted by <see cref="PrmTrainer"/> (per-step cross-entropy against soft labels,
/// whose optimum is σ(logit) = label) to the rows' Monte-Carlo step labels (what <c>sharpen data label-steps</c> writes: the
/// share of verified-correct rollouts from each prefix) for <see cref="OfflinePolicyOptions.CriticSteps"/> steps, into
/// <c>OUTPUT/critic</c>; its <c>final/</c> is a PRM folder. The critic then scores every step end: V(s_k), k = 1 … S.</item>
/// <item><b>Actor.</b> V(s_0), the prompt alone, is the mean outcome (last step label) of the prompt's solutions in the data —
/// the Monte-Carlo value of the prompt under the policy that sampled them (the critic is read at step ends only). The step
/// advantages A_k = V(s_{k+1}) − V(s_k) (<see cref="DirectAdvantagePo.StepAdvantages"/>) and the frozen starting policy's step
/// log-probs (π_ref) are computed once; each actor step minimises <see cref="DirectAdvantagePo.ActorLoss"/>, the mean over
/// real steps of (log π_θ(a_k|s_k)/π_ref(a_k|s_k) − A_k/β)², on <see cref="StepSchedule.BatchSize"/> solutions.</item>
/// </list>
/// Steps are tokenised as PRMs tokenise them (<see cref="StepEncoding"/>: each step on its own, concatenated, no EOS), so a
/// step's action is exactly its tokens. On resume the critic in <c>OUTPUT/critic/final</c> is reused and the reference
/// quantities are rebuilt from the starting weights the trainer is handed.
/// </summary>
public sealed class DirectAdvantagePoTrainer(CausalLM policy, ITokenizer tokenizer, OfflinePolicyOptions options)
{
    /// <summary>Receives one human-readable line per log step and about the critic.</summary>
    public Action<string>? Log { get; init; }

    readonly OfflinePolicyOptions _o = options.Validate();

    /// <summary>Trains the critic (unless given), then the actor; writes metrics.jsonl, summary.json, critic/, checkpoints/ and final/ into <paramref name="outDir"/>.</summary>
    public DirectAdvantagePoResult Run(IReadOnlyList<StepLabelledExample> data, string outDir, bool resume = false, CancellationToken cancel = default)
    {
        if (data.Count == 0) throw new ArgumentException("no step-labelled solutions");
        long started = Stopwatch.GetTimestamp();
        Directory.CreateDirectory(outDir);
        int padId = tokenizer.PadTokenId ?? 0;
        var enc = data.Select(e => StepEncoding.Encode(tokenizer, e.Prompt, e.Steps)).ToList();

        // Stage 1: the critic, fitted alone on the Monte-Carlo step labels (or given).
        var (criticDir, criticLoss) = Critic(data, outDir, resume, cancel);
        double[][] v;
        using (var critic = new ProcessRewardModel(criticDir, "critic"))
            v = critic.ScoreSteps(data.Select(e => (e.Prompt, e.Steps)).ToList());
        double criticMse = data.SelectMany((e, i) => e.Labels.Select((l, k) => (v[i][k] - l) * (v[i][k] - l))).Average();
        Log?.Invoke($"direct_advantage_po: critic {criticDir}; step-value MSE against the Monte-Carlo labels {criticMse:F4}");

        // V(s_0): the mean outcome of each prompt's solutions; then A_k = V(s_{k+1}) − V(s_k), once.
        var v0 = data.GroupBy(e => e.Prompt).ToDictionary(g => g.Key, g => g.Average(e => e.Labels[^1]));
        int maxSteps = enc.Max(e => e.StepEnds.Length);
        float[][] adv;
        using (NewDisposeScope())
        {
            var values = new float[data.Count * (maxSteps + 1)];
            var mask = new float[data.Count * maxSteps];
            for (int i = 0; i < data.Count; i++)
            {
                int s = data[i].Steps.Count;
                values[i * (maxSteps + 1)] = (float)v0[data[i].Prompt];
                for (int k = 1; k <= maxSteps; k++) values[i * (maxSteps + 1) + k] = (float)v[i][Math.Min(k, s) - 1];   // the last value repeats past the end
                for (int k = 0; k < s; k++) mask[i * maxSteps + k] = 1;
            }
            var a = DirectAdvantagePo.StepAdvantages(tensor(values).view(data.Count, maxSteps + 1), tensor(mask).view(data.Count, maxSteps));
            var flat = a.contiguous().data<float>().ToArray();
            adv = enc.Select((e, i) => flat.AsSpan(i * maxSteps, e.StepEnds.Length).ToArray()).ToArray();
        }
        float[][] refSteps;
        var (reference, release) = policy.FrozenReference();
        using (release)
        {
            var tokens = Scoring.Score(reference, enc.Select(e => (IReadOnlyList<int>)e.Prompt).ToList(), enc.Select(e => (IReadOnlyList<int>)e.Completion).ToList(), padId);
            refSteps = enc.Select((e, i) => SumPerStep(tokens[i], e.StepEnds)).ToArray();
        }
        double meanAdv = adv.SelectMany(x => x).Average(x => (double)x);

        // Stage 2: the actor, offline, on the fixed advantages.
        policy.train();
        var trainable = policy.TrainableParameters();
        using var opt = optim.AdamW(trainable, lr: _o.LearningRate, weight_decay: 0.0);
        var work = new StepWork
        {
            Items = data.Count,
            Backward = batch => Backward(batch.ToList(), enc, adv, refSteps, padId),
            Summary = r => new JsonObject
            {
                ["steps"] = r.Steps, ["loss_name"] = _o.Loss, ["final_loss"] = StepLoop.Round(r.FinalLoss), ["solutions"] = data.Count,
                ["labelled_steps"] = enc.Sum(e => e.StepEnds.Length), ["critic"] = criticDir, ["critic_final_loss"] = criticLoss is { } c ? JsonValue.Create(StepLoop.Round(c)) : null,
                ["critic_mse"] = StepLoop.Round(criticMse), ["advantage_mean"] = StepLoop.Round(meanAdv), ["beta"] = _o.Beta,
                ["seconds"] = Math.Round(r.Seconds, 2), ["final_checkpoint"] = r.FinalCheckpoint,
            },
        };
        var settings = StepLoopSettings.From("offline_pg", StepSchedule.Sized(_o, data.Count)) with { LossLabel = _o.Loss, MetricsAfterGradNorm = true };
        var result = new StepLoop(policy, tokenizer, opt, trainable, settings) { Log = Log, Started = started }.Run(work, outDir, resume, cancel);
        return new DirectAdvantagePoResult(result.Steps, result.FinalLoss, data.Count, criticMse, criticDir, result.FinalCheckpoint);
    }

    /// <summary>The critic's PRM folder and, when fitted here, its final loss.</summary>
    (string Dir, double? Loss) Critic(IReadOnlyList<StepLabelledExample> data, string outDir, bool resume, CancellationToken cancel)
    {
        if (_o.Critic is { } given)
        {
            if (!File.Exists(Path.Combine(given, ProcessRewardModel.MarkerFile)))
                throw new ArgumentException($"offline_pg.critic: '{given}' is not a PRM folder (no {ProcessRewardModel.MarkerFile}); train one with a prm recipe or leave the key out");
            return (given, null);
        }
        var criticOut = Path.Combine(outDir, "critic");
        var final = Path.Combine(criticOut, "final");
        if (resume && File.Exists(Path.Combine(final, ProcessRewardModel.MarkerFile)))
        {
            Log?.Invoke($"direct_advantage_po: reusing the critic in {final}");
            return (final, null);
        }
        using var backbone = policy.Copy(trainable: true);
        using var head = new ScalarHead(backbone.Config.HiddenSize);
        var o = new PrmOptions
        {
            MaxSteps = _o.CriticSteps, BatchSize = _o.BatchSize, LearningRate = _o.CriticLearningRate, WarmupSteps = 0,
            MinLrRatio = _o.MinLrRatio, MaxGradNorm = _o.MaxGradNorm, LogEvery = _o.LogEvery, CheckpointEvery = _o.CriticSteps,
            KeepCheckpoints = 1, Seed = _o.Seed,
        };
        var log = Log is null ? null : new Action<string>(l => Log($"critic: {l}"));
        var r = new PrmTrainer(backbone, head, tokenizer, o) { Log = log }.Run(data, [], criticOut, resume: false, cancel);
        return (r.FinalCheckpoint, r.FinalLoss);
    }

    /// <summary>Accumulates the gradient of <see cref="DirectAdvantagePo.ActorLoss"/> on one batch of solutions.</summary>
    StepOutcome Backward(List<int> batch, List<EncodedSteps> enc, float[][] adv, float[][] refSteps, int padId)
    {
        var items = batch.Select(i => enc[i]).ToList();
        var sb = SequenceBatch.Build(items.Select(e => (IReadOnlyList<int>)e.Prompt).ToList(), items.Select(e => (IReadOnlyList<int>)e.Completion).ToList(), padId);
        long width = sb.CompletionIds.shape[1];
        int s = items.Max(e => e.StepEnds.Length), n = items.Count;
        var tokenStep = new long[n * width];
        Array.Fill(tokenStep, -1L);
        var a = new float[n * s];
        var r = new float[n * s];
        var m = new float[n * s];
        for (int b = 0; b < n; b++)
        {
            var ends = items[b].StepEnds;
            for (int k = 0, t = 0; k < ends.Length; k++)
            {
                for (; t <= ends[k]; t++) tokenStep[b * width + t] = k;                               // completion token t belongs to step k
                a[b * s + k] = adv[batch[b]][k]; r[b * s + k] = refSteps[batch[b]][k]; m[b * s + k] = 1;
            }
        }
        var tokenLogp = Scoring.CompletionLogProbs(policy, sb);                                         // (n, A)
        var stepLogp = DirectAdvantagePo.StepLogProbs(tokenLogp, tensor(tokenStep).view(n, width), s);  // (n, S)  log π_θ(a_k|s_k)
        var refT = tensor(r).view(n, s);
        var advT = tensor(a).view(n, s);
        var maskT = tensor(m).view(n, s);
        var loss = DirectAdvantagePo.ActorLoss(stepLogp, refT, advT, maskT, _o.Beta);
        double steps = m.Sum();
        double logRatio = ((stepLogp.detach() - refT) * maskT).sum().item<float>() / steps;
        double alignment = ((stepLogp.detach() - refT) * advT * maskT).sum().item<float>() / steps;   // > 0 when log-ratios follow A's sign
        double lossValue = loss.item<float>();
        loss.backward();
        return new StepOutcome(lossValue, [new("log_ratio", logRatio), new("advantage", a.Sum() / steps), new("log_ratio_x_advantage", alignment)]);
    }

    /// <summary>Token log-probs summed per step (step k holds tokens StepEnds[k−1]+1 … StepEnds[k]).</summary>
    static float[] SumPerStep(float[] tokens, int[] stepEnds)
    {
        var sums = new float[stepEnds.Length];
        for (int k = 0, t = 0; k < stepEnds.Length; k++)
        {
            double acc = 0;
            for (; t <= stepEnds[k]; t++) acc += tokens[t];
            sums[k] = (float)acc;
        }
        return sums;
    }
}
