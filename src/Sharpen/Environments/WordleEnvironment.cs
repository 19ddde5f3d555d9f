using Sharpen.Data;
using Sharpen.Tasks;

namespace Sharpen.Environments;

/// <summary>
/// Wordle over a small word list: a secret five-letter word drawn from the seed; each guess (a word of the list) is
/// answered with five marks, one per letter: <c>g</c> right letter in the right place, <c>y</c> in the word elsewhere,
/// <c>.</c> not in the word (or no more copies of it: letters are matched greens first, then left to right, each
/// secret letter used once, as in the original game).
/// <code>
/// wordle             (first observation)
/// crane → ..y.g      apple → correct (reward 1, done)
/// xyz   → invalid    (a turn spent; anything but a word of the list)
/// </code>
/// Reward 1 for finding the word, 0 otherwise; after <see cref="EnvironmentOptions.MaxTurns"/> guesses the episode is
/// done with <c>lost</c>. Info: <c>outcome</c>, <c>valid</c>.
/// </summary>
public sealed class WordleEnvironment : TextEnvironment
{
    const ulong Salt = 0x3011_0001;

    /// <summary>The default list: 40 common English words.</summary>
    public static IReadOnlyList<string> DefaultWords { get; } =
    [
        "about", "apple", "bread", "chair", "crane", "drink", "eagle", "flame", "grape", "green",
        "heart", "house", "input", "jolly", "knife", "lemon", "light", "mango", "night", "ocean",
        "other", "piano", "plant", "queen", "river", "smile", "sound", "stone", "sugar", "table",
        "their", "there", "tiger", "vivid", "water", "which", "world", "xenon", "young", "zebra",
    ];

    readonly HashSet<string> _words;
    string _secret = "";

    /// <summary>A game with <paramref name="options"/>.</summary>
    public WordleEnvironment(WordleOptions? options = null)
    {
        Options = options ?? new WordleOptions();
        Options.Validate();
        _words = [.. Options.Words];
        Alphabet = AlphabetOf("abcdefghijklmnopqrstuvwxyz", "gy.", "wordle correct invalid lost");
    }

    /// <summary>The options.</summary>
    public WordleOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "wordle";

    /// <inheritdoc />
    public override string Alphabet { get; }

    /// <summary>The current secret.</summary>
    public string Secret => _secret;

    /// <inheritdoc />
    protected override IReadOnlyList<ChatMessage> OnReset(int seed)
    {
        _secret = Options.Words[SeededRandom.ForProblem(seed, 0, Salt).Next(0, Options.Words.Count - 1)];
        return User("wordle");
    }

    /// <inheritdoc />
    protected override EnvironmentStep OnStep(string action)
    {
        bool last = Turns >= Options.MaxTurns;
        var guess = action.Trim().ToLowerInvariant();
        if (!_words.Contains(guess))
            return last ? Answer("lost", 0, true, ("outcome", "lost"), ("valid", "false")) : Answer("invalid", 0, false, ("outcome", "playing"), ("valid", "false"));
        if (guess == _secret) return Answer("correct", 1, true, ("outcome", "won"), ("valid", "true"));
        if (last) return Answer("lost", 0, true, ("outcome", "lost"), ("valid", "true"));
        return Answer(Marks(_secret, guess), 0, false, ("outcome", "playing"), ("valid", "true"));
    }

    /// <summary>The marks of <paramref name="guess"/> against <paramref name="secret"/> (both five letters).</summary>
    public static string Marks(string secret, string guess)
    {
        var marks = new char[5];
        var left = new Dictionary<char, int>();
        for (int i = 0; i < 5; i++)
        {
            if (guess[i] == secret[i]) marks[i] = 'g';
            else { marks[i] = '.'; left[secret[i]] = left.GetValueOrDefault(secret[i]) + 1; }
        }
        for (int i = 0; i < 5; i++)
        {
            if (marks[i] == 'g') continue;
            if (left.GetValueOrDefault(guess[i]) > 0) { marks[i] = 'y'; left[guess[i]]--; }
        }
        return new string(marks);
    }
}
