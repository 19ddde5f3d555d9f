using Sharpen.Data;

namespace Sharpen.Environments;

/// <summary>
/// A world the policy talks to over several turns (LMRL-Gym's text games, a tool, a self-correction prompt, a server in
/// any language). One instance plays one episode at a time: <see cref="ResetAsync"/> starts an episode and returns the
/// first observation; every <see cref="StepAsync"/> takes the policy's message and answers with the next observation,
/// the turn's reward and whether the episode is over. Built-in environments answer synchronously (a completed
/// <see cref="ValueTask"/>); <see cref="HttpEnvironment"/> does I/O. An environment never throws on model output: text it
/// cannot read is an invalid action, answered with an observation that says so (and usually reward 0).
/// </summary>
public interface IEnvironment
{
    /// <summary>Registry name, e.g. <c>guess-number</c>.</summary>
    string Name { get; }

    /// <summary>Every character its observations and valid actions can contain, plus the characters of
    /// <see cref="TranscriptRenderer.Plain"/> (newline, '&gt;', space), sorted by code point, so that a character
    /// tokenizer over it can read and write whole transcripts.</summary>
    string Alphabet { get; }

    /// <summary>Starts an episode from <paramref name="seed"/> (the same seed, the same episode) and returns its first
    /// observation (usually one <c>user</c> message).</summary>
    ValueTask<IReadOnlyList<ChatMessage>> ResetAsync(int seed, CancellationToken cancellationToken = default);

    /// <summary>Plays the policy's <paramref name="action"/> (the assistant message's text). Throws
    /// <see cref="InvalidOperationException"/> when no episode is running (before a reset or after done).</summary>
    ValueTask<EnvironmentStep> StepAsync(string action, CancellationToken cancellationToken = default);
}
