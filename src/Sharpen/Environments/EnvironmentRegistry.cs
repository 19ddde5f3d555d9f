namespace Sharpen.Environments;

/// <summary>
/// Built-in environments by name, so a recipe can say <c>env: {name: guess-number, ...}</c>: <c>countdown-tool</c>,
/// <c>daslam</c>, <c>dsp</c>, <c>guess-number</c>, <c>maze</c>, <c>self-correction</c>, <c>twenty-questions</c>, <c>wordle</c>
/// (<c>dsp</c> and <c>daslam</c> need options whose <see cref="FrozenEnvironmentOptions.Model"/> is an opened frozen model). Names are
/// case-insensitive; an unknown name or a wrong options type throws <see cref="ArgumentException"/> listing what is known.
/// Each call makes a new instance (one per concurrent episode).
/// </summary>
public static class EnvironmentRegistry
{
    static readonly Dictionary<string, Func<EnvironmentOptions?, IEnvironment>> Factories = new(StringComparer.OrdinalIgnoreCase);
    static readonly object Gate = new();

    static EnvironmentRegistry()
    {
        Register("guess-number", o => new GuessNumberEnvironment(As<GuessNumberOptions>("guess-number", o)));
        Register("wordle", o => new WordleEnvironment(As<WordleOptions>("wordle", o)));
        Register("twenty-questions", o => new TwentyQuestionsEnvironment(As<TwentyQuestionsOptions>("twenty-questions", o)));
        Register("maze", o => new MazeEnvironment(As<MazeOptions>("maze", o)));
        Register("countdown-tool", o => new CountdownToolEnvironment(As<CountdownToolOptions>("countdown-tool", o)));
        Register("self-correction", o => new SelfCorrectionEnvironment(As<SelfCorrectionOptions>("self-correction", o)));
        Register("dsp", o => new DspEnvironment(As<DspOptions>("dsp", o) ?? new DspOptions()));
        Register("daslam", o => new DaslamEnvironment(As<DaslamOptions>("daslam", o) ?? new DaslamOptions()));
    }

    /// <summary>The registered names, sorted.</summary>
    public static IReadOnlyList<string> Names
    {
        get { lock (Gate) return Factories.Keys.Order(StringComparer.Ordinal).ToArray(); }
    }

    /// <summary>A new environment <paramref name="name"/> with <paramref name="options"/> (its own options type, or null for the defaults).</summary>
    public static IEnvironment Create(string name, EnvironmentOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        Func<EnvironmentOptions?, IEnvironment>? factory;
        lock (Gate) Factories.TryGetValue(name, out factory);
        if (factory is null)
            throw new ArgumentException($"unknown environment '{name}' (known environments: {string.Join(", ", Names)})", nameof(name));
        return factory(options);
    }

    /// <summary>Adds an environment. Registering a name twice throws.</summary>
    public static void Register(string name, Func<EnvironmentOptions?, IEnvironment> factory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(factory);
        lock (Gate)
            if (!Factories.TryAdd(name, factory)) throw new ArgumentException($"environment '{name}' is already registered", nameof(name));
    }

    static T? As<T>(string name, EnvironmentOptions? options) where T : EnvironmentOptions => options switch
    {
        null => null,
        T typed => typed,
        _ => throw new ArgumentException($"environment '{name}' takes {typeof(T).Name}, not {options.GetType().Name}", nameof(options)),
    };
}
