using Sharpen.Data;

namespace Sharpen.Environments;

/// <summary>
/// An environment whose episodes start after a given prefix of assistant actions (REFUEL's "reset to s_h", Gao et al.
/// 2024): <see cref="ResetAsync"/> resets the inner environment with the seed, plays the prefix's actions in it, and returns
/// the whole transcript so far (observations and the prefix's assistant messages) as the first observation, so the next
/// policy turn continues from the shared prefix with the prefix as context. The inner environment must be deterministic
/// given its seed (every built-in one is): the prefix must not end the episode.
/// </summary>
public sealed class PrefixReplayEnvironment(IEnvironment inner, IReadOnlyList<string> prefixActions) : IEnvironment, IDisposable
{
    readonly IEnvironment _inner = inner ?? throw new ArgumentNullException(nameof(inner));
    readonly IReadOnlyList<string> _prefix = prefixActions ?? throw new ArgumentNullException(nameof(prefixActions));

    /// <inheritdoc />
    public string Name => _inner.Name;

    /// <inheritdoc />
    public string Alphabet => _inner.Alphabet;

    /// <summary>The prefix's rewards, one per replayed action (known after a reset).</summary>
    public IReadOnlyList<double> PrefixRewards { get; private set; } = [];

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<ChatMessage>> ResetAsync(int seed, CancellationToken cancellationToken = default)
    {
        var messages = new List<ChatMessage>(await _inner.ResetAsync(seed, cancellationToken).ConfigureAwait(false));
        var rewards = new List<double>();
        for (int k = 0; k < _prefix.Count; k++)
        {
            messages.Add(new ChatMessage("assistant", _prefix[k]));
            var step = await _inner.StepAsync(_prefix[k], cancellationToken).ConfigureAwait(false);
            rewards.Add(step.Reward);
            messages.AddRange(step.Observation);
            if (step.Done)
                throw new InvalidOperationException($"environment '{_inner.Name}' (seed {seed}) ended at replayed turn {k + 1} of {_prefix.Count}; " +
                    "replaying a prefix needs an environment that plays the same episode for the same seed and actions");
        }
        PrefixRewards = rewards;
        return messages;
    }

    /// <inheritdoc />
    public ValueTask<EnvironmentStep> StepAsync(string action, CancellationToken cancellationToken = default) => _inner.StepAsync(action, cancellationToken);

    /// <inheritdoc />
    public void Dispose() => (_inner as IDisposable)?.Dispose();
}
