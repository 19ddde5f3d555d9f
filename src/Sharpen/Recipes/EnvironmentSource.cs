using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Environments;

namespace Sharpen.Recipes;

/// <summary>
/// An <c>env:</c> section made real: a factory of environment instances (a built-in from
/// <see cref="EnvironmentRegistry"/> with the section's options, or sessions of a server through one
/// <see cref="HttpEnvironmentFactory"/>), its alphabet and the rollout's turn limit and token budget; for <c>dsp</c> and
/// <c>daslam</c>, the frozen model of <c>env.frozen</c>, opened once. Dispose it to release the server's HTTP client and
/// the frozen model.
/// </summary>
public sealed class EnvironmentSource : IDisposable
{
    readonly HttpEnvironmentFactory? _http;

    EnvironmentSource(Func<IEnvironment> create, HttpEnvironmentFactory? http, MultiTurnOptions rollout, FrozenModel? frozen = null)
    {
        Create = create;
        _http = http;
        Rollout = rollout;
        Frozen = frozen;
        var probe = create();
        (Name, Alphabet) = (probe.Name, probe.Alphabet);
    }

    /// <summary>A new environment instance.</summary>
    public Func<IEnvironment> Create { get; }
    /// <summary>The environment's name.</summary>
    public string Name { get; }
    /// <summary>The environment's alphabet (for a character tokenizer).</summary>
    public string Alphabet { get; }
    /// <summary>Turn limit and token budget (sampling left at its defaults: a newline ends a turn).</summary>
    public MultiTurnOptions Rollout { get; }
    /// <summary>The frozen model inside the environment (<c>dsp</c>, <c>daslam</c>: <c>env.frozen</c>), opened once and
    /// shared by every instance; null for other environments. Disposed with the source.</summary>
    public FrozenModel? Frozen { get; }

    /// <summary>The frozen model's counts since the previous call (<c>frozen/calls</c>, <c>frozen/requests</c>,
    /// <c>frozen/tokens</c>); empty without a frozen model.</summary>
    public IReadOnlyDictionary<string, double> TakeMetrics() => Frozen?.TakeMetrics() ?? new Dictionary<string, double>();

    /// <summary>The environment of <paramref name="section"/>; errors name <paramref name="source"/> and the key.</summary>
    public static EnvironmentSource From(EnvSection section, string source)
    {
        ArgumentNullException.ThrowIfNull(section);
        section.Validate(source);
        if (section.Url is { } url)
        {
            var reset = section.Options?.ToDictionary(kv => kv.Key, kv => JsonNode.Parse(kv.Value.GetRawText()));
            var factory = new HttpEnvironmentFactory(new Uri(url), string.IsNullOrWhiteSpace(section.Name) ? "remote" : section.Name, section.Alphabet,
                TimeSpan.FromSeconds(section.TimeoutSeconds), section.Retries, reset);
            var rollout = new MultiTurnOptions { MaxTurns = section.Turns ?? 8, MaxTrajectoryTokens = section.TokenBudget };
            try { return new EnvironmentSource(factory.Create, factory, rollout); }
            catch { factory.Dispose(); throw; }
        }
        var options = section.BuildOptions(source);
        FrozenModel? frozen = null;
        if (options is FrozenEnvironmentOptions { Model: null, Frozen: { } spec } f)
        {
            try { frozen = spec.Open(); }
            catch (Exception e) when (e is ArgumentException or IOException or InvalidOperationException or InvalidDataException)
            {
                throw new RecipeException($"{source}: 'env.frozen': {e.Message}");
            }
            options = f with { Model = frozen };
        }
        try
        {
            var name = section.Name;
            var opened = options;
            Func<IEnvironment> create = () => EnvironmentRegistry.Create(name, opened);
            var own = (create().GetType().GetProperty("Options")?.GetValue(create()) as EnvironmentOptions)?.MaxTurns ?? 8;
            return new EnvironmentSource(create, null, new MultiTurnOptions { MaxTurns = section.Turns ?? own, MaxTrajectoryTokens = section.TokenBudget }, frozen);
        }
        catch { frozen?.Dispose(); throw; }
    }

    /// <summary>A built-in environment by name with its default options.</summary>
    public static EnvironmentSource Builtin(string name, int? turns = null, int tokenBudget = 512) =>
        From(new EnvSection { Name = name, Turns = turns, TokenBudget = tokenBudget }, "env");

    /// <inheritdoc />
    public void Dispose()
    {
        _http?.Dispose();
        Frozen?.Dispose();
    }
}
