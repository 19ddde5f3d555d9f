namespace Sharpen.Training.Sft;

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
    /// <summary>Passes over the training examples instead of <see cref="MaxSteps"/> (fractional allowed; TRL's <c>num_train_epochs</c>);
    /// see <see cref="EpochSteps"/>. Null = use MaxSteps.</summary>
    public double? Epochs { get; init; }
    /// <summary>Warm-up as a fraction of the steps instead of <see cref="WarmupSteps"/> (TRL's <c>warmup_ratio</c>). Null = use WarmupSteps.</summary>
    public double? WarmupRatio { get; init; }

    /// <summary>These options with <see cref="Epochs"/> and <see cref="WarmupRatio"/> turned into <see cref="MaxSteps"/> and
    /// <see cref="WarmupSteps"/> for <paramref name="examples"/> training examples (<see cref="BatchSize"/> × <see cref="GradientAccumulation"/> per step).</summary>
    public SftOptions Sized(int examples)
    {
        int steps = Epochs is { } e ? EpochSteps.Steps(e, examples, BatchSize, GradientAccumulation) : MaxSteps;
        int warmup = WarmupRatio is { } r ? EpochSteps.Warmup(r, steps) : WarmupSteps;
        return this with { MaxSteps = steps, WarmupSteps = warmup, Epochs = null, WarmupRatio = null };
    }
    /// <summary>
    /// TRL's <c>assistant_only_loss</c>, for conversational (<c>messages</c>) rows: true = the loss covers every assistant
    /// turn (each one's text and end-of-turn marker, as the chat template renders it) and nothing else; false = the whole
    /// conversation (TRL's default); null = Sharpen's default, the last assistant turn only. True with a <c>{"text"}</c>
    /// row is an error (it has no turns); a prompt/completion row trains its completion either way.
    /// </summary>
    public bool? AssistantOnlyLoss { get; init; }
    /// <summary>TRL's <c>completion_only_loss</c>: null or true = prompt/completion rows train the completion only; false =
    /// the prompt too (and a <c>messages</c> row its whole text unless <see cref="AssistantOnlyLoss"/> is set).
    /// <c>{"text"}</c> rows always train the whole text.</summary>
    public bool? CompletionOnlyLoss { get; init; }
    /// <summary>C-RLFT: the row field that names an example's class (data source), e.g. <c>"source": "gpt4"</c>.</summary>
    public string ClassField { get; init; } = "source";
    /// <summary>
    /// C-RLFT (OpenChat): the loss weight of each class, e.g. <c>{gpt4: 1.0, gpt35: 0.1}</c> (OpenChat weights expert data 1
    /// and sub-optimal data 0.1). Empty or absent = plain SFT. The class with the largest weight is the expert class.
    /// </summary>
    public Dictionary<string, double>? ClassWeights { get; init; }
    /// <summary>C-RLFT: the condition prefix of each class, prepended verbatim to the prompt (include your own separator); every weighted class needs one.</summary>
    public Dictionary<string, string>? ClassPrefixes { get; init; }

    /// <summary>Whether C-RLFT is on (<see cref="ClassWeights"/> is non-empty).</summary>
    public bool ConditionsOnClass() => ClassWeights is { Count: > 0 };

    /// <summary>The expert class: the one with the largest weight (ties: the first in ordinal order); generation conditions on its prefix.</summary>
    public string ExpertClass() => ClassWeights!.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).First().Key;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field (recipe key in snake_case).</summary>
    public SftOptions Validate()
    {
        static void Positive(double v, string key) => OptionChecks.Positive("sft", v, key);
        static void NonNegative(double v, string key) => OptionChecks.NonNegative("sft", v, key);
        Positive(MaxSteps, "max_steps"); Positive(BatchSize, "batch_size"); Positive(GradientAccumulation, "gradient_accumulation");
        Positive(LearningRate, "learning_rate"); NonNegative(WarmupSteps, "warmup_steps"); NonNegative(WeightDecay, "weight_decay");
        NonNegative(MaxGradNorm, "max_grad_norm"); Positive(MaxSequenceLength, "max_sequence_length"); Positive(LogEvery, "log_every");
        NonNegative(EvalEvery, "eval_every"); NonNegative(EvalExamples, "eval_examples"); NonNegative(EvalProblems, "eval_problems");
        Positive(EvalMaxNewTokens, "eval_max_new_tokens"); NonNegative(CheckpointEvery, "checkpoint_every"); Positive(KeepCheckpoints, "keep_checkpoints");
        if (MinLrRatio < 0 || MinLrRatio > 1) throw new ArgumentException($"sft.min_lr_ratio must be in [0, 1], got {MinLrRatio}");
        if (Beta1 is < 0 or >= 1 || Beta2 is < 0 or >= 1) throw new ArgumentException("sft.beta1 and sft.beta2 must be in [0, 1)");
        EpochSteps.Check("sft", Epochs, WarmupRatio);
        if (ConditionsOnClass())
        {
            if (string.IsNullOrWhiteSpace(ClassField)) throw new ArgumentException("sft.class_field must name a row field");
            foreach (var (c, w) in ClassWeights!)
            {
                if (!(w >= 0) || double.IsInfinity(w)) throw new ArgumentException($"sft.class_weights.{c} must be a finite number ≥ 0, got {w}");
                if (ClassPrefixes is null || !ClassPrefixes.ContainsKey(c))
                    throw new ArgumentException($"sft.class_prefixes has no prefix for class '{c}' (every class in sft.class_weights needs one)");
            }
            if (ClassPrefixes!.Keys.FirstOrDefault(c => !ClassWeights!.ContainsKey(c)) is { } extra)
                throw new ArgumentException($"sft.class_prefixes names class '{extra}', which has no weight in sft.class_weights");
            if (ClassPrefixes.Values.Distinct().Count() != ClassPrefixes.Count) throw new ArgumentException("sft.class_prefixes must differ between classes (the prefix is the condition)");
            if (!(ClassWeights!.Values.Max() > 0)) throw new ArgumentException("sft.class_weights needs at least one class with weight > 0");
        }
        else if (ClassPrefixes is { Count: > 0 }) throw new ArgumentException("sft.class_prefixes needs sft.class_weights (C-RLFT)");
        return this;
    }
}
