namespace Sharpen.Tasks;

/// <summary>
/// Tasks by name: <c>arithmetic</c>, <c>countdown</c>, <c>game24</c>, <c>sentiment</c> (word-label classification), <c>stack-code</c>,
/// <c>symbol-ops</c>, <c>gsm8k</c> (which needs
/// <see cref="Gsm8kOptions.Path"/>). Names are case-insensitive. An unknown name throws with the known names.
/// </summary>
public static class TaskRegistry
{
    static readonly Dictionary<string, Func<TaskOptions?, IVerifiableTask>> Factories = new(StringComparer.OrdinalIgnoreCase);
    static readonly object Gate = new();

    static TaskRegistry()
    {
        Register("countdown", o => new CountdownTask(As<CountdownOptions>("countdown", o)));
        Register("game24", o => new Game24Task(As<Game24Options>("game24", o)));
        Register("arithmetic", o => new ArithmeticTask(As<ArithmeticOptions>("arithmetic", o)));
        Register("sentiment", o => new SentimentTask(As<SentimentOptions>("sentiment", o)));
        Register("symbol-ops", o => new SymbolOpsTask(As<SymbolOpsOptions>("symbol-ops", o)));
        Register("stack-code", o => new StackCodeTask(As<StackCodeOptions>("stack-code", o)));
        Register("gsm8k", o =>
        {
            var options = As<Gsm8kOptions>("gsm8k", o);
            if (options?.Path is not { } path)
                throw new ArgumentException("task 'gsm8k' reads its problems from a file: pass new Gsm8kOptions { Path = \"...\" }");
            return Gsm8kTask.Load(path, options);
        });
    }

    /// <summary>The registered names, sorted.</summary>
    public static IReadOnlyList<string> Names
    {
        get { lock (Gate) return Factories.Keys.Order(StringComparer.Ordinal).ToArray(); }
    }

    /// <summary>Makes the task <paramref name="name"/> with <paramref name="options"/> (its own options type, or
    /// null for the defaults). Throws <see cref="ArgumentException"/> for an unknown name or a wrong options type.</summary>
    public static IVerifiableTask Create(string name, TaskOptions? options = null)
    {
        Func<TaskOptions?, IVerifiableTask>? factory;
        lock (Gate) Factories.TryGetValue(name, out factory);
        if (factory is null)
            throw new ArgumentException($"unknown task '{name}' (known tasks: {string.Join(", ", Names)})", nameof(name));
        return factory(options);
    }

    /// <summary>Adds a task. Registering a name twice throws.</summary>
    public static void Register(string name, Func<TaskOptions?, IVerifiableTask> factory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(factory);
        lock (Gate)
            if (!Factories.TryAdd(name, factory)) throw new ArgumentException($"task '{name}' is already registered", nameof(name));
    }

    static T? As<T>(string name, TaskOptions? options) where T : TaskOptions => options switch
    {
        null => null,
        T typed => typed,
        _ => throw new ArgumentException($"task '{name}' takes {typeof(T).Name}, not {options.GetType().Name}", nameof(options)),
    };
}
