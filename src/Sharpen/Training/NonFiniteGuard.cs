using static TorchSharp.torch;

namespace Sharpen.Training;

/// <summary>A run stopped because too many optimizer steps had a non-finite loss or gradient norm.</summary>
public sealed class NonFiniteTrainingException(string message) : InvalidOperationException(message);

/// <summary>
/// The one place an optimizer step happens in every trainer: clip the gradient norm, and step only when the loss and the
/// norm are finite. A non-finite step is skipped (gradients cleared; weights and optimizer moments untouched) and counted;
/// after <see cref="MaxSkipped"/> skipped steps the run stops with a <see cref="NonFiniteTrainingException"/> naming the
/// step and the likely causes, so NaN never reaches the weights or a checkpoint.
/// </summary>
public sealed class NonFiniteGuard(string what, int maxSkipped = 10)
{
    /// <summary>Skipped steps so far (logged as <c>skipped_nonfinite_steps</c>).</summary>
    public int Skipped { get; set; }
    /// <summary>How many skipped steps stop the run.</summary>
    public int MaxSkipped { get; } = maxSkipped;

    /// <summary>
    /// Clips the gradients of <paramref name="parameters"/> to <paramref name="maxGradNorm"/> (0 = no clipping, the norm is
    /// still measured), then steps <paramref name="optimizer"/> if <paramref name="loss"/> and the norm are finite.
    /// Returns whether it stepped and the gradient norm before clipping.
    /// </summary>
    public (bool Stepped, double GradNorm) Step(optim.Optimizer optimizer, IEnumerable<TorchSharp.Modules.Parameter> parameters,
        double maxGradNorm, double loss, int step)
    {
        var ps = parameters.ToList();
        double norm = maxGradNorm > 0 ? nn.utils.clip_grad_norm_(ps, maxGradNorm) : TotalNorm(ps);
        if (double.IsFinite(loss) && double.IsFinite(norm))
        {
            optimizer.step();
            return (true, norm);
        }
        optimizer.zero_grad();
        Skipped++;
        if (Skipped > MaxSkipped)
            throw new NonFiniteTrainingException(
                $"{what}: step {step} had a non-finite {(double.IsFinite(loss) ? "gradient norm" : "loss")} ({(double.IsFinite(loss) ? norm : loss)}), " +
                $"the {Skipped}th such step (limit {MaxSkipped}); the weights were left as they were before each of them. Likely causes: " +
                "a reward or label far outside float32's range, or a learning rate too high for this model.");
        return (false, norm);
    }

    static double TotalNorm(IReadOnlyList<TorchSharp.Modules.Parameter> ps)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        double sq = 0;
        foreach (var p in ps)
            if (p.grad is { } g) sq += g.to(ScalarType.Float64).pow(2).sum().item<double>();
        return Math.Sqrt(sq);
    }
}
