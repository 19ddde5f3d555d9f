using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Data;
using Sharpen.Evaluation;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tasks;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Training.Rl;

/// <summary>
/// Offline RL from scored completions with their behaviour log-probs (TOPR, Le Roux et al. 2025, arXiv:2503.14286): no
/// generation; each iteration takes PromptsPerIteration × SamplesPerPrompt rows in a seeded order, c is the moving-average
/// reward baseline, and the algorithm's off-policy loss (TOPR's tapered loss: positive trajectories weight 1, negative
/// ones the truncated ratio clamp(π/μ, 0, 1)) updates the policy through the same <see cref="ActorUpdate"/> as online RL,
/// driven by the same <see cref="IterationLoop"/>.
/// </summary>
public sealed class ToprOfflineTrainer(CausalLM policy, ITokenizer tokenizer, RlOptions options)
{
    /// <summary>Human-readable progress lines.</summary>
    public Action<string>? Log { get; init; }
    /// <summary>Optional task for the greedy held-out accuracy.</summary>
    public IVerifiableTask? Task { get; init; }
    /// <summary>Held-out problems.</summary>
    public IReadOnlyList<Problem> EvalProblems { get; init; } = [];

    readonly RlOptions _o = options.Validate();

    /// <summary>Trains on <paramref name="data"/>; writes metrics.jsonl, summary.json and final/ into <paramref name="outDir"/>.</summary>
    public RlResult Run(IReadOnlyList<ScoredCompletion> data, string outDir, CancellationToken cancel = default)
    {
        var spec = RlAlgorithms.Get(_o.Algorithm);
        if (!spec.PolicyLoss.OffPolicy) throw new ArgumentException($"offline training needs an off-policy loss; '{_o.Algorithm}' is on-policy (use topr)");
        if (data.Count == 0) throw new ArgumentException("no scored completions");
        using var session = new Session(this, spec, Encode(data), data.Count);
        var loop = new IterationLoop(outDir, _o.Iterations, _o.CheckpointEvery, _o.KeepCheckpoints) { Log = Log };
        var (completed, finalDir, seconds) = loop.Run(session, resume: false, cancel);
        return new RlResult(completed, session.Eval, finalDir, seconds);
    }

    List<(int[] P, int[] C, float[] Lp, double R)> Encode(IReadOnlyList<ScoredCompletion> data)
    {
        int eos = CompletionTokens.EosId(tokenizer, policy.Config);
        var encoded = new List<(int[] P, int[] C, float[] Lp, double R)>(data.Count);
        for (int i = 0; i < data.Count; i++)
        {
            var d = data[i];
            var where = d.Source ?? $"scored completion {i + 1}";
            var lps = d.LogProbs ?? throw new ArgumentException(
                $"{where}: TOPR needs the behaviour log-prob of every completion token (\"logprobs\": [...]); " +
                (d.LogProb is null ? "the row has none" : "a sequence-level \"logprob\" is not enough"));
            var p = tokenizer.Encode(d.Prompt).ToArray();
            var c = tokenizer.Encode(d.Completion, addSpecialTokens: false).ToList();
            if (lps.Length == c.Count + 1) c.Add(eos);
            if (lps.Length != c.Count)
                throw new ArgumentException($"{where}: {lps.Length} log-probs but the completion encodes to {c.Count} tokens (or {c.Count + 1} with EOS)");
            encoded.Add((p, c.ToArray(), lps, d.Reward));
        }
        return encoded;
    }

    sealed class Session(ToprOfflineTrainer t, AlgorithmSpec spec, List<(int[] P, int[] C, float[] Lp, double R)> rows, int count) : IIterationTrainer, IDisposable
    {
        readonly RlOptions _o = t._o;
        readonly optim.Optimizer _opt = optim.AdamW(t.Policy.TrainableParameters(), lr: t._o.LearningRate, weight_decay: 0.0);
        readonly MovingAverageBaseline _baseline = new(t._o.BaselineDecay);
        readonly RolloutEngine _engine = new(t.Policy, t.Tokenizer);
        readonly NonFiniteGuard _guard = new("topr");
        ActorUpdate? _actor;
        DataCursor _cursor = new(rows.Count, t._o.Seed);

        public EvalResult? Eval { get; private set; }
        public CausalLM Policy => t.Policy;
        public ITokenizer Tokenizer => t.Tokenizer;
        public optim.Optimizer Optimizer => _opt;
        ActorUpdate Actor => _actor ??= new ActorUpdate(Policy, _opt, _o, spec, _guard);

        public IterationReport Iterate(int it)
        {
            var sw = Stopwatch.StartNew();
            var batch = _cursor.Next(_o.PromptsPerIteration * _o.SamplesPerPrompt).Select(i => rows[i]).ToList();
            using var scope = NewDisposeScope();
            var seq = SequenceBatch.Build(batch.Select(r => (IReadOnlyList<int>)r.P).ToList(), batch.Select(r => (IReadOnlyList<int>)r.C).ToList(), Tokenizer.PadTokenId ?? 0);
            var oldLogp = RlTrainer.Pad(batch.Select(r => r.Lp).ToList(), seq.CompletionIds.shape[1]);        // (B, A)
            var r = tensor(batch.Select(x => x.R).ToArray()).to(ScalarType.Float32);                          // (B)
            double mean = batch.Average(x => x.R);
            double c = _baseline.Initialized ? _baseline.Value : mean;
            var adv = AdvantageEstimators.Reinforce(new BaselineInput(r, seq.CompletionMask, c)).Advantages;   // (B, A)
            var m = new UpdateMetrics();
            Actor.Run(seq, oldLogp, adv, r - c, null, 0, it, m);
            _baseline.Update(mean);
            var row = new JsonObject
            {
                ["step"] = it + 1, ["reward_mean"] = mean, ["baseline"] = c, ["loss"] = m.Loss, ["entropy"] = m.Entropy,
                ["truncated_fraction"] = m.ClipFraction, ["grad_norm"] = m.GradNorm, ["seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 3),
            };
            if (_guard.Skipped > 0) row["skipped_nonfinite_steps"] = _guard.Skipped;
            if (t.Task is { } task && t.EvalProblems.Count > 0 && ((_o.EvalEvery > 0 && (it + 1) % _o.EvalEvery == 0) || it + 1 == _o.Iterations))
            {
                Eval = Evaluator.Run(_engine, task, t.EvalProblems.Take(_o.EvalProblems).ToList(), maxNewTokens: _o.MaxNewTokens);
                row["eval_accuracy"] = Eval.Accuracy;
            }
            t.Log?.Invoke($"offline iter {it + 1}/{_o.Iterations}  reward {mean:F3}  baseline {c:F3}  loss {m.Loss:F4}" + (row["eval_accuracy"] is not null ? $"  eval_acc {Eval!.Accuracy:P1}" : ""));
            return new IterationReport(row);
        }

        public JsonObject CheckpointState() => new()
        {
            ["position"] = _cursor.Position, ["epoch"] = _cursor.Epoch, ["optimizer_steps"] = Actor.Steps, ["seed"] = _o.Seed,
            ["baseline"] = _baseline.Initialized ? _baseline.Value : null, ["algorithm"] = _o.Algorithm,
        };

        public void Restore(string checkpoint, JsonObject s)
        {
            _cursor = new DataCursor(rows.Count, _o.Seed, s["epoch"]!.GetValue<int>(), s["position"]!.GetValue<int>());
            Actor.Steps = s["optimizer_steps"]!.GetValue<int>();
            if (s["baseline"] is { } b) _baseline.Restore(b.GetValue<double>());
        }

        public void SaveExtra(string folder) { }
        public void Finish(int completed) { }

        public JsonObject Summary(int completed, double seconds, string finalDir)
        {
            var summary = new JsonObject { ["algorithm"] = _o.Algorithm, ["mode"] = "offline", ["iterations"] = completed, ["rows"] = count,
                ["seconds"] = Math.Round(seconds, 2), ["final_checkpoint"] = finalDir };
            if (_guard.Skipped > 0) summary["skipped_nonfinite_steps"] = _guard.Skipped;
            if (Eval is not null) foreach (var (k, v) in Eval.ToJson()) summary[k] = v?.DeepClone();
            return summary;
        }

        public void Dispose() => _opt.Dispose();
    }

    CausalLM Policy => policy;
    ITokenizer Tokenizer => tokenizer;
}
