namespace Sharpen.Tasks;

/// <summary>Options for <see cref="Gsm8kTask"/>.</summary>
public sealed record Gsm8kOptions : TaskOptions
{
    /// <summary>The GSM8K-format JSONL file to read when the task is made through <see cref="TaskRegistry"/>.</summary>
    public string? Path { get; init; }

    /// <summary>How the prompt is made from the question; <c>{question}</c> is replaced by it. Default
    /// <c>"{question}"</c> (the question alone).</summary>
    public string PromptTemplate { get; init; } = "{question}";

    /// <summary>Skip malformed lines of the file (counted in <see cref="Gsm8kTask.SkippedLines"/>) instead of failing. Default false.</summary>
    public bool SkipBadLines { get; init; }

    /// <summary>Completions longer than this many characters get <c>too_long</c>. Default 16384 (GSM8K reasoning is long).</summary>
    public Gsm8kOptions() => MaxCompletionLength = 16_384;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (!PromptTemplate.Contains("{question}", StringComparison.Ordinal))
            throw new ArgumentException("PromptTemplate must contain {question}", nameof(PromptTemplate));
    }
}
