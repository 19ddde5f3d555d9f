namespace Sharpen.Tasks;

/// <summary>Options for <see cref="Game24Task"/>.</summary>
public sealed record Game24Options : TaskOptions
{
    /// <summary>Largest card; the four numbers are drawn from 1 to this (2 to 100). Default 13, as in
    /// the card game and in Tree of Thoughts (arXiv:2305.10601).</summary>
    public int MaxNumber { get; init; } = 13;

    /// <summary>The value to make. Default 24.</summary>
    public int Target { get; init; } = 24;

    /// <summary>When true, only instances with no solution in whole-number steps are generated (every
    /// solution passes through a fraction or a negative number, like 3 3 8 8). Default false.</summary>
    public bool HardOnly { get; init; }

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxNumber, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxNumber, 100);
        ArgumentOutOfRangeException.ThrowIfNegative(Target);
    }
}
