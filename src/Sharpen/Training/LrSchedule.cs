namespace Sharpen.Training;

/// <summary>Linear warm-up from 0 to the peak, then cosine decay to <c>MinRatio · peak</c> at <c>TotalSteps</c>.</summary>
public sealed record LrSchedule(double Peak, int WarmupSteps, int TotalSteps, double MinRatio = 0.1)
{
    /// <summary>Learning rate for optimizer step <paramref name="step"/> (0-based).</summary>
    public double At(int step)
    {
        if (WarmupSteps > 0 && step < WarmupSteps) return Peak * (step + 1) / WarmupSteps;
        int decay = Math.Max(1, TotalSteps - WarmupSteps);
        double progress = Math.Clamp((double)(step - WarmupSteps) / decay, 0, 1);
        return Peak * (MinRatio + (1 - MinRatio) * 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }
}
