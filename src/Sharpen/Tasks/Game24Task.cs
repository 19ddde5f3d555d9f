using System.Globalization;

namespace Sharpen.Tasks;

/// <summary>
/// Game of 24: use each of four numbers exactly once with + - * / and parentheses to make 24.
/// Values are exact fractions, so <c>8/(3-8/3)</c> is 24. Same text format as Countdown:
/// <code>
/// prompt:     4 7 8 8 -> 24:
/// completion:  7+4=11, 11-8=3, 8*3=24. answer: 8*(7+4-8)
/// </code>
/// Worked solutions prefer whole-number steps; when none exists, fraction values are written as
/// <c>a/b</c> and in parentheses when they are operands, e.g.
/// <c> 8/3=8/3, 3-(8/3)=1/3, 8/(1/3)=24. answer: 8/(3-8/3)</c>.
/// </summary>
public sealed class Game24Task : SeededTask<Game24Options>
{
    const ulong Salt = 0x24_0002;
    const int MaxAttempts = 10_000;

    /// <summary>Creates the task; throws <see cref="ArgumentOutOfRangeException"/> for invalid options.</summary>
    public Game24Task(Game24Options? options = null) : base(options, Salt) { }

    /// <inheritdoc />
    public override string Name => "game24";

    /// <inheritdoc />
    public override string Alphabet => CountdownTask.Characters;

    /// <summary>Makes a problem from four numbers; throws <see cref="ArgumentException"/> when there is no solution.</summary>
    public Problem Create(IReadOnlyList<int> numbers)
    {
        var solution = Find(numbers.Select(n => (long)n).ToArray())
                       ?? throw new ArgumentException($"no solution for {string.Join(' ', numbers)} -> {Options.Target}");
        var shown = string.Join(' ', numbers.Select(n => n.ToString(CultureInfo.InvariantCulture)));
        var key = string.Join(',', numbers.Order().Select(n => n.ToString(CultureInfo.InvariantCulture)));
        var t = Options.Target.ToString(CultureInfo.InvariantCulture);
        return new Problem($"game24:{key}->{t}", $"{shown} -> {t}:", solution.Expression,
            new Dictionary<string, string> { ["numbers"] = shown, ["target"] = t });
    }

    /// <inheritdoc />
    protected override Problem GenerateOne(SeededRandom rng)
    {
        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            var numbers = new int[4];
            for (var i = 0; i < 4; i++) numbers[i] = rng.Next(1, Options.MaxNumber);
            var longs = numbers.Select(n => (long)n).ToArray();
            var target = Rational.Of(Options.Target);
            if (Options.HardOnly)
            {
                if (ExpressionSearch.Find(longs, target, useAll: true, wholeSteps: true) is not null) continue;
                if (ExpressionSearch.Find(longs, target, useAll: true, wholeSteps: false) is null) continue;
            }
            else if (Find(longs) is null) continue;
            return Create(numbers);
        }
        throw new InvalidOperationException("could not generate a solvable Game24 problem with these options");
    }

    ExpressionSearch.Solution? Find(long[] numbers)
    {
        var target = Rational.Of(Options.Target);
        return ExpressionSearch.Find(numbers, target, useAll: true, wholeSteps: true)
               ?? ExpressionSearch.Find(numbers, target, useAll: true, wholeSteps: false);
    }

    /// <inheritdoc />
    public override string Solve(Problem problem)
    {
        var (numbers, _) = CountdownTask.Read(problem);
        var solution = Find(numbers) ?? throw new ArgumentException($"problem {problem.Id} has no solution", nameof(problem));
        return CountdownTask.Format(solution);
    }

    /// <inheritdoc />
    public override Verdict Verify(Problem problem, string completion)
    {
        var (numbers, target) = CountdownTask.Read(problem);
        return CountdownTask.VerifyExpression(completion, numbers, Rational.Of(target), useAll: true,
            integerDivisionOnly: false, Options);
    }

    /// <inheritdoc />
    /// <remarks>The expression on the answer line with spaces and tabs removed.</remarks>
    public override string? ExtractFinalAnswer(string completion) => CountdownTask.ExpressionAnswer(completion, Options);
}
