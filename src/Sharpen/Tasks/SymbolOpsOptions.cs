namespace Sharpen.Tasks;

/// <summary>Options for <see cref="SymbolOpsTask"/>.</summary>
public sealed record SymbolOpsOptions : TaskOptions
{
    /// <summary>Largest operand (2 to 99); operands are drawn from 1 to this. Default 9.</summary>
    public int MaxOperand { get; init; } = 9;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxOperand, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxOperand, 99);
    }
}
