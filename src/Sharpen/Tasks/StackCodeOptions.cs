namespace Sharpen.Tasks;

/// <summary>Options for <see cref="StackCodeTask"/>.</summary>
public sealed record StackCodeOptions : TaskOptions
{
    /// <summary>Operators in a formula's tree (1 to 4). Default 2: formulas like <c>3*x+2</c> or <c>x*(x-4)</c>.</summary>
    public int Operators { get; init; } = 2;

    /// <summary>Largest constant in a formula (1 to 9). Default 9.</summary>
    public int MaxConstant { get; init; } = 9;

    /// <summary>Generated unit tests per problem (distinct inputs, 2 to 16). Default 5.</summary>
    public int Tests { get; init; } = 5;

    /// <summary>Test inputs are drawn from −MaxInput … MaxInput (at least Tests values). Default 9.</summary>
    public int MaxInput { get; init; } = 9;

    /// <summary>Share of worked solutions (the SFT targets) written the slow way: a product c·e (c a constant ≥ 3) as e
    /// followed by c−1 <c>dup</c>s and c−1 <c>+</c>s instead of <c>e c *</c>. Correct, but more interpreter steps, which the
    /// <see cref="StackCodeReward.Runtime"/> reward can train away (ACECode's setting: correct but slow code). Default 0.</summary>
    public double SlowSolutionFraction { get; init; }

    /// <summary>The reward: <see cref="StackCodeReward.Tests"/> (default) or <see cref="StackCodeReward.Runtime"/>.</summary>
    public StackCodeReward Reward { get; init; } = StackCodeReward.Tests;

    /// <summary>The interpreter's limits for every run of a model's program.</summary>
    public StackLimits Limits { get; init; } = new();

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(Operators, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Operators, 4);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConstant, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxConstant, 9);
        ArgumentOutOfRangeException.ThrowIfLessThan(Tests, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Tests, 16);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxInput, 1000);
        if (2 * MaxInput + 1 < Tests) throw new ArgumentOutOfRangeException(nameof(MaxInput), $"needs at least {Tests} distinct inputs, got −{MaxInput}…{MaxInput}");
        if (!(SlowSolutionFraction is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(SlowSolutionFraction), "must be in [0, 1]");
        if (!Enum.IsDefined(Reward)) throw new ArgumentOutOfRangeException(nameof(Reward));
        ArgumentNullException.ThrowIfNull(Limits);
        Limits.Validate();
    }
}
