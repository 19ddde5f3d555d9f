using System.Globalization;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Data;
using Sharpen.Rewards;
using static TorchSharp.torch;

namespace Sharpen.Training.Preference;

/// <summary>
/// UPO's data step (Wang et al. 2024, "Self-Evolutionary Large Language Models through Uncertainty-Enhanced Preference
/// Optimization", arXiv:2409.11212): the uncertainty of each pair's label from M reward functions — an ensemble of reward
/// models, or M stochastic passes of one (MC dropout) — as the <c>certainty</c> column the <c>upo</c> loss reads, and
/// reliable-pair sampling over it. Per pair and member, P_m(chosen ≻ rejected) = σ(r_m(chosen) − r_m(rejected)); the
/// uncertainty is BALD's mutual information u = H(p̄) − mean_m H(p_m) and the certainty 1 − u/ln 2
/// (<see cref="ReliablePairLosses.LabelUncertainty"/>). Departure: the paper's estimator is a Bayesian (MC-dropout) network
/// over the policy's features; our reward models have no dropout layers, so an ensemble of reward models is the practical
/// source here (any <see cref="IRewardFunction"/> works, including a stochastic one called M times).
/// </summary>
public static class UpoCertainty
{
    /// <summary>
    /// The pairs with fields <c>certainty</c> (1 − u/ln 2), <c>label_probability</c> (p̄) and <c>label_mutual_information</c>
    /// (u, nats) from the scores of every member of <paramref name="ensemble"/> (at least two). A member that gives no score
    /// (null) or a non-finite one for a completion stops with an error naming the member and the pair.
    /// </summary>
    public static async Task<List<PreferenceExample>> AnnotateAsync(IReadOnlyList<PreferenceExample> pairs, IReadOnlyList<IRewardFunction> ensemble,
        CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        ArgumentNullException.ThrowIfNull(ensemble);
        if (ensemble.Count < 2) throw new ArgumentException($"UPO's uncertainty needs at least two reward models (or passes), got {ensemble.Count}");
        if (pairs.Count == 0) return [];
        int b = pairs.Count, m = ensemble.Count;
        var batch = pairs.Select(p => new RewardContext(p.Prompt, p.Chosen, p.Fields, 0))
            .Concat(pairs.Select(p => new RewardContext(p.Prompt, p.Rejected, p.Fields, 0))).ToList();
        var chosen = new double[m * b];
        var rejected = new double[m * b];
        for (int k = 0; k < m; k++)
        {
            var scores = await ensemble[k].ScoreAsync(batch, cancel).ConfigureAwait(false);
            if (scores.Length != 2 * b) throw new InvalidOperationException($"reward '{ensemble[k].Name}' returned {scores.Length} scores for {2 * b} completions");
            for (int i = 0; i < 2 * b; i++)
                if (scores[i] is not { } v || !double.IsFinite(v))
                    throw new InvalidOperationException($"reward '{ensemble[k].Name}' gave {(scores[i] is null ? "no score" : scores[i]!.Value.ToString(CultureInfo.InvariantCulture))} for the {(i < b ? "chosen" : "rejected")} completion of pair {i % b + 1}; every member must score every completion");
                else if (i < b) chosen[k * b + i] = v;
                else rejected[k * b + i - b] = v;
        }
        double[] mean, mi;
        using (var scope = NewDisposeScope())
        {
            var probs = ReliablePairLosses.EnsembleProbabilities(tensor(chosen).view(m, b), tensor(rejected).view(m, b));   // (M, B)
            (mean, mi, _) = ReliablePairLosses.LabelUncertainty(probs);
        }
        return [.. pairs.Select((p, i) => p with
        {
            Fields = new Dictionary<string, string>(p.Fields)
            {
                ["certainty"] = ReliablePairLosses.Certainty(mi[i]).ToString("R", CultureInfo.InvariantCulture),
                ["label_probability"] = mean[i].ToString("R", CultureInfo.InvariantCulture),
                ["label_mutual_information"] = mi[i].ToString("R", CultureInfo.InvariantCulture),
            },
        })];
    }

    /// <summary>UPO's reliable-pair sampling over annotated pairs: <paramref name="count"/> distinct pairs drawn with
    /// probability ∝ certainty (<see cref="ReliablePairLosses.SampleReliablePairs"/>), seeded, in draw order.</summary>
    public static List<PreferenceExample> SampleReliable(IReadOnlyList<PreferenceExample> annotated, int count, int seed)
    {
        var mi = annotated.Select((p, i) => p.Fields.TryGetValue("label_mutual_information", out var v)
            ? double.Parse(v, CultureInfo.InvariantCulture)
            : throw new ArgumentException($"pair {i + 1} has no label_mutual_information; annotate the pairs first")).ToList();
        return [.. ReliablePairLosses.SampleReliablePairs(mi, count, seed).Select(i => annotated[i])];
    }

    /// <summary>Writes pairs as <c>{"prompt", "chosen", "rejected", ...fields}</c> JSONL (atomically); returns the count.</summary>
    public static int Write(string path, IReadOnlyList<PreferenceExample> pairs)
    {
        var lines = pairs.Select(p =>
        {
            var o = new JsonObject { ["prompt"] = p.Prompt, ["chosen"] = p.Chosen, ["rejected"] = p.Rejected };
            foreach (var (k, v) in p.Fields) if (k is not ("prompt" or "chosen" or "rejected")) o[k] = v;
            return o.ToJsonString();
        });
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        Checkpoints.AtomicFile.WriteAllText(path, string.Concat(lines.Select(l => l + "\n")));
        return pairs.Count;
    }
}
