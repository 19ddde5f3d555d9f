namespace Sharpen.Tasks;

/// <summary>
/// Text classification whose labels are words (PPO for NLU, #64 in the papers list: the label is generated as text and the
/// reward is its agreement with the true label). A text is <see cref="SentimentOptions.Words"/> words drawn from a small
/// lexicon of positive, negative and neutral words, with an odd number (1, 3, …, <see cref="SentimentOptions.MaxPolarWords"/>)
/// of polar ones; its label is <c>good</c> when the positive words outnumber the negative ones, else <c>bad</c>. The prompt is
/// <c>"review: w1 w2 … wn. label:"</c>, the answer the label word. The verifier reads the completion's first word.
/// </summary>
public sealed class SentimentTask : SeededTask<SentimentOptions>
{
    const ulong Salt = 0x5E47_0064;

    /// <summary>Words that count as positive.</summary>
    public static IReadOnlyList<string> Positive { get; } = ["fun", "nice", "warm", "kind", "sweet", "bright"];
    /// <summary>Words that count as negative.</summary>
    public static IReadOnlyList<string> Negative { get; } = ["dull", "cold", "sad", "rude", "sour", "dark"];
    /// <summary>Words without polarity.</summary>
    public static IReadOnlyList<string> Neutral { get; } = ["the", "film", "room", "food", "staff", "plot", "was", "and"];

    /// <summary>A task with <paramref name="options"/> (default: 6 words, up to 3 polar).</summary>
    public SentimentTask(SentimentOptions? options = null) : base(options, Salt) { }

    /// <inheritdoc />
    public override string Name => "sentiment";

    /// <inheritdoc />
    public override string Alphabet => " .:abcdefghijklmnopqrstuvwxyz";

    /// <inheritdoc />
    protected override Problem GenerateOne(SeededRandom rng)
    {
        int polar = 2 * rng.Next(0, (Options.MaxPolarWords - 1) / 2) + 1;            // 1, 3, …: an odd count, no tie
        int pos = 0;
        var words = new List<string>();
        for (int k = 0; k < polar; k++)
        {
            bool positive = rng.Next(0, 1) == 1;
            pos += positive ? 1 : 0;
            words.Add(positive ? Positive[rng.Next(0, Positive.Count - 1)] : Negative[rng.Next(0, Negative.Count - 1)]);
        }
        while (words.Count < Options.Words) words.Insert(rng.Next(0, words.Count), Neutral[rng.Next(0, Neutral.Count - 1)]);
        return Create(words, pos * 2 > polar ? "good" : "bad");
    }

    /// <summary>The problem of a text and its label.</summary>
    public static Problem Create(IReadOnlyList<string> words, string label)
    {
        var text = string.Join(' ', words);
        return new Problem($"sentiment:{text}", $"review: {text}. label:", label, new Dictionary<string, string> { ["text"] = text });
    }

    /// <summary>The label counted from the lexicon (the ground truth of generated problems): good, bad, or null on a tie.</summary>
    public static string? Label(string text)
    {
        var words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int score = words.Count(Positive.Contains) - words.Count(Negative.Contains);
        return score > 0 ? "good" : score < 0 ? "bad" : null;
    }

    /// <inheritdoc />
    public override string Solve(Problem problem) => " " + problem.Answer;

    /// <inheritdoc />
    public override string? ExtractFinalAnswer(string completion)
    {
        var first = completion.Split([' ', '\n', '.'], StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
        return first;
    }

    /// <inheritdoc />
    public override Verdict Verify(Problem problem, string completion)
    {
        if (completion is null) return new Verdict(0, false, VerdictReasons.NoAnswer, 0, null);
        if (completion.Length > Options.MaxCompletionLength) return new Verdict(0, false, VerdictReasons.TooLong, 0, null);
        var answer = ExtractFinalAnswer(completion);
        if (answer is null) return new Verdict(0, false, VerdictReasons.NoAnswer, 0, null);
        bool isLabel = answer is "good" or "bad";
        if (answer == problem.Answer) return new Verdict(1, true, VerdictReasons.Correct, Options.FormatReward, answer);
        return new Verdict(isLabel ? Options.FormatReward : 0, false, isLabel ? VerdictReasons.WrongValue : VerdictReasons.Unparsable, isLabel ? Options.FormatReward : 0, answer);
    }
}
