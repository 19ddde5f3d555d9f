namespace Sharpen.Tasks;

/// <summary>
/// Options every task shares. Each task has its own derived record with its difficulty knobs.
/// </summary>
public abstract record TaskOptions
{
    /// <summary>Reward added when the completion has the expected format (an answer line that
    /// parses), whether or not the answer is right. Default 0 (outcome reward only).</summary>
    public double FormatReward { get; init; }

    /// <summary>Completions longer than this many characters get <see cref="VerdictReasons.TooLong"/>
    /// without being read further. Default 4096.</summary>
    public int MaxCompletionLength { get; init; } = 4096;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> when a value is out of range.</summary>
    public virtual void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(FormatReward);
        if (!double.IsFinite(FormatReward)) throw new ArgumentOutOfRangeException(nameof(FormatReward), "must be finite");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxCompletionLength);
    }
}
