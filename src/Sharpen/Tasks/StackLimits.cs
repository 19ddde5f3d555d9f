namespace Sharpen.Tasks;

/// <summary>The limits a program runs under: every run ends within <see cref="MaxSteps"/> instructions and holds at most
/// <see cref="MaxStack"/> values of magnitude ≤ <see cref="MaxValue"/> (the memory limit), whatever the program says.</summary>
public sealed record StackLimits
{
    /// <summary>Most instructions one run executes (each word, and each pass over a <c>]</c>, is one step). Default 2,000.</summary>
    public int MaxSteps { get; init; } = 2_000;
    /// <summary>Most values on the stack at once (the memory limit). Default 32.</summary>
    public int MaxStack { get; init; } = 32;
    /// <summary>Largest magnitude of a literal or a result; a larger one is an overflow error (at most 10^15). Default 1,000,000,000.</summary>
    public long MaxValue { get; init; } = 1_000_000_000;
    /// <summary>Most words in a program. Default 128.</summary>
    public int MaxWords { get; init; } = 128;
    /// <summary>Deepest nesting of <c>[ ]</c> blocks. Default 4.</summary>
    public int MaxNesting { get; init; } = 4;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a limit that is not positive.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxSteps);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxStack);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxValue);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxValue, 1_000_000_000_000_000L);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxWords);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxNesting);
    }
}
