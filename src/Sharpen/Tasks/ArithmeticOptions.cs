namespace Sharpen.Tasks;

/// <summary>Which operation <see cref="ArithmeticTask"/> asks for.</summary>
public enum ArithmeticOperation
{
    /// <summary>a+b, worked column by column with carries.</summary>
    Addition,
    /// <summary>a*b, worked as partial products and their running sum.</summary>
    Multiplication,
    /// <summary>Each problem picks addition or multiplication with equal odds.</summary>
    Mixed,
}

/// <summary>Options for <see cref="ArithmeticTask"/>. Difficulty is the number of digits.</summary>
public sealed record ArithmeticOptions : TaskOptions
{
    /// <summary>The operation. Default <see cref="ArithmeticOperation.Addition"/>.</summary>
    public ArithmeticOperation Operation { get; init; } = ArithmeticOperation.Addition;

    /// <summary>Fewest digits of each operand. Default 1.</summary>
    public int MinDigits { get; init; } = 1;

    /// <summary>Most digits of each operand (at most 18). Default 3.</summary>
    public int Digits { get; init; } = 3;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(MinDigits, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(Digits, MinDigits);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Digits, 18);
        if (!Enum.IsDefined(Operation)) throw new ArgumentOutOfRangeException(nameof(Operation));
    }
}
