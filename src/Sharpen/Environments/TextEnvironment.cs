using Sharpen.Data;

namespace Sharpen.Environments;

/// <summary>
/// Base of the built-in environments: synchronous <see cref="Reset"/> and <see cref="Step"/> (wrapped as completed
/// <see cref="ValueTask"/>s), the turn count, and the checks that an episode is running. Derived classes implement
/// <see cref="OnReset"/> and <see cref="OnStep"/> and must not throw on any action text.
/// </summary>
public abstract class TextEnvironment : IEnvironment
{
    bool _running;

    /// <inheritdoc />
    public abstract string Name { get; }

    /// <inheritdoc />
    public abstract string Alphabet { get; }

    /// <summary>Assistant turns played in the current episode.</summary>
    public int Turns { get; private set; }

    /// <summary>Starts an episode (see <see cref="IEnvironment.ResetAsync"/>).</summary>
    public IReadOnlyList<ChatMessage> Reset(int seed)
    {
        var first = OnReset(seed);
        Turns = 0;
        _running = true;
        return first;
    }

    /// <summary>Plays one action (see <see cref="IEnvironment.StepAsync"/>); a null action counts as empty text.</summary>
    public EnvironmentStep Step(string? action)
    {
        if (!_running) throw new InvalidOperationException($"environment '{Name}': Step called with no episode running (call Reset first; an episode ends when a step returns done)");
        Turns++;
        var step = OnStep(action ?? "");
        if (step.Done) _running = false;
        return step;
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<ChatMessage>> ResetAsync(int seed, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Reset(seed));
    }

    /// <inheritdoc />
    public ValueTask<EnvironmentStep> StepAsync(string action, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Step(action));
    }

    /// <summary>Sets up the episode of <paramref name="seed"/> and returns the first observation.</summary>
    protected abstract IReadOnlyList<ChatMessage> OnReset(int seed);

    /// <summary>Answers one action; <see cref="Turns"/> already counts it. Never throws on the action's text.</summary>
    protected abstract EnvironmentStep OnStep(string action);

    /// <summary>One <c>user</c> message.</summary>
    protected static IReadOnlyList<ChatMessage> User(string text) => [new ChatMessage("user", text)];

    /// <summary>A step with one <c>user</c> observation.</summary>
    protected static EnvironmentStep Answer(string text, double reward, bool done, params (string Key, string Value)[] info) =>
        new(User(text), reward, done, info.ToDictionary(i => i.Key, i => i.Value));

    /// <summary>The sorted distinct characters of <paramref name="texts"/> plus those of <see cref="TranscriptRenderer.Plain"/>.</summary>
    protected static string AlphabetOf(params string[] texts) =>
        new(texts.Append(TranscriptRenderer.PlainCharacters).SelectMany(t => t).Distinct().Order().ToArray());
}
