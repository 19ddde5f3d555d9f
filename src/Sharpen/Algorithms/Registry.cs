namespace Sharpen.Algorithms;

/// <summary>
/// A named registry of algorithm parts (estimators, losses). Built-ins are registered explicitly; <see cref="Get"/> of an
/// unknown name throws listing the known names; registering a name twice with a different entry throws.
/// </summary>
public sealed class Registry<T>(string kind) where T : class
{
    readonly Dictionary<string, T> _entries = new(StringComparer.Ordinal);

    /// <summary>Registered names, in registration order.</summary>
    public IReadOnlyList<string> Names => [.. _entries.Keys];

    /// <summary>Adds <paramref name="entry"/> under <paramref name="name"/>; the same entry again is a no-op, a different one throws.</summary>
    public void Register(string name, T entry)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(entry);
        lock (_entries)
        {
            if (_entries.TryGetValue(name, out var existing))
            {
                if (!ReferenceEquals(existing, entry) && !existing.Equals(entry))
                    throw new ArgumentException($"{kind} '{name}' is already registered with a different entry.", nameof(name));
                return;
            }
            _entries[name] = entry;
        }
    }

    /// <summary>Whether <paramref name="name"/> is registered.</summary>
    public bool Contains(string name) => name is not null && _entries.ContainsKey(name);

    /// <summary>The entry named <paramref name="name"/>; throws <see cref="ArgumentException"/> listing the known names.</summary>
    public T Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _entries.TryGetValue(name, out var e) ? e
            : throw new ArgumentException($"Unknown {kind} '{name}'. Known: {string.Join(", ", _entries.Keys)}.", nameof(name));
    }
}
