using Sharpen.Algorithms;
using Sharpen.Generation;
using Sharpen.Models;
using static TorchSharp.torch;

namespace Sharpen.Training.Rl;

/// <summary>
/// The policy update of every RL trainer (online and offline): K epochs over the batch's rows in seeded minibatches,
/// each minibatch one optimizer step whose loss is the algorithm's policy loss (+ β·KL when the KL is in the loss, − an
/// entropy bonus), summed over micro-batches with the minibatch's global counts, so micro-batching does not change
/// the gradient. The step goes through <see cref="NonFiniteGuard"/>.
/// </summary>
sealed class ActorUpdate(CausalLM policy, optim.Optimizer optimizer, RlOptions o, AlgorithmSpec spec, NonFiniteGuard guard)
{
    readonly Func<Tensor, Tensor, Tensor> _kl = KlEstimators.Get(o.KlEstimator);

    /// <summary>Optimizer steps taken so far (warm-up counts them; checkpointed).</summary>
    public int Steps { get; set; }

    /// <summary>NLPO: the tokens each position may take <c>(b, A, V)</c> for a micro-batch (the masking policy's top-p set);
    /// the policy's log-probs are taken over its logits with the others masked. Null = the whole vocabulary.</summary>
    public Func<SequenceBatch, Tensor>? ActionMask { get; init; }

    /// <summary>PPO-ptx: the SFT rows whose mean NLL, × <see cref="RlOptions.PtxCoefficient"/>, every step adds to the loss.</summary>
    public PtxSource? Ptx { get; init; }

    /// <summary>Runs the epochs over <paramref name="seq"/>'s rows; returns the completion tokens trained on.</summary>
    /// <param name="seq">The rows trained on.</param>
    /// <param name="oldLogp">Behaviour log-probs <c>(B, A)</c>; null with <paramref name="folded"/>, which takes them from the first forward.</param>
    /// <param name="adv">Token advantages <c>(B, A)</c>.</param>
    /// <param name="seqAdv">Sequence advantages <c>(B)</c>.</param>
    /// <param name="refLogp">Reference log-probs <c>(B, A)</c> or null.</param>
    /// <param name="beta">The KL coefficient of this iteration.</param>
    /// <param name="iteration">Seeds the minibatch order.</param>
    /// <param name="m">Receives the metrics.</param>
    /// <param name="klWeights">Per-token KL weights <c>(B, A)</c> that replace <paramref name="beta"/> (SCoRe's β₂ on the first
    /// attempt, β₁ on later ones); null = β on every token.</param>
    /// <param name="folded">The trainer's old log-probs are taken from this update's own first forward instead of a separate
    /// pass (see <see cref="FoldedOldLogProbs"/>); the first minibatch must hold every row.</param>
    public double Run(SequenceBatch seq, Tensor? oldLogp, Tensor adv, Tensor seqAdv, Tensor? refLogp, double beta, int iteration, UpdateMetrics m,
        Tensor? klWeights = null, FoldedOldLogProbs? folded = null)
    {
        long n = seq.InputIds.shape[0], a = seq.CompletionIds.shape[1];
        var mask = seq.CompletionMask;
        double trainTokens = 0;
        if (folded is null && oldLogp is null) throw new ArgumentNullException(nameof(oldLogp), "old log-probs are needed unless they are folded into the update");
        bool first = folded is not null;   // the first minibatch runs on the parameters that were sampled (nothing changed yet)
        if (folded is not null)
        {
            oldLogp = zeros(n, a, dtype: folded.EngineLogProbs.dtype);                                            // (B, A) filled below
            folded.Weights = folded.TisCap is null ? null : zeros(n, a, dtype: folded.EngineLogProbs.dtype);      // (B, A)
        }
        for (int ep = 0; ep < o.Epochs; ep++)
        {
            foreach (var rows in MiniBatches(o, spec.PolicyLoss.RowsPerUnit, (int)n, iteration, ep))
            {
                if (first && rows.Length != n) throw new InvalidOperationException($"folded old log-probs need one minibatch of all {n} rows, got {rows.Length}");
                optimizer.zero_grad();
                var rowsT = tensor(rows.Select(x => (long)x).ToArray());
                var mbMask = mask.index_select(0, rowsT);
                var agg = new Aggregation(o.Aggregation, mbMask.sum().item<float>(), rows.Length, o.MaxNewTokens);
                double stepLoss = 0;
                for (int s0 = 0; s0 < rows.Length; s0 += o.MicroBatchSize)
                {
                    using var micro = NewDisposeScope();
                    var idx = rowsT.narrow(0, s0, Math.Min(o.MicroBatchSize, rows.Length - s0));
                    var sub = seq.Rows(idx);
                    var logits = policy.Forward(sub.InputIds, sub.AttentionMask).Logits.narrow(1, seq.PromptLength - 1, a);   // (b, A, V)
                    if (ActionMask is { } keep) logits = ActionMaskEngine.Apply(logits, keep(sub));                          // NLPO: masked action space
                    var logp = Scoring.TokenLogProbs(logits, sub.CompletionIds) * sub.CompletionMask;                         // (b, A)
                    var advMb = adv.index_select(0, idx);                                                                    // (b, A)
                    if (first)
                    {
                        // On-policy first pass: the old log-probs ARE these, detached (what a separate no-grad pass would give).
                        var oldMb = logp.detach();                                                                           // (b, A)
                        oldLogp!.index_copy_(0, idx, oldMb);
                        if (folded!.TisCap is { } cap)
                        {
                            var w = TruncatedImportance.Weights(oldMb, folded.EngineLogProbs.index_select(0, idx), sub.CompletionMask, cap);   // (b, A)
                            folded.Weights!.index_copy_(0, idx, w);
                            advMb = advMb * w;                                                                               // min(π_trainer/π_engine, C)·A
                        }
                    }
                    var input = new PolicyLossInput(logp, oldLogp!.index_select(0, idx), advMb, sub.CompletionMask);
                    var ctx = new PolicyLossContext(new ClipOptions(o.ClipLow, o.ClipHigh, o.DualClip), agg, seqAdv.index_select(0, idx), rows.Length / 2.0, o.Eta);
                    var (loss, pm) = spec.PolicyLoss.Compute(input, ctx);
                    if (spec.Kl == KlPlacement.InLoss && refLogp is not null && klWeights is not null)
                        loss = loss + LossAggregator.Aggregate(_kl(logp, refLogp.index_select(0, idx)) * klWeights.index_select(0, idx), sub.CompletionMask, agg);
                    else if (spec.Kl == KlPlacement.InLoss && refLogp is not null && beta > 0)
                        loss = loss + beta * LossAggregator.Aggregate(_kl(logp, refLogp.index_select(0, idx)), sub.CompletionMask, agg);
                    if (o.EntropyCoefficient > 0)
                        loss = loss - o.EntropyCoefficient * LossAggregator.Aggregate(PolicyLosses.TokenEntropy(logits), sub.CompletionMask, agg);
                    loss.backward();
                    double share = idx.shape[0] / (double)rows.Length;
                    double value = loss.item<float>();
                    stepLoss += value;
                    m.Add(value, pm, Entropy(logits, sub.CompletionMask), share);
                    trainTokens += sub.CompletionMask.sum().item<float>();
                }
                if (Ptx is { } ptx && o.PtxCoefficient > 0)
                {
                    // PPO-ptx: L = L_PPO + γ·L_ptx, the SFT rows' token-mean NLL; its gradient joins the step's.
                    using var micro = NewDisposeScope();
                    var pb = ptx.Next();
                    var pl = policy.Forward(pb.InputIds, pb.AttentionMask).Logits.narrow(1, pb.PromptLength - 1, pb.CompletionIds.shape[1]);   // (n, A', V)
                    var nll = PretrainMix.Nll(Scoring.TokenLogProbs(pl, pb.CompletionIds), pb.CompletionMask);
                    var term = o.PtxCoefficient * nll;
                    term.backward();
                    stepLoss += term.item<float>();
                    m.AddPtx(nll.item<float>());
                }
                double lr = o.WarmupSteps > 0 && Steps < o.WarmupSteps ? o.LearningRate * (Steps + 1) / o.WarmupSteps : o.LearningRate;
                foreach (var pg in optimizer.ParamGroups) pg.LearningRate = lr;
                var (_, norm) = guard.Step(optimizer, policy.TrainableParameters(), o.MaxGradNorm, stepLoss, Steps + 1);
                m.GradNorm = o.MaxGradNorm > 0 ? norm : double.NaN;
                Steps++;
                if (first)
                {
                    first = false;
                    folded!.Old = oldLogp;
                    if (folded.Weights is { } tw) adv = adv * tw;   // later epochs: the same weighted advantages
                }
            }
        }
        return trainTokens;
    }

    /// <summary>The minibatches of one epoch: rows shuffled by (seed, iteration, epoch) in units of
    /// <paramref name="unit"/> rows that stay together (pairs for pairwise losses).</summary>
    public static IEnumerable<int[]> MiniBatches(RlOptions o, int unit, int n, int iteration, int epoch)
    {
        var rng = new Random(unchecked(o.Seed * 7919 + iteration * 104729 + epoch) & int.MaxValue);
        var units = Enumerable.Range(0, n / unit).ToArray();
        if (o.Epochs > 1 || o.MiniBatchSize > 0)
            for (int i = units.Length - 1; i > 0; i--) { int j = rng.Next(i + 1); (units[i], units[j]) = (units[j], units[i]); }
        var rows = units.SelectMany(u => Enumerable.Range(u * unit, unit)).ToArray();
        int size = o.MiniBatchSize > 0 ? o.MiniBatchSize : n;
        for (int s = 0; s < n; s += size) yield return rows[s..Math.Min(n, s + size)];
    }

    static double Entropy(Tensor logits, Tensor mask)
    {
        using var _ = no_grad();
        var h = PolicyLosses.TokenEntropy(logits.detach());                                  // (b, A)
        return ((h * mask).sum() / mask.sum().clamp_min(1)).item<float>();
    }
}

/// <summary>
/// The trainer's old log-probs folded into the update: when the engine's rollouts need the trainer's own log-probs (another
/// engine than torch) and the first minibatch holds every row, that minibatch's forward runs on the very parameters that were
/// synced to the engine (no step yet), so its log-probs, detached, are the old log-probs, and a separate no-grad pass is not
/// needed. The truncated IS weights min(exp(old − engine), C) are taken from them there and weight the advantages of every epoch.
/// </summary>
/// <param name="EngineLogProbs">The engine's log-probs of the sampled tokens <c>(B, A)</c>.</param>
/// <param name="TisCap">C, or null without truncated IS.</param>
sealed class FoldedOldLogProbs(Tensor EngineLogProbs, double? TisCap)
{
    public Tensor EngineLogProbs { get; } = EngineLogProbs;
    public double? TisCap { get; } = TisCap;
    /// <summary>The old log-probs <c>(B, A)</c> (masked), set by the update.</summary>
    public Tensor? Old { get; set; }
    /// <summary>The truncated IS weights <c>(B, A)</c> (0 at padding), set by the update; null without TIS.</summary>
    public Tensor? Weights { get; set; }
}

/// <summary>Loss and policy-loss diagnostics of an update, weighted by each micro-batch's share of its minibatch.</summary>
sealed class UpdateMetrics
{
    double _loss, _clip, _akl, _ent, _w, _ptx;
    int _ptxSteps;
    /// <summary>Mean PPO-ptx NLL over the steps that had one (NaN without PPO-ptx).</summary>
    public double PtxLoss => _ptxSteps > 0 ? _ptx / _ptxSteps : double.NaN;
    public void AddPtx(double nll) { _ptx += nll; _ptxSteps++; }
    public double RatioMax { get; private set; } = double.NaN;
    public double GradNorm { get; set; } = double.NaN;
    public double Loss => _w > 0 ? _loss / _w : double.NaN;
    public double ClipFraction => _w > 0 ? _clip / _w : double.NaN;
    public double ApproxKl => _w > 0 ? _akl / _w : double.NaN;
    public double Entropy => _w > 0 ? _ent / _w : double.NaN;

    public void Add(double loss, PolicyLossMetrics pm, double entropy, double share)
    {
        _loss += loss; _clip += pm.ClipFraction * share; _akl += pm.ApproxKl * share; _ent += entropy * share; _w += share;
        RatioMax = double.IsNaN(RatioMax) ? pm.RatioMax : Math.Max(RatioMax, pm.RatioMax);
    }
}
