namespace Sharpen.Algorithms;

/// <summary>PF-PPO's filter of each prompt's samples before the update (<c>rl.filter</c>).</summary>
public enum PolicyFilter
{
    /// <summary>Every sample.</summary>
    None,
    /// <summary>The best and the worst by reward.</summary>
    BestWorst,
    /// <summary>The best by reward and a random draw from the rest.</summary>
    BestRandom,
}


/// <summary>
/// PF-PPO's policy filtration (Zhang et al. 2024, arXiv:2409.06957) as pure functions: which of each prompt's G samples,
/// ranked by their reward-model score, reach the PPO update, and the R² that tells how well the kept samples' rewards
/// predict their true outcome (the paper's criterion for picking a filter).
/// </summary>
public static class PolicyFiltration
{
    /// <summary>
    /// The kept rows of <paramref name="rewards"/> (B = groups × <paramref name="g"/>, each group's rows adjacent), in row
    /// order. Per group: the k_b = ⌈best·G⌉ highest rewards; then for <c>best_worst</c> the k_w = ⌈worst·G⌉ lowest of the
    /// others, for <c>best_random</c> k_w drawn uniformly from the others (with <paramref name="rng"/>). Ties keep the
    /// earlier row first. <c>none</c> keeps every row.
    /// </summary>
    public static int[] Select(IReadOnlyList<double> rewards, int g, PolicyFilter filter, double best, double worst, Random rng)
    {
        ArgumentNullException.ThrowIfNull(rewards);
        if (g < 1 || rewards.Count % g != 0) throw new ArgumentException($"{rewards.Count} rewards do not split into groups of {g}");
        if (filter == PolicyFilter.None) return Enumerable.Range(0, rewards.Count).ToArray();
        int kb = Math.Min(g, (int)Math.Ceiling(best * g - 1e-9)), kw = Math.Min(g - kb, (int)Math.Ceiling(worst * g - 1e-9));
        var kept = new List<int>();
        for (int start = 0; start < rewards.Count; start += g)
        {
            var ranked = Enumerable.Range(start, g).OrderByDescending(i => rewards[i]).ThenBy(i => i).ToList();   // best first
            var keep = ranked.Take(kb).ToList();
            var rest = ranked.Skip(kb).ToList();
            if (filter == PolicyFilter.BestWorst) keep.AddRange(rest.Skip(rest.Count - kw));
            else
                for (int j = 0; j < kw; j++) { int pick = rng.Next(rest.Count); keep.Add(rest[pick]); rest.RemoveAt(pick); }
            kept.AddRange(keep.Order());
        }
        return kept.ToArray();
    }

    /// <summary>
    /// R² of the least-squares line predicting <paramref name="outcome"/> from <paramref name="reward"/>: 1 − SS_res / SS_tot,
    /// which for one regressor is the squared Pearson correlation. NaN when either side is constant or there are fewer than
    /// two points (no line to fit).
    /// </summary>
    public static double RSquared(IReadOnlyList<double> reward, IReadOnlyList<double> outcome)
    {
        if (reward.Count != outcome.Count) throw new ArgumentException($"{reward.Count} rewards but {outcome.Count} outcomes");
        int n = reward.Count;
        if (n < 2) return double.NaN;
        double mx = reward.Average(), my = outcome.Average(), sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < n; i++)
        {
            double dx = reward[i] - mx, dy = outcome[i] - my;
            sxy += dx * dy; sxx += dx * dx; syy += dy * dy;
        }
        return sxx <= 0 || syy <= 0 ? double.NaN : sxy * sxy / (sxx * syy);
    }
}
