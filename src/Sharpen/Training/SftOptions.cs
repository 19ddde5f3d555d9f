namespace Sharpen.Training;

/// <summary>
/// Supervised fine-tuning settings (the <c>sft</c> section of a recipe). Loss is the mean
/// negative log-likelihood of completion tokens (prompt tokens are not trained on).
/// </summary>
public sealed record SftOptions
{
    /// <summary>Optimizer steps to run.</summary>
    public int MaxSteps { get; init; } = 1000;
    /// <summary>Examples per micro-batch.</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>Micro-batches per optimizer step; the update equals that of one batch of BatchSize × GradientAccumulation.</summary>
    public int GradientAccumulation { get; init; } = 1;
    /// <summary>Peak learning rate of AdamW.</summary>
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>Linear warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 50;
    /// <summary>Final learning rate as a fraction of the peak (cosine decay).</summary>
    public double MinLrRatio { get; init; } = 0.1;
    /// <summary>AdamW decoupled weight decay.</summary>
    public double WeightDecay { get; init; } = 0.01;
    /// <summary>AdamW β1.</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>AdamW β2.</summary>
    public double Beta2 { get; init; } = 0.95;
    /// <summary>Clip the global gradient norm to this (0 = off).</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Longest prompt + completion in tokens; longer completions are cut (and counted).</summary>
    public int MaxSequenceLength { get; init; } = 256;
    /// <summary>Write a metrics row every N steps.</summary>
    public int LogEvery { get; init; } = 10;
    /// <summary>Evaluate on the held-out split every N steps (0 = only at the end).</summary>
    public int EvalEvery { get; init; } = 200;
    /// <summary>Held-out examples used for the evaluation loss.</summary>
    public int EvalExamples { get; init; } = 256;
    /// <summary>Held-out problems generated greedily to measure task accuracy (needs a task).</summary>
    public int EvalProblems { get; init; } = 200;
    /// <summary>Most new tokens when generating for evaluation.</summary>
    public int EvalMaxNewTokens { get; init; } = 64;
    /// <summary>Save a checkpoint every N steps (0 = only the final model).</summary>
    public int CheckpointEvery { get; init; } = 200;
    /// <summary>Checkpoints kept; older ones are deleted.</summary>
    public int KeepCheckpoints { get; init; } = 2;
    /// <summary>Seed of the data order.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field (recipe key in snake_case).</summary>
    public SftOptions Validate()
    {
        void Positive(double v, string key) { if (!(v > 0)) throw new ArgumentException($"sft.{key} must be positive, got {v}"); }
        void NonNegative(double v, string key) { if (!(v >= 0)) throw new ArgumentException($"sft.{key} must be ≥ 0, got {v}"); }
        Positive(MaxSteps, "max_steps"); Positive(BatchSize, "batch_size"); Positive(GradientAccumulation, "gradient_accumulation");
        Positive(LearningRate, "learning_rate"); NonNegative(WarmupSteps, "warmup_steps"); NonNegative(WeightDecay, "weight_decay");
        NonNegative(MaxGradNorm, "max_grad_norm"); Positive(MaxSequenceLength, "max_sequence_length"); Positive(LogEvery, "log_every");
        NonNegative(EvalEvery, "eval_every"); NonNegative(EvalExamples, "eval_examples"); NonNegative(EvalProblems, "eval_problems");
        Positive(EvalMaxNewTokens, "eval_max_new_tokens"); NonNegative(CheckpointEvery, "checkpoint_every"); Positive(KeepCheckpoints, "keep_checkpoints");
        if (MinLrRatio < 0 || MinLrRatio > 1) throw new ArgumentException($"sft.min_lr_ratio must be in [0, 1], got {MinLrRatio}");
        if (Beta1 is < 0 or >= 1 || Beta2 is < 0 or >= 1) throw new ArgumentException("sft.beta1 and sft.beta2 must be in [0, 1)");
        return this;
    }
}
