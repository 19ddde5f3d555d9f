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

    SftOptions _o = options.Validate();

    /// <summary>An encoded example; <paramref name="Mask"/> marks the trained completion tokens (null = all of them).</summary>
    sealed record Example(int[] Prompt, int[] Completion, float Weight = 1f, float[]? Mask = null)
    {
        public double Trained => Mask?.Sum() ?? Completion.Length;
    }

    /// <summary>Trains; writes metrics.jsonl, summary.json, checkpoints/ and final/ into <paramref name="outDir"/>.</summary>
    public SftResult Run(IReadOnlyList<SftExample> train, IReadOnlyList<SftExample> heldOut, string outDir, bool resume = false,
        CancellationToken cancel = default)
    {
        if (train.Count == 0) throw new ArgumentException("the training set is empty");
        using var heap = Torch.ProcessMemory.TrainingScope();   // activations from the heap, not fresh pages every step
        _o = _o.Sized(train.Count);
        long started = Stopwatch.GetTimestamp();
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
        var settings = new StepLoopSettings
        {
            Name = "sft", MaxSteps = _o.MaxSteps, ItemsPerStep = _o.BatchSize * _o.GradientAccumulation,
            Lr = new LrSchedule(_o.LearningRate, _o.WarmupSteps, _o.MaxSteps, _o.MinLrRatio), MaxGradNorm = _o.MaxGradNorm,
            LogEvery = _o.LogEvery, EvalEvery = _o.EvalEvery, CheckpointEvery = _o.CheckpointEvery, KeepCheckpoints = _o.KeepCheckpoints, Seed = _o.Seed,
        };
        double? evalLoss = null;
        EvalResult? eval = null;
        var work = new StepWork
        {
            Items = data.Count,
            Backward = batch =>
            {
                var (loss, tokens) = Backward(batch.Select(i => data[i]).ToList(), padId);
                return new StepOutcome(loss, [], tokens);
            },
            Evaluate = Task is not null || evalData.Count > 0 ? row =>
            {
                if (evalData.Count > 0) { evalLoss = EvalLoss(evalData, padId); row["eval_loss"] = StepLoop.Round(evalLoss.Value); }
                if (Task is not null && EvalProblems.Count > 0)
                {
                    eval = Evaluator.Run(new RolloutEngine(model, tokenizer), Task, evalProblems.Take(_o.EvalProblems).ToList(),
                        maxNewTokens: _o.EvalMaxNewTokens, stopStrings: EvalStopStrings);
                    model.train();
                    row["eval_accuracy"] = eval.Accuracy;
                }
            } : null,
            Summary = r =>
            {
                var summary = new JsonObject
                {
                    ["steps"] = r.Steps, ["final_loss"] = StepLoop.Round(r.FinalLoss), ["examples"] = data.Count, ["truncated_examples"] = truncated,
                    ["seconds"] = Math.Round(r.Seconds, 2), ["final_checkpoint"] = r.FinalCheckpoint,
                };
                if (evalLoss is not null) summary["eval_loss"] = StepLoop.Round(evalLoss.Value);
                if (eval is not null) summary["eval"] = eval.ToJson();
                return summary;
            },
        };
        var result = new StepLoop(model, tokenizer, opt, trainable, settings) { Log = Log, Started = started }.Run(work, outDir, resume, cancel);
        return new SftResult(result.Steps, result.FinalLoss, evalLoss, eval, result.FinalCheckpoint, result.Seconds);
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
        double totalTokens = batch.Sum(e => e.Trained);
        double lossSum = 0;
        for (int start = 0; start < batch.Count; start += _o.BatchSize)
        {
            using var scope = NewDisposeScope();
            var micro = batch.Skip(start).Take(_o.BatchSize).ToList();
            var sb = SequenceBatch.Build(micro.Select(e => (IReadOnlyList<int>)e.Prompt).ToList(),
                micro.Select(e => (IReadOnlyList<int>)e.Completion).ToList(), padId);
            var logp = Masked(Scoring.CompletionLogProbs(model, sb), micro);                  // (b, A), 0 at padding and untrained tokens
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
            nll -= Masked(Scoring.CompletionLogProbs(model, sb), micro).sum().item<float>();
            tokens += micro.Sum(e => e.Trained);
        }
        model.train();
        return nll / Math.Max(tokens, 1);
    }

    /// <summary>Where the text's own ids sit inside <paramref name="withSpecial"/> (its encoding with special tokens): (offset, count).</summary>
    static (int Lead, int Body) SpecialLead(ITokenizer tokenizer, string text, IReadOnlyList<int> withSpecial)
    {
        var plain = tokenizer.Encode(text, addSpecialTokens: false);
        for (int j = 0; j + plain.Count <= withSpecial.Count; j++)
            if (withSpecial.Skip(j).Take(plain.Count).SequenceEqual(plain)) return (j, plain.Count);
        return (0, withSpecial.Count);
    }

    /// <summary><paramref name="logp"/> (b, A) times the micro-batch's trained-token mask, when any example has one.</summary>
    static Tensor Masked(Tensor logp, List<Example> micro)
    {
        if (micro.All(e => e.Mask is null)) return logp;
        long a = logp.shape[1];
        var mask = new float[micro.Count * a];
        for (int i = 0; i < micro.Count; i++)
            for (int j = 0; j < micro[i].Completion.Length; j++) mask[i * a + j] = micro[i].Mask?[j] ?? 1f;
        return logp * tensor(mask).view(micro.Count, a);
    }

    List<Example> Encode(IReadOnlyList<SftExample> examples, ref int truncated)
    {
        var result = new List<Example>(examples.Count);
        var eos = CompletionTokens.EosId(tokenizer, model.Config);
        foreach (var e in examples)
        {
            var (prompt, weight) = Condition(e, _o);
            var (tokens, trained, promptTokens) = Tokens(tokenizer, eos, prompt, e.Completion, Shift(TrainedSpans(e, _o), prompt.Length - e.Prompt.Length));
            if (promptTokens == 0 && e.Shape != SftShape.Text) throw new ArgumentException($"an example's prompt encodes to no tokens: \"{e.Prompt}\"");
            // The prompt is everything before the first trained token (at least the first token, which nothing predicts).
            int k = Math.Max(1, Array.IndexOf(trained, true));
            if (tokens.Length < 2) throw new ArgumentException($"an example encodes to fewer than 2 tokens: \"{prompt}{e.Completion}\"");
            var p = tokens[..k];
            var c = tokens[k..];
            var mask = trained[k..].Select(t => t ? 1f : 0f).ToArray();
            if (p.Length + c.Length > _o.MaxSequenceLength)
            {
                truncated++;
                int keep = _o.MaxSequenceLength - p.Length;
                if (keep < 1) continue;
                c = c[..keep];
                mask = mask[..keep];
            }
            result.Add(new Example(p, c, (float)weight, mask.All(m => m == 1f) ? null : mask));
        }
        return result;
    }

    static IReadOnlyList<(int Start, int End)> Shift(IReadOnlyList<(int Start, int End)> spans, int by) =>
        by == 0 ? spans : spans.Select(s => (s.Start + by, s.End + by)).ToList();

    /// <summary>
    /// The character spans of <c>Prompt + Completion</c> the loss trains on, by TRL's rules (<see cref="SftOptions.AssistantOnlyLoss"/>,
    /// <see cref="SftOptions.CompletionOnlyLoss"/>): a <c>{"text"}</c> row, all of it; a conversation, every assistant turn,
    /// all of it, or its last assistant turn; a prompt/completion row, the completion or all of it.
    /// </summary>
    internal static IReadOnlyList<(int Start, int End)> TrainedSpans(SftExample e, SftOptions o)
    {
        int whole = e.Prompt.Length + e.Completion.Length;
        return e.Shape switch
        {
            SftShape.Text when o.AssistantOnlyLoss == true => throw new ArgumentException(
                "sft.assistant_only_loss is true but a {\"text\"} row has no assistant turns (give conversational \"messages\" rows, or set it false)"),
            SftShape.Text => [(0, whole)],
            SftShape.Conversation when o.AssistantOnlyLoss == true => e.AssistantSpans
                ?? throw new ArgumentException($"sft.assistant_only_loss: {e.AssistantSpansError ?? "a conversation has no assistant spans"}"),
            SftShape.Conversation when o.AssistantOnlyLoss == false => [(0, whole)],
            _ => o.CompletionOnlyLoss == false ? [(0, whole)] : [(e.Prompt.Length, whole)],
        };
    }

    /// <summary>
    /// The ids of <c>prompt + completion</c> then EOS, and which of them are trained: the text is cut at the prompt's end and
    /// at every span boundary, each piece encoded on its own (the first with the tokenizer's special tokens, such as BOS), so
    /// a token never straddles a trained and an untrained piece; EOS is trained. Also returns how many ids the prompt gave.
    /// </summary>
    internal static (int[] Ids, bool[] Trained, int PromptTokens) Tokens(ITokenizer tokenizer, int eos, string prompt, string completion,
        IReadOnlyList<(int Start, int End)> spans)
    {
        var text = prompt + completion;
        var cuts = new SortedSet<int> { 0, prompt.Length, text.Length };
        foreach (var (a, b) in spans)
        {
            if (a < 0 || b > text.Length || a > b) throw new ArgumentException($"trained span ({a}, {b}) is outside the text of {text.Length} characters");
            cuts.Add(a); cuts.Add(b);
        }
        var ids = new List<int>();
        var trained = new List<bool>();
        int promptTokens = 0, from = 0;
        bool first = true;
        foreach (var to in cuts.Skip(1))
        {
            if (to == from) continue;
            var piece = tokenizer.Encode(text[from..to], addSpecialTokens: first);
            bool train = spans.Any(s => s.Start <= from && to <= s.End);
            // The special tokens the tokenizer adds around the first piece (BOS) belong to no span.
            var (lead, body) = first ? SpecialLead(tokenizer, text[from..to], piece) : (0, piece.Count);
            first = false;
            ids.AddRange(piece);
            for (int i = 0; i < piece.Count; i++) trained.Add(train && i >= lead && i < lead + body);
            if (to <= prompt.Length) promptTokens = ids.Count;
            from = to;
        }
        if (first) { var special = tokenizer.Encode("", addSpecialTokens: true); ids.AddRange(special); trained.AddRange(Enumerable.Repeat(false, special.Count)); }
        ids.Add(eos);
        trained.Add(true);
        return (ids.ToArray(), trained.ToArray(), promptTokens);
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

}
