using Sharpen.Torch;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sharpen.Algorithms;

/// <summary>
/// Offline preference-optimisation losses as pure functions of tensors. Each takes per-sequence summed log-probs of a
/// chosen and a rejected completion <c>(B)</c> (see <see cref="PreferenceInput"/>), returns the batch mean of the per-pair
/// loss and plain-number metrics. Throughout, h = (log π_θ(c) − log π_ref(c)) − (log π_θ(r) − log π_ref(r)) is the
/// difference of the summed log-ratios (<b>not</b> length-averaged), and −log σ(z) is computed as softplus(−z).
/// Registered names: "dpo", "cdpo", "ipo", "rdpo", "orpo", "simpo", "cpo", "cpo_simpo" (and "spin", "seppo", "inpo" and "filtered_bc", online only);
/// "cream" and "upo" (per-pair weights, <see cref="ReliablePairLosses"/>); "tpo" (listwise, <see cref="ListwisePreferenceLosses"/>).
/// </summary>
public static class PreferenceLosses
{
    /// <summary>ORPO's log(1 − P) needs P &lt; 1: the length-averaged log-prob is clamped to at most −1e-6 there.</summary>
    const double MaxAverageLogProb = -1e-6;

    /// <summary>The preference losses by name, as the preference trainers look them up; spin is online only.</summary>
    public static Registry<PreferenceLoss> Registry { get; } = BuiltIns();

    /// <summary>The registered losses an offline preference recipe may name (every one but the online-only ones).</summary>
    public static IReadOnlyList<string> Names => [.. Registry.Names.Where(n => !Registry.Get(n).OnlineOnly)];

    /// <summary>Throws <see cref="ArgumentException"/> listing <see cref="Names"/> when <paramref name="name"/> is not one of them.</summary>
    public static void EnsureKnown(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!Names.Contains(name))
            throw new ArgumentException($"Unknown preference loss '{name}'. Known: {string.Join(", ", Names)}.", nameof(name));
    }

    static Registry<PreferenceLoss> BuiltIns()
    {
        var r = new Registry<PreferenceLoss>("preference loss");
        r.Register("dpo", new((x, c) => Dpo(x, c.Beta)));
        r.Register("cdpo", new((x, c) => CDpo(x, c.Beta, c.LabelSmoothing)));
        r.Register("ipo", new((x, c) => Ipo(x, c.Tau)));
        r.Register("rdpo", new((x, c) => RDpo(x, c.Beta, c.FlipRate)));
        r.Register("orpo", new((x, c) => Orpo(x, c.Lambda), NeedsReference: false));
        r.Register("simpo", new((x, c) => SimPo(x, c.Beta, c.Gamma, c.LabelSmoothing), NeedsReference: false));
        r.Register("cpo", new((x, c) => Cpo(x, c.Beta, c.Alpha, c.LabelSmoothing), NeedsReference: false));
        r.Register("cpo_simpo", new((x, c) => CpoSimPo(x, c.Beta, c.Gamma, c.Alpha, c.LabelSmoothing), NeedsReference: false));
        r.Register("spin", new((x, c) => SelfPlayLosses.Spin(x, c.Beta), OnlineOnly: true));   // SPIN's λ is β
        r.Register("filtered_bc", new((x, c) => SelfPlayLosses.FilteredBc(x), NeedsReference: false, OnlineOnly: true));   // offline: SFT on chosen
        r.Register("seppo", new((x, c) => SelfPlayLosses.Seppo(x, c.Beta), OnlineOnly: true));   // reference = a past checkpoint
        r.Register("inpo", new((x, c) => Inpo(x, c.Tau, c.Eta), OnlineOnly: true, NeedsPrevious: true));
        r.Register("cream", new((x, c) => ReliablePairLosses.Cream(x, c.Beta), PairWeightField: "consistency"));
        r.Register("upo", new((x, c) => ReliablePairLosses.Upo(x, c.Beta), PairWeightField: "certainty"));
        r.Register("tpo", new((x, c) => ListwisePreferenceLosses.TpoPairs(x, c.Beta)) { Listwise = true });
        r.Register("osp", new((x, c) => SoftPreferenceLosses.Osp(x, c.Beta), OnlineOnly: true));   // strengths from a judge: online only
        return r;
    }

    /// <summary>
    /// DPO (Rafailov et al. 2023, arXiv:2305.18290 Eq. 7): loss = −log σ(β·h), mean over B.
    /// Metrics use the implicit rewards β·(log π_θ − log π_ref).
    /// </summary>
    public static (Tensor Loss, PreferenceMetrics Metrics) Dpo(PreferenceInput x, double beta = 0.1)
    {
        RequirePositive(beta, nameof(beta));
        Check(x, reference: true, lengths: false);
        using var scope = NewDisposeScope();
        var (chosen, rejected) = LogRatios(x);                                   // (B), (B)
        var h = chosen - rejected;                                               // (B)
        var loss = F.softplus(-beta * h).mean();                                 // −log σ(β h), arXiv:2305.18290 Eq. 7
        var metrics = Metrics(beta * chosen, beta * rejected);
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// Conservative DPO (Mitchell 2023, "A note on DPO with noisy preferences"): DPO with label smoothing ε, i.e. the
    /// binary cross-entropy against a soft label 1 − ε: loss = −(1 − ε) log σ(β h) − ε log σ(−β h), mean over B.
    /// ε = 0 is DPO. Metrics as <see cref="Dpo"/>.
    /// </summary>
    public static (Tensor Loss, PreferenceMetrics Metrics) CDpo(PreferenceInput x, double beta = 0.1, double labelSmoothing = 0.1)
    {
        RequirePositive(beta, nameof(beta));
        RequireRate(labelSmoothing, nameof(labelSmoothing));
        Check(x, reference: true, lengths: false);
        using var scope = NewDisposeScope();
        var (chosen, rejected) = LogRatios(x);                                   // (B), (B)
        var h = chosen - rejected;                                               // (B)
        var eps = labelSmoothing;
        var perPair = (1 - eps) * F.softplus(-beta * h) + eps * F.softplus(beta * h);   // −(1−ε) log σ(βh) − ε log σ(−βh), Mitchell 2023
        var loss = perPair.mean();
        var metrics = Metrics(beta * chosen, beta * rejected);
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// IPO (Azar et al. 2023, arXiv:2310.12036 Eq. 17): loss = (h − 1/(2τ))², mean over B, with h the difference of the
    /// <b>summed</b> log-ratios as in the paper (no length averaging). Its minimum 0 is at h = 1/(2τ).
    /// Metrics use τ as the reward scale: rewards τ·(log π_θ − log π_ref).
    /// </summary>
    public static (Tensor Loss, PreferenceMetrics Metrics) Ipo(PreferenceInput x, double tau = 0.1)
    {
        RequirePositive(tau, nameof(tau));
        Check(x, reference: true, lengths: false);
        using var scope = NewDisposeScope();
        var (chosen, rejected) = LogRatios(x);                                   // (B), (B)
        var h = chosen - rejected;                                               // (B)
        var d = h - 1.0 / (2 * tau);                                             // (B)
        var loss = (d * d).mean();                                               // (h − τ⁻¹/2)², arXiv:2310.12036 Eq. 17
        var metrics = Metrics(tau * chosen, tau * rejected);
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// Robust DPO (Chowdhury et al. 2024, arXiv:2403.00409): an unbiased DPO loss under preference labels flipped with
    /// known rate ε &lt; 1/2: loss = [(1 − ε)(−log σ(β h)) − ε(−log σ(−β h))] / (1 − 2ε), mean over B. ε = 0 is DPO.
    /// The per-pair loss can be negative. Metrics as <see cref="Dpo"/>.
    /// </summary>
    public static (Tensor Loss, PreferenceMetrics Metrics) RDpo(PreferenceInput x, double beta = 0.1, double flipRate = 0.1)
    {
        RequirePositive(beta, nameof(beta));
        RequireRate(flipRate, nameof(flipRate));
        Check(x, reference: true, lengths: false);
        using var scope = NewDisposeScope();
        var (chosen, rejected) = LogRatios(x);                                   // (B), (B)
        var h = chosen - rejected;                                               // (B)
        var eps = flipRate;
        var perPair = ((1 - eps) * F.softplus(-beta * h) - eps * F.softplus(beta * h)) / (1 - 2 * eps);   // arXiv:2403.00409
        var loss = perPair.mean();
        var metrics = Metrics(beta * chosen, beta * rejected);
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// ORPO (Hong et al. 2024, arXiv:2403.07691 Eq. 6), reference-free: loss = NLL(c) + λ·L_OR, mean over B, with
    /// NLL(c) = −log π_θ(c)/|c| and L_OR = −log σ(log odds(c) − log odds(r)), where log P(y) = log π_θ(y)/|y| (the
    /// length-averaged log-prob) and log odds(y) = log P − log(1 − P). log(1 − P) is computed as log(−expm1(log P)) with
    /// log P clamped to at most −1e-6. Needs both lengths; the reference log-probs are not read.
    /// Metrics use the unscaled length-averaged log-probs log π_θ(y)/|y| as rewards (their order is the order of the odds).
    /// </summary>
    public static (Tensor Loss, PreferenceMetrics Metrics) Orpo(PreferenceInput x, double lambda = 0.1)
    {
        RequireNonNegative(lambda, nameof(lambda));
        Check(x, reference: false, lengths: true);
        using var scope = NewDisposeScope();
        var (avgChosen, avgRejected) = AverageLogProbs(x);                       // (B), (B)
        var nll = -avgChosen;                                                    // (B)  L_SFT, length-averaged NLL of the chosen
        var logOddsRatio = LogOdds(avgChosen) - LogOdds(avgRejected);            // (B)  log odds(c)/odds(r)
        var perPair = nll + lambda * F.softplus(-logOddsRatio);                  // L_SFT + λ·(−log σ(log OR)), arXiv:2403.07691 Eq. 6
        var loss = perPair.mean();
        var metrics = Metrics(avgChosen, avgRejected);
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// SimPO (Meng et al. 2024, arXiv:2405.14734 Eq. 6), reference-free: loss = −log σ(β/|c|·log π_θ(c) − β/|r|·log π_θ(r) − γ),
    /// mean over B. With label smoothing ε (as TRL's CPO/SimPO trainers offer it) the per-pair loss is the cross-entropy
    /// against the soft label 1 − ε: −(1 − ε) log σ(z) − ε log σ(−z), z the argument above; ε = 0 is the paper's loss.
    /// Needs both lengths; the reference log-probs are not read. Metrics use SimPO's rewards β/|y|·log π_θ(y)
    /// (the margin reported does not subtract γ).
    /// </summary>
    public static (Tensor Loss, PreferenceMetrics Metrics) SimPo(PreferenceInput x, double beta = 2.0, double gamma = 1.0, double labelSmoothing = 0.0)
    {
        RequirePositive(beta, nameof(beta));
        RequireNonNegative(gamma, nameof(gamma));
        RequireRate(labelSmoothing, nameof(labelSmoothing));
        Check(x, reference: false, lengths: true);
        using var scope = NewDisposeScope();
        var (avgChosen, avgRejected) = AverageLogProbs(x);                       // (B), (B)
        var chosen = beta * avgChosen;                                           // (B)  r(c) = β/|c|·log π_θ(c)
        var rejected = beta * avgRejected;                                       // (B)
        var z = chosen - rejected - gamma;                                       // (B)  arXiv:2405.14734 Eq. 6
        var loss = SmoothedLogSigmoidLoss(z, labelSmoothing).mean();             // −(1−ε) log σ(z) − ε log σ(−z)
        var metrics = Metrics(chosen, rejected);
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// CPO (Xu et al. 2024, "Contrastive Preference Optimization", arXiv:2401.08417 Eq. 3–6), reference-free:
    /// loss = −log σ(β·log π_θ(c) − β·log π_θ(r)) + α·NLL(c), mean over B, where the preference term uses the
    /// <b>summed</b> log-probs (the paper's uniform-reference upper bound of DPO) and NLL(c) = −log π_θ(c)/|c| is the chosen
    /// completion's length-averaged negative log-likelihood (the token-mean cross-entropy of the authors' trainer and of TRL).
    /// Label smoothing ε applies to the preference term as in <see cref="SimPo"/>. Metrics use the rewards β·log π_θ(y).
    /// </summary>
    public static (Tensor Loss, PreferenceMetrics Metrics) Cpo(PreferenceInput x, double beta = 0.1, double alpha = 1.0, double labelSmoothing = 0.0)
    {
        RequirePositive(beta, nameof(beta));
        RequireNonNegative(alpha, nameof(alpha));
        RequireRate(labelSmoothing, nameof(labelSmoothing));
        Check(x, reference: false, lengths: true);
        using var scope = NewDisposeScope();
        var chosen = beta * x.PolicyChosen;                                      // (B)  β log π_θ(c), summed over tokens
        var rejected = beta * x.PolicyRejected;                                  // (B)
        var prefer = SmoothedLogSigmoidLoss(chosen - rejected, labelSmoothing);  // (B)  L_prefer, arXiv:2401.08417 Eq. 5
        var (avgChosen, _) = AverageLogProbs(x);                                 // (B)
        var loss = (prefer + alpha * -avgChosen).mean();                         // L_prefer + α·L_NLL, arXiv:2401.08417 Eq. 6
        var metrics = Metrics(chosen, rejected);
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// CPO-SimPO (TRL's <c>loss_type: simpo</c> with <c>cpo_alpha</c> &gt; 0): SimPO's length-normalised margin plus CPO's
    /// behaviour-cloning term, loss = −log σ(β/|c|·log π_θ(c) − β/|r|·log π_θ(r) − γ) + α·NLL(c), mean over B, with NLL(c) =
    /// −log π_θ(c)/|c|. Label smoothing as in <see cref="SimPo"/>. Metrics as <see cref="SimPo"/>.
    /// </summary>
    public static (Tensor Loss, PreferenceMetrics Metrics) CpoSimPo(PreferenceInput x, double beta = 2.0, double gamma = 1.0, double alpha = 1.0,
        double labelSmoothing = 0.0)
    {
        RequirePositive(beta, nameof(beta));
        RequireNonNegative(gamma, nameof(gamma));
        RequireNonNegative(alpha, nameof(alpha));
        RequireRate(labelSmoothing, nameof(labelSmoothing));
        Check(x, reference: false, lengths: true);
        using var scope = NewDisposeScope();
        var (avgChosen, avgRejected) = AverageLogProbs(x);                       // (B), (B)
        var chosen = beta * avgChosen;                                           // (B)
        var rejected = beta * avgRejected;                                       // (B)
        var prefer = SmoothedLogSigmoidLoss(chosen - rejected - gamma, labelSmoothing);   // (B)
        var loss = (prefer + alpha * -avgChosen).mean();
        var metrics = Metrics(chosen, rejected);
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// INPO (Zhang et al. 2024, "Iterative Nash Policy Optimization", arXiv:2407.00617, the loss of its Algorithm 1): with the
    /// summed log-ratios of the chosen over the rejected completion under the policy (ρ_θ), the reference (ρ_ref) and the
    /// previous iterate π_t (ρ_t),
    /// h = ρ_θ − (τ/η)·ρ_ref − ((η − τ)/η)·ρ_t and loss = (h − 1/(2η))², mean over B. τ is the KL regularisation towards the
    /// reference, η the online-mirror-descent step; the pairs are the previous iterate's samples ranked by a general
    /// preference oracle. With η = τ the previous-iterate term vanishes and the loss is IPO's with τ_IPO = η.
    /// Metrics use the rewards log π_θ − (τ/η)·log π_ref − ((η − τ)/η)·log π_t of each side.
    /// </summary>
    public static (Tensor Loss, PreferenceMetrics Metrics) Inpo(PreferenceInput x, double tau = 0.1, double eta = 0.1)
    {
        RequirePositive(tau, nameof(tau));
        RequirePositive(eta, nameof(eta));
        if (tau > eta) throw new ArgumentOutOfRangeException(nameof(tau), tau, $"INPO needs τ ≤ η (the previous iterate's weight (η − τ)/η ≥ 0), got τ = {tau}, η = {eta}.");
        Check(x, reference: true, lengths: false);
        RequireSameShape(x.PolicyChosen, x.PreviousChosen, nameof(x.PreviousChosen));
        RequireSameShape(x.PolicyChosen, x.PreviousRejected, nameof(x.PreviousRejected));
        using var scope = NewDisposeScope();
        var dtype = x.PolicyChosen.dtype;
        Tensor C(Tensor t) => t.detach().to_type(dtype);
        double a = tau / eta, b = (eta - tau) / eta;
        var chosen = x.PolicyChosen - a * C(x.ReferenceChosen!) - b * C(x.PreviousChosen!);          // (B)
        var rejected = x.PolicyRejected - a * C(x.ReferenceRejected!) - b * C(x.PreviousRejected!);  // (B)
        var d = chosen - rejected - 1.0 / (2 * eta);                                                 // h − 1/(2η)
        var loss = (d * d).mean();
        var metrics = Metrics(chosen, rejected);
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>−(1 − ε) log σ(z) − ε log σ(−z), elementwise; ε = 0 is −log σ(z).</summary>
    static Tensor SmoothedLogSigmoidLoss(Tensor z, double labelSmoothing) =>
        labelSmoothing == 0 ? F.softplus(-z) : (1 - labelSmoothing) * F.softplus(-z) + labelSmoothing * F.softplus(z);

    /// <summary>Summed log-ratios log π_θ − log π_ref of the chosen and rejected completions, <c>(B)</c> each; the reference is detached.</summary>
    static (Tensor Chosen, Tensor Rejected) LogRatios(PreferenceInput x) => (
        x.PolicyChosen - x.ReferenceChosen!.detach().to_type(x.PolicyChosen.dtype),
        x.PolicyRejected - x.ReferenceRejected!.detach().to_type(x.PolicyRejected.dtype));

    /// <summary>Length-averaged policy log-probs log π_θ(y)/|y| of the chosen and rejected completions, <c>(B)</c> each.</summary>
    static (Tensor Chosen, Tensor Rejected) AverageLogProbs(PreferenceInput x) => (
        x.PolicyChosen / x.ChosenLengths!.detach().to_type(x.PolicyChosen.dtype),
        x.PolicyRejected / x.RejectedLengths!.detach().to_type(x.PolicyRejected.dtype));

    /// <summary>log(P / (1 − P)) from log P, <c>(B)</c>; log(1 − P) = log(−expm1(log P)), accurate for P near 1.</summary>
    static Tensor LogOdds(Tensor logP) =>
        logP - (-logP.clamp_max(MaxAverageLogProb).expm1()).log();              // log odds = log P − log(1 − P), arXiv:2403.07691

    /// <summary>Batch means of the two rewards <c>(B)</c> and their difference, and the share of pairs with chosen &gt; rejected.</summary>
    static PreferenceMetrics Metrics(Tensor chosenReward, Tensor rejectedReward)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var c = chosenReward.detach().to_type(ScalarType.Float32);               // (B)
        var r = rejectedReward.detach().to_type(ScalarType.Float32);             // (B)
        var accuracy = (c > r).to_type(ScalarType.Float32).mean().item<float>();
        var margin = (c - r).mean().item<float>();
        return new PreferenceMetrics(accuracy, margin, c.mean().item<float>(), r.mean().item<float>());
    }

    static void Check(PreferenceInput x, bool reference, bool lengths)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(x.PolicyChosen, nameof(x.PolicyChosen));
        ArgumentNullException.ThrowIfNull(x.PolicyRejected, nameof(x.PolicyRejected));
        TorchRuntime.EnsureLoaded();
        if (x.PolicyChosen.dim() != 1 || x.PolicyChosen.shape[0] == 0)
            throw new ArgumentException(
                $"PolicyChosen must be a non-empty (B) tensor, got shape [{string.Join(", ", x.PolicyChosen.shape)}].", nameof(x.PolicyChosen));
        RequireSameShape(x.PolicyChosen, x.PolicyRejected, nameof(x.PolicyRejected));
        if (reference)
        {
            RequireSameShape(x.PolicyChosen, x.ReferenceChosen, nameof(x.ReferenceChosen));
            RequireSameShape(x.PolicyChosen, x.ReferenceRejected, nameof(x.ReferenceRejected));
        }
        if (lengths)
        {
            RequirePositiveLengths(x.PolicyChosen, x.ChosenLengths, nameof(x.ChosenLengths));
            RequirePositiveLengths(x.PolicyChosen, x.RejectedLengths, nameof(x.RejectedLengths));
        }
    }

    static void RequireSameShape(Tensor reference, Tensor? other, string otherName)
    {
        if (other is null)
            throw new ArgumentException($"{otherName} is required by this loss.", otherName);
        if (!reference.shape.SequenceEqual(other.shape))
            throw new ArgumentException(
                $"{otherName} has shape [{string.Join(", ", other.shape)}] but must match [{string.Join(", ", reference.shape)}].", otherName);
    }

    static void RequirePositiveLengths(Tensor reference, Tensor? lengths, string name)
    {
        RequireSameShape(reference, lengths, name);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        if ((lengths! <= 0).any().item<bool>())
            throw new ArgumentException($"{name} must be > 0 for every sequence.", name);
    }

    static void RequirePositive(double value, string name)
    {
        if (!(value > 0) || double.IsInfinity(value))
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a finite number > 0.");
    }

    static void RequireNonNegative(double value, string name)
    {
        if (!(value >= 0) || double.IsInfinity(value))
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a finite number ≥ 0.");
    }

    static void RequireRate(double value, string name)
    {
        if (!(value >= 0 && value < 0.5))
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be in [0, 0.5).");
    }

    /// <summary>
    /// The Bradley–Terry reward-model loss, mean over the batch: −log σ(r_c − r_r − m) = softplus(−(r_c − r_r − m))
    /// (Ouyang et al. 2022, arXiv:2203.02155 Eq. 1; the margin m as in Llama 2, arXiv:2307.09288 Eq. 2). Rewards are <c>(B)</c>.
    /// </summary>
    public static Tensor BradleyTerry(Tensor chosen, Tensor rejected, double margin = 0.0) =>
        nn.functional.softplus(-(chosen - rejected - margin)).mean();
}
