namespace Sharpen.Search;

/// <summary>Answer voting shared by search strategies and evaluation (maj@k).</summary>
public static class Voting
{
    /// <summary>The most frequent non-null answer; ties go to the answer seen first. Null when there is none.</summary>
    public static string? MajorityVote(IReadOnlyList<string?> answers)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var firstSeen = new List<string>();
        foreach (var a in answers)
        {
            if (a is null) continue;
            if (!counts.TryAdd(a, 1)) counts[a]++;
            else firstSeen.Add(a);
        }
        string? best = null;
        foreach (var a in firstSeen)
            if (best is null || counts[a] > counts[best]) best = a;
        return best;
    }
}
