namespace Sharpen.Tasks;

/// <summary>
/// Options for <see cref="CountdownTask"/>. Difficulty grows with the count and size of the numbers
/// and with <see cref="MaxTarget"/>. Defaults suit a tiny character-level model: 3–4 numbers in
/// 1–20, targets 1–100 (the TinyZero Countdown setup uses 3–4 numbers with targets up to 100).
/// </summary>
public sealed record CountdownOptions : TaskOptions
{
    /// <summary>Fewest numbers in a problem. Default 3.</summary>
    public int MinNumbers { get; init; } = 3;

    /// <summary>Most numbers in a problem (at most 6). Default 4.</summary>
    public int MaxNumbers { get; init; } = 4;

    /// <summary>Largest given number; numbers are drawn from 1 to this (at most 1000). Default 20.</summary>
    public int MaxNumber { get; init; } = 20;

    /// <summary>Largest target; targets lie in 1 to this and never equal a given number. Default 100.</summary>
    public int MaxTarget { get; init; } = 100;

    /// <summary>When true every number must be used exactly once; otherwise at most once. Default false.</summary>
    public bool UseAllNumbers { get; init; }

    /// <summary>When false (the default) the verifier evaluates with exact fractions, so <c>7/2*4</c> is
    /// 14; when true a division with a remainder anywhere makes the answer <c>non_integer</c>.
    /// Generated solutions only ever divide exactly.</summary>
    public bool IntegerDivisionOnly { get; init; }

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(MinNumbers, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxNumbers, 6);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxNumbers, MinNumbers);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxNumber, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxNumber, 1000);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxTarget, 3);
    }
}
