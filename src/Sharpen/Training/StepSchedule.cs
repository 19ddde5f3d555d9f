using Sharpen.Training.Preference;
using Sharpen.Training.RewardModels;
using Sharpen.Training.Rl;
namespace Sharpen.Training;

/// <summary>
/// The optimisation schedule shared by the step-counted trainers (<see cref="PreferenceOptions"/>,
/// <see cref="RewardModelOptions"/>, <see cref="OfflinePolicyOptions"/>, <see cref="PrmOptions"/>,
/// <see cref="ImplicitPrmOptions"/>): AdamW without weight decay, linear warm-up then cosine decay, gradient clipping,
/// logging and checkpoint cadence, data-order seed. Each options record adds its own method's fields; the recipe keys
/// stay flat in its section (<c>preference.max_steps</c>, <c>prm.max_steps</c>, ...).
/// </summary>
public abstract record StepSchedule
{
    /// <summary>Optimizer steps to run.</summary>
    public int MaxSteps { get; init; } = 200;
    /// <summary>Items per optimizer step: pairs (preference, reward model, CoPG), kept rows (A-LoL), solutions (PRM), completions or pairs (implicit PRM).</summary>
    public int BatchSize { get; init; } = 16;
    /// <summary>Peak learning rate of AdamW (no weight decay).</summary>
    public double LearningRate { get; init; } = 5e-5;
    /// <summary>Linear warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 10;
    /// <summary>Final learning rate as a fraction of the peak (cosine decay).</summary>
    public double MinLrRatio { get; init; } = 0.1;
    /// <summary>Clip the global gradient norm to this (0 = off).</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Write a metrics row every N steps.</summary>
    public int LogEvery { get; init; } = 10;
    /// <summary>Save a resumable checkpoint every N steps (0 = only the final model).</summary>
    public int CheckpointEvery { get; init; } = 100;
    /// <summary>Checkpoints kept; older ones are deleted.</summary>
    public int KeepCheckpoints { get; init; } = 2;
    /// <summary>Seed of the data order.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>Passes over the data instead of <see cref="MaxSteps"/> (fractional allowed; TRL's <c>num_train_epochs</c>); the
    /// trainer turns it into steps with <see cref="EpochSteps.Steps"/> once it knows how many items there are. Null = use MaxSteps.</summary>
    public double? Epochs { get; init; }
    /// <summary>Warm-up as a fraction of the steps instead of <see cref="WarmupSteps"/> (TRL's <c>warmup_ratio</c>). Null = use WarmupSteps.</summary>
    public double? WarmupRatio { get; init; }

    /// <summary>This schedule with <see cref="Epochs"/> and <see cref="WarmupRatio"/> turned into <see cref="MaxSteps"/> and
    /// <see cref="WarmupSteps"/> for <paramref name="items"/> items (pairs, rows) at <see cref="BatchSize"/> per step.</summary>
    public static T Sized<T>(T schedule, int items) where T : StepSchedule
    {
        int steps = schedule.Epochs is { } e ? EpochSteps.Steps(e, items, schedule.BatchSize, 1) : schedule.MaxSteps;
        int warmup = schedule.WarmupRatio is { } r ? EpochSteps.Warmup(r, steps) : schedule.WarmupSteps;
        return (T)(schedule with { MaxSteps = steps, WarmupSteps = warmup, Epochs = null, WarmupRatio = null });
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad schedule field as <c>section.key</c>.</summary>
    protected void ValidateSchedule(string section)
    {
        OptionChecks.Positive(section, MaxSteps, "max_steps"); OptionChecks.Positive(section, BatchSize, "batch_size");
        OptionChecks.Positive(section, LearningRate, "learning_rate"); OptionChecks.NonNegative(section, WarmupSteps, "warmup_steps");
        OptionChecks.NonNegative(section, MaxGradNorm, "max_grad_norm"); OptionChecks.Positive(section, LogEvery, "log_every");
        OptionChecks.NonNegative(section, CheckpointEvery, "checkpoint_every"); OptionChecks.Positive(section, KeepCheckpoints, "keep_checkpoints");
        if (!(MinLrRatio >= 0 && MinLrRatio <= 1)) throw new ArgumentException($"{section}.min_lr_ratio must be in [0, 1], got {MinLrRatio}");
        EpochSteps.Check(section, Epochs, WarmupRatio);
    }
}

/// <summary>
/// Epochs and warm-up ratios as step counts, computed as Hugging Face transformers' Trainer computes them: an epoch is
/// ⌈items / batch⌉ micro-batches, ⌊that / accumulation⌋ optimizer steps (at least 1); the run is ⌈epochs × steps per
/// epoch⌉ steps; warm-up is ⌈ratio × steps⌉.
/// </summary>
public static class EpochSteps
{
    /// <summary>Optimizer steps of <paramref name="epochs"/> passes over <paramref name="items"/> items.</summary>
    public static int Steps(double epochs, int items, int batchSize, int accumulation)
    {
        int batches = (items + batchSize - 1) / batchSize;
        int perEpoch = Math.Max(1, batches / accumulation);
        return Math.Max(1, (int)Math.Ceiling(epochs * perEpoch));
    }

    /// <summary>Warm-up steps for a <paramref name="ratio"/> of <paramref name="steps"/>.</summary>
    public static int Warmup(double ratio, int steps) => (int)Math.Ceiling(ratio * steps);

    internal static void Check(string section, double? epochs, double? warmupRatio)
    {
        if (epochs is { } e) OptionChecks.Positive(section, e, "epochs");
        if (warmupRatio is { } r && !(r >= 0 && r <= 1)) throw new ArgumentException($"{section}.warmup_ratio must be in [0, 1], got {r}");
    }
}

/// <summary>Range checks of recipe options; the message names <c>section.key</c> and the value. Infinite values fail both.</summary>
internal static class OptionChecks
{
    public static void Positive(string section, double v, string key)
    {
        if (!(v > 0) || double.IsInfinity(v)) throw new ArgumentException($"{section}.{key} must be positive, got {v}");
    }

    public static void NonNegative(string section, double v, string key)
    {
        if (!(v >= 0) || double.IsInfinity(v)) throw new ArgumentException($"{section}.{key} must be ≥ 0, got {v}");
    }
}
