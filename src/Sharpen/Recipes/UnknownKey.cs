using System.Text.Json;
using System.Text.RegularExpressions;

namespace Sharpen.Recipes;

/// <summary>
/// Messages for keys a recipe section does not have: the key with its section, and the nearest valid key (Levenshtein
/// distance) as "did you mean ...?", or the list of valid keys when none is close. Every section binder uses this.
/// </summary>
public static class UnknownKey
{
    /// <summary>"unknown key 'section.key'; did you mean 'nearest'?" (or "...; known keys: a, b, c").</summary>
    public static string Message(string section, string key, IEnumerable<string> known)
    {
        var list = known.Distinct().OrderBy(k => k, StringComparer.Ordinal).ToList();
        var full = section.Length > 0 ? $"{section}.{key}" : key;
        return Nearest(key, list) is { } near
            ? $"unknown key '{full}'; did you mean '{near}'?"
            : $"unknown key '{full}'; known keys: {string.Join(", ", list)}";
    }

    /// <summary>The candidate closest to <paramref name="key"/> if it is close enough to be a typo (distance at most
    /// max(2, a third of the key's length)); null otherwise.</summary>
    public static string? Nearest(string key, IEnumerable<string> candidates)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (var c in candidates)
        {
            var d = Distance(key.ToLowerInvariant(), c.ToLowerInvariant());
            if (d < bestDistance) (best, bestDistance) = (c, d);
        }
        return bestDistance <= Math.Max(2, key.Length / 3) ? best : null;
    }

    /// <summary>Levenshtein distance (insertions, deletions and substitutions each cost 1).</summary>
    public static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }

    static readonly Regex Unmapped = new(@"^The JSON property '(?<key>.*)' could not be mapped to any \.NET member contained in type '(?<type>[^']+)'",
        RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));

    /// <summary>
    /// What <paramref name="e"/> (from binding a section with <see cref="Recipe"/>'s JSON options) says, as
    /// <c>'prefix.path': problem</c>; an unmapped key becomes <see cref="Message"/> with the keys of the type it was bound to.
    /// </summary>
    internal static string Describe(JsonException e, string prefix)
    {
        var path = (e.Path ?? "$").TrimStart('$').TrimStart('.');
        var full = prefix.Length == 0 ? path : path.Length == 0 ? prefix : $"{prefix}.{path}";
        var m = Unmapped.Match(e.Message);
        if (m.Success && typeof(Recipe).Assembly.GetType(m.Groups["type"].Value) is { } type)
        {
            var key = m.Groups["key"].Value;
            var section = full.EndsWith(key, StringComparison.Ordinal) ? full[..^key.Length].TrimEnd('.') : full;
            var known = Recipe.Json.GetTypeInfo(type).Properties.Select(p => p.Name);
            return Message(section, key, known);
        }
        var msg = e.Message;
        int cut = msg.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut > 0) msg = msg[..cut];
        return full.Length > 0 ? $"'{full}': {msg}" : msg;
    }
}
