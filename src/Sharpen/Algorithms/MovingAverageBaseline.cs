namespace Sharpen.Algorithms;

/// <summary>
/// Exponential moving average of the batch mean reward, the classic REINFORCE baseline (Williams 1992). The first
/// <see cref="Update"/> sets <see cref="Value"/> to the observed mean; later ones set Value ← decay·Value + (1 − decay)·mean.
/// </summary>
/// <param name="decay">Weight of the old value, in [0, 1). Default 0.9.</param>
public sealed class MovingAverageBaseline(double decay = 0.9)
{
    readonly double _decay = decay is >= 0 and < 1
        ? decay
        : throw new ArgumentOutOfRangeException(nameof(decay), decay, "The decay must be in [0, 1).");

    /// <summary>The current baseline; 0 before the first update.</summary>
    public double Value { get; private set; }

    /// <summary>Whether <see cref="Update"/> has been called at least once.</summary>
    public bool Initialized { get; private set; }

    /// <summary>Folds one batch's mean reward into the average.</summary>
    public void Update(double meanReward)
    {
        if (!double.IsFinite(meanReward)) throw new ArgumentOutOfRangeException(nameof(meanReward), meanReward, "The mean reward must be finite.");
        Value = Initialized ? _decay * Value + (1 - _decay) * meanReward : meanReward;
        Initialized = true;
    }

    /// <summary>Sets the state saved in a checkpoint (a resumed run continues with the same baseline).</summary>
    public void Restore(double value)
    {
        if (!double.IsFinite(value)) throw new ArgumentOutOfRangeException(nameof(value), value, "The baseline must be finite.");
        Value = value;
        Initialized = true;
    }
}
