using System.Globalization;
using Sharpen.Data;
using Sharpen.Tasks;

namespace Sharpen.Environments;

/// <summary>
/// Guess the number (LMRL-Gym's "guess my city" in miniature): a secret integer in [Low, High] drawn from the seed; the
/// policy answers with a number and hears <c>higher</c>, <c>lower</c> or <c>correct</c>. Optimal play is binary search,
/// which always wins within ⌈log₂(High − Low + 2)⌉ guesses.
/// <code>
/// guess 1-100        (first observation)
/// 50  → lower        37 → correct (reward 1, done)
/// abc → invalid      (a turn spent; anything but a whole number in range)
/// </code>
/// With <see cref="GuessNumberOptions.ShowRange"/> the feedback also states the interval the secret is still known to lie
/// in (every <c>higher</c>/<c>lower</c> so far applied): <c>50 → lower 1-49</c>, <c>20 → higher 21-49</c>.
/// Reward 1 for the winning guess, 0 otherwise (plus <see cref="GuessNumberOptions.ProgressReward"/>'s bits of information
/// and <see cref="GuessNumberOptions.IllegalReward"/> when set); after <see cref="EnvironmentOptions.MaxTurns"/> wrong guesses the
/// episode is done with <c>lost</c>. Info: <c>outcome</c> (<c>playing</c>, <c>won</c>, <c>lost</c>), <c>valid</c>.
/// </summary>
public sealed class GuessNumberEnvironment : TextEnvironment
{
    const ulong Salt = 0x6E55_0001;
    int _secret, _lo, _hi;

    /// <summary>A game with <paramref name="options"/> (default 1–100, 7 guesses).</summary>
    public GuessNumberEnvironment(GuessNumberOptions? options = null)
    {
        Options = options ?? new GuessNumberOptions();
        Options.Validate();
    }

    /// <summary>The options.</summary>
    public GuessNumberOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "guess-number";

    /// <inheritdoc />
    public override string Alphabet { get; } = AlphabetOf("0123456789-", "guess higher lower correct invalid lost");

    /// <summary>The current secret (for tests and transcripts).</summary>
    public int Secret => _secret;

    /// <inheritdoc />
    protected override IReadOnlyList<ChatMessage> OnReset(int seed)
    {
        _secret = SeededRandom.ForProblem(seed, 0, Salt).Next(Options.Low, Options.High);   // both inclusive
        (_lo, _hi) = (Options.Low, Options.High);
        return User($"guess {Options.Low.ToString(CultureInfo.InvariantCulture)}-{Options.High.ToString(CultureInfo.InvariantCulture)}");
    }

    /// <inheritdoc />
    protected override EnvironmentStep OnStep(string action)
    {
        bool last = Turns >= Options.MaxTurns;
        var text = action.Trim();
        bool valid = text.Length is > 0 and <= 9 && text.All(char.IsAsciiDigit)
                     && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var guess)
                     && guess >= Options.Low && guess <= Options.High;
        double illegal = Options.IllegalReward;
        if (!valid)
            return last ? Answer("lost", illegal, true, ("outcome", "lost"), ("valid", "false"), ("legal", "false"))
                        : Answer("invalid", illegal, false, ("outcome", "playing"), ("valid", "false"), ("legal", "false"));
        int g = int.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture);
        int before = _hi - _lo + 1;
        if (g == _secret) return Answer("correct", 1 + Progress(before, 1), true, ("outcome", "won"), ("valid", "true"), ("legal", "true"));
        // Legal: inside the interval the feedback so far leaves (the secret always is, so a win is always legal).
        bool legal = g >= _lo && g <= _hi;
        double reward = legal ? 0 : illegal;
        var legalText = legal ? "true" : "false";
        if (last) return Answer("lost", reward, true, ("outcome", "lost"), ("valid", "true"), ("legal", legalText));
        if (_secret > g) _lo = Math.Max(_lo, g + 1);
        else _hi = Math.Min(_hi, g - 1);
        reward += Progress(before, _hi - _lo + 1);
        var word = _secret > g ? "higher" : "lower";
        if (Options.ShowRange) word += $" {_lo.ToString(CultureInfo.InvariantCulture)}-{_hi.ToString(CultureInfo.InvariantCulture)}";
        return Answer(word, reward, false, ("outcome", "playing"), ("valid", "true"), ("legal", legalText));
    }

    /// <summary><see cref="GuessNumberOptions.ProgressReward"/> × log₂(before / after): the bits a guess gained.</summary>
    double Progress(int before, int after) => Options.ProgressReward == 0 ? 0 : Options.ProgressReward * Math.Log2((double)before / after);
}
