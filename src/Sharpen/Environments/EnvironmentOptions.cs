using Sharpen.Tasks;

namespace Sharpen.Environments;

/// <summary>Options every built-in environment takes; each has its own derived record.</summary>
public abstract record EnvironmentOptions
{
    /// <summary>Most assistant turns the game itself allows; after them the episode is done (lost).</summary>
    public abstract int MaxTurns { get; init; }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a value out of range.</summary>
    public virtual void Validate() => ArgumentOutOfRangeException.ThrowIfLessThan(MaxTurns, 1);
}

/// <summary>Options of <see cref="GuessNumberEnvironment"/>. With the defaults binary search always wins (⌈log₂ 101⌉ = 7 guesses).</summary>
public sealed record GuessNumberOptions : EnvironmentOptions
{
    /// <summary>Smallest secret. Default 1.</summary>
    public int Low { get; init; } = 1;
    /// <summary>Largest secret. Default 100.</summary>
    public int High { get; init; } = 100;
    /// <summary>Guesses allowed. Default 7.</summary>
    public override int MaxTurns { get; init; } = 7;
    /// <summary>When true, <c>higher</c> and <c>lower</c> are followed by the interval the secret is still known to lie in
    /// (<c>lower 1-6</c>), so a policy can read the state of the game from the last observation instead of working it out
    /// from every earlier guess. Default false (the bare word).</summary>
    public bool ShowRange { get; init; }
    /// <summary>The environment's invalid-action rule: the reward of a turn whose guess is illegal, i.e. not a whole number
    /// in [Low, High] or one the feedback so far already ruled out (outside the interval still left, a repeat included).
    /// The feedback and the turn count are unchanged; the turn's info says <c>legal: false</c> (as TRL's and verl's
    /// environments report invalid actions, as a reward and an info flag). Default 0: illegal guesses only waste a turn.
    /// A negative value (e.g. −0.5) makes them cost, which gives RL a direct signal against them.</summary>
    public double IllegalReward { get; init; }
    /// <summary>A dense reward for narrowing the search: each guess that the game answers (a win, or <c>higher</c>/<c>lower</c>
    /// before the last turn) earns this × log₂(n / n′), the bits of information it gained, where n is the size of the
    /// interval still left before the guess and n′ after it (1 after a win). An illegal guess leaves the interval as it was
    /// (0 bits); the last turn's wrong guess earns nothing (its feedback can no longer be used). A game's progress rewards
    /// sum to this × log₂(n₀ / n_end): over a whole game they reward ending with a small interval, and a guess splitting
    /// the interval in half gains the most in expectation (the expected reward of a guess is the entropy of the split it
    /// makes). Default 0: only the win (1) and <see cref="IllegalReward"/> are rewarded.</summary>
    public double ProgressReward { get; init; }

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (!double.IsFinite(IllegalReward) || IllegalReward > 0)
            throw new ArgumentOutOfRangeException(nameof(IllegalReward), IllegalReward, "illegal_reward must be a finite number ≤ 0");
        if (!double.IsFinite(ProgressReward) || ProgressReward < 0)
            throw new ArgumentOutOfRangeException(nameof(ProgressReward), ProgressReward, "progress_reward must be a finite number ≥ 0");
        ArgumentOutOfRangeException.ThrowIfNegative(Low);
        ArgumentOutOfRangeException.ThrowIfLessThan(High, Low + 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(High, 1_000_000);
    }
}

/// <summary>Options of <see cref="WordleEnvironment"/>.</summary>
public sealed record WordleOptions : EnvironmentOptions
{
    /// <summary>Guesses allowed. Default 6.</summary>
    public override int MaxTurns { get; init; } = 6;
    /// <summary>The secrets and the allowed guesses: five lowercase ASCII letters each, distinct. Default
    /// <see cref="WordleEnvironment.DefaultWords"/>.</summary>
    public IReadOnlyList<string> Words { get; init; } = WordleEnvironment.DefaultWords;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (Words.Count == 0) throw new ArgumentOutOfRangeException(nameof(Words), "the word list is empty");
        foreach (var w in Words)
            if (w is null || w.Length != 5 || w.Any(c => c is < 'a' or > 'z'))
                throw new ArgumentOutOfRangeException(nameof(Words), $"'{w}' is not five lowercase letters a-z");
        if (Words.Distinct().Count() != Words.Count) throw new ArgumentOutOfRangeException(nameof(Words), "the word list repeats a word");
    }
}

/// <summary>Options of <see cref="TwentyQuestionsEnvironment"/>.</summary>
public sealed record TwentyQuestionsOptions : EnvironmentOptions
{
    /// <summary>Questions allowed (a guess is a question). Default 20.</summary>
    public override int MaxTurns { get; init; } = 20;
}

/// <summary>Options of <see cref="MazeEnvironment"/>.</summary>
public sealed record MazeOptions : EnvironmentOptions
{
    /// <summary>Cells across (2 to 12). Default 4.</summary>
    public int Width { get; init; } = 4;
    /// <summary>Cells down (2 to 12). Default 4.</summary>
    public int Height { get; init; } = 4;
    /// <summary>Moves allowed. Default 40.</summary>
    public override int MaxTurns { get; init; } = 40;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(Width, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Width, 12);
        ArgumentOutOfRangeException.ThrowIfLessThan(Height, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Height, 12);
    }
}

/// <summary>Options of <see cref="CountdownToolEnvironment"/>.</summary>
public sealed record CountdownToolOptions : EnvironmentOptions
{
    /// <summary>The problems' options (numbers, targets). Default <see cref="CountdownOptions"/>' defaults.</summary>
    public CountdownOptions Task { get; init; } = new();
    /// <summary>Turns allowed (tool calls and the answer). Default 6.</summary>
    public override int MaxTurns { get; init; } = 6;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        Task.Validate();
    }
}

/// <summary>Options of <see cref="SelfCorrectionEnvironment"/>.</summary>
public sealed record SelfCorrectionOptions : EnvironmentOptions
{
    /// <summary>The verifiable task by registry name (<see cref="TaskRegistry"/>). Default <c>countdown</c>.</summary>
    public string Task { get; init; } = "countdown";
    /// <summary>The task's options, or null for its defaults.</summary>
    public TaskOptions? TaskOptions { get; init; }
    /// <summary>What the environment says after the first attempt. Default SCoRe's "check your answer and revise".</summary>
    public string Instruction { get; init; } = "check your answer and revise";
    /// <summary>Always 2: the first attempt and the revision.</summary>
    public override int MaxTurns { get; init; } = 2;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (MaxTurns != 2) throw new ArgumentOutOfRangeException(nameof(MaxTurns), "self-correction has exactly two attempts");
        ArgumentException.ThrowIfNullOrWhiteSpace(Task);
        ArgumentException.ThrowIfNullOrWhiteSpace(Instruction);
    }
}
