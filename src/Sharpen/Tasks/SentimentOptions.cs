namespace Sharpen.Tasks;

/// <summary>Options for <see cref="SentimentTask"/>: how many words a text has and how many of them carry a polarity.</summary>
public sealed record SentimentOptions : TaskOptions
{
    /// <summary>Words per text. Default 6.</summary>
    public int Words { get; init; } = 6;

    /// <summary>Most polar (positive or negative) words per text; always odd counts are drawn, so there is no tie. Default 3.</summary>
    public int MaxPolarWords { get; init; } = 3;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(Words, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxPolarWords, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxPolarWords, Words);
    }
}
