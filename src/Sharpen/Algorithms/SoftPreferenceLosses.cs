using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sharpen.Algorithms;

/// <summary>
/// OSP, Online Self-Preferring language models (Zhai et al. 2024, arXiv:2405.14103): the policy's own samples are paired
/// with self-judged preference <b>strengths</b>, and the loss is a soft-preference cross-entropy instead of DPO's hard
/// label. With h = (log π_θ(c) − log π_ref(c)) − (log π_θ(r) − log π_ref(r)) and p = P(c ≻ r):
/// loss = −p·log σ(β h) − (1 − p)·log σ(−β h), mean over B. p = 1 is DPO; p = ½ pulls h to 0 (an uncertain pair
/// asks for no margin), and in general the minimum is at σ(β h) = p, i.e. β h = log(p / (1 − p)).
/// <see cref="RankedPairs"/> builds several pairs per prompt from K self-judged scores ("ranked pairing").
/// Departures (the paper's full text could not be read here; the loss is the soft cross-entropy its name states): the
/// ranked pairing matches the best with the worst, the second best with the second worst, and so on, and the strength
/// of a pair of scores s_c ≥ s_r is σ((s_c − s_r)/T); with a pairwise judge the strength is the judge's own P.
/// </summary>
public static class SoftPreferenceLosses
{
    /// <summary>OSP's soft-preference cross-entropy (see the class summary); <see cref="PreferenceInput.Strengths"/> null means p = 1.
    /// Metrics use the implicit rewards β·(log π_θ − log π_ref).</summary>
    public static (Tensor Loss, PreferenceMetrics Metrics) Osp(PreferenceInput x, double beta = 0.1)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!(beta > 0) || double.IsInfinity(beta)) throw new ArgumentOutOfRangeException(nameof(beta), beta, "beta must be a finite number > 0.");
        if (x.ReferenceChosen is null || x.ReferenceRejected is null) throw new ArgumentException("OSP's loss needs the reference's log-probs of both completions.", nameof(x));
        foreach (var (t, name) in new[] { (x.PolicyRejected, "PolicyRejected"), (x.ReferenceChosen, "ReferenceChosen"), (x.ReferenceRejected, "ReferenceRejected") })
            if (!t.shape.SequenceEqual(x.PolicyChosen.shape))
                throw new ArgumentException($"{name} has shape [{string.Join(", ", t.shape)}] but must match [{string.Join(", ", x.PolicyChosen.shape)}].", nameof(x));
        using var scope = NewDisposeScope();
        var dtype = x.PolicyChosen.dtype;
        var chosen = x.PolicyChosen - x.ReferenceChosen.detach().to_type(dtype);                  // (B)
        var rejected = x.PolicyRejected - x.ReferenceRejected.detach().to_type(dtype);            // (B)
        var z = beta * (chosen - rejected);                                                        // (B)  β h
        Tensor perPair;
        if (x.Strengths is null) perPair = F.softplus(-z);                                        // p = 1: DPO
        else
        {
            if (!x.Strengths.shape.SequenceEqual(x.PolicyChosen.shape))
                throw new ArgumentException($"Strengths has shape [{string.Join(", ", x.Strengths.shape)}] but must match [{string.Join(", ", x.PolicyChosen.shape)}].", nameof(x));
            var p = x.Strengths.detach().to_type(dtype);                                           // (B)
            using (no_grad())
                if (((p < 0) | (p > 1) | p.isnan()).any().item<bool>()) throw new ArgumentException("Strengths must lie in [0, 1] (a probability that the chosen completion is better).", nameof(x));
            perPair = p * F.softplus(-z) + (1 - p) * F.softplus(z);                                // −p log σ(βh) − (1−p) log σ(−βh)
        }
        var loss = perPair.mean();
        PreferenceMetrics metrics;
        using (no_grad())
        {
            var c = (beta * chosen).detach().to_type(ScalarType.Float32);
            var r = (beta * rejected).detach().to_type(ScalarType.Float32);
            metrics = new PreferenceMetrics((c > r).to_type(ScalarType.Float32).mean().item<float>(), (c - r).mean().item<float>(),
                c.mean().item<float>(), r.mean().item<float>());
        }
        return (loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// OSP's ranked pairing of one prompt's K self-judged <paramref name="scores"/>: sorted from best to worst (ties keep
    /// their order), rank i is paired with rank K − 1 − i for i &lt; ⌊K/2⌋, each with strength σ((s_c − s_r)/T). Pairs of equal
    /// scores (strength ½, no preference) are left out.
    /// </summary>
    public static IReadOnlyList<(int Chosen, int Rejected, double Strength)> RankedPairs(IReadOnlyList<double> scores, double temperature = 1.0)
    {
        ArgumentNullException.ThrowIfNull(scores);
        if (!(temperature > 0) || double.IsInfinity(temperature)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be a finite number > 0.");
        if (scores.Any(s => !double.IsFinite(s))) throw new ArgumentException("every score must be a finite number", nameof(scores));
        var order = Enumerable.Range(0, scores.Count).OrderByDescending(i => scores[i]).ToArray();   // stable
        var pairs = new List<(int, int, double)>();
        for (int i = 0; i < order.Length / 2; i++)
        {
            int c = order[i], r = order[order.Length - 1 - i];
            double d = scores[c] - scores[r];
            if (d > 0) pairs.Add((c, r, 1 / (1 + Math.Exp(-d / temperature))));
        }
        return pairs;
    }
}
