namespace Sharpen.Algorithms;

/// <summary>A constant KL coefficient β; <see cref="Update"/> does nothing.</summary>
/// <param name="beta">β ≥ 0.</param>
public sealed class FixedKlController(double beta) : IKlController
{
    /// <inheritdoc />
    public double Value { get; } = beta >= 0 && double.IsFinite(beta)
        ? beta
        : throw new ArgumentOutOfRangeException(nameof(beta), beta, "Beta must be finite and non-negative.");

    /// <inheritdoc />
    public void Update(double observedKl, int steps) { }
}
