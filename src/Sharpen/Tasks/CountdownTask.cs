using System.Globalization;

namespace Sharpen.Tasks;

/// <summary>
/// Countdown: reach a target with + - * / and parentheses, using each given number at most once
/// (or exactly once with <see cref="CountdownOptions.UseAllNumbers"/>).
/// <code>
/// prompt:     3 5 7 -> 22:
/// completion:  5*3=15, 15+7=22. answer: 5*3+7
/// </code>
/// The prompt is the numbers separated by single spaces, <c> -> </c>, the target and <c>:</c>. The
/// completion starts with a space, lists the steps of a shortest solution (larger operand first,
/// every intermediate value a non-negative integer) separated by <c>, </c>, ends them with <c>.</c>, and closes with
/// <c> answer: </c> and the whole expression with the fewest parentheses.
/// The verifier reads only the text after the last <c>answer:</c> up to the end of that line (the
/// steps are not checked), then in order: syntax, the numbers used, evaluation, the value.
/// </summary>
public sealed class CountdownTask : SeededTask<CountdownOptions>
{
    const ulong Salt = 0xC0DE_0001;
    const int MaxAttempts = 10_000;

    /// <summary>The characters of every Countdown prompt and solution.</summary>
    public const string Characters = " ()*+,-./0123456789:=>aenrsw";

    /// <summary>Creates the task; throws <see cref="ArgumentOutOfRangeException"/> for invalid options.</summary>
    public CountdownTask(CountdownOptions? options = null) : base(options, Salt) { }

    /// <inheritdoc />
    public override string Name => "countdown";

    /// <inheritdoc />
    public override string Alphabet => Characters;

    /// <summary>Makes a problem from given numbers and target, with a reference answer; throws
    /// <see cref="ArgumentException"/> when it has no solution under the options' rules.</summary>
    public Problem Create(IReadOnlyList<int> numbers, int target)
    {
        var longs = numbers.Select(n => (long)n).ToArray();
        var solution = ExpressionSearch.Find(longs, Rational.Of(target), Options.UseAllNumbers, wholeSteps: true)
                       ?? throw new ArgumentException($"no solution for {string.Join(' ', numbers)} -> {target}");
        var shown = string.Join(' ', numbers.Select(n => n.ToString(CultureInfo.InvariantCulture)));
        var key = string.Join(',', numbers.Order().Select(n => n.ToString(CultureInfo.InvariantCulture)));
        var t = target.ToString(CultureInfo.InvariantCulture);
        return new Problem($"countdown:{key}->{t}", $"{shown} -> {t}:", solution.Expression,
            new Dictionary<string, string> { ["numbers"] = shown, ["target"] = t });
    }

    /// <inheritdoc />
    protected override Problem GenerateOne(SeededRandom rng)
    {
        // Build a random expression over a subset of the numbers, keeping every intermediate a
        // non-negative integer; its value becomes the target, so every problem is solvable.
        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            var n = rng.Next(Options.MinNumbers, Options.MaxNumbers);
            var numbers = new int[n];
            for (var i = 0; i < n; i++) numbers[i] = rng.Next(1, Options.MaxNumber);
            var used = Options.UseAllNumbers ? n : rng.Next(2, n);
            var pool = numbers.Take(used).Select(v => (long)v).ToList();
            while (pool.Count > 1)
            {
                var i = rng.Next(0, pool.Count - 1);
                var a = pool[i];
                pool.RemoveAt(i);
                var j = rng.Next(0, pool.Count - 1);
                var b = pool[j];
                pool.RemoveAt(j);
                if (a < b) (a, b) = (b, a);
                var choices = new List<long> { a + b };
                if (a > b) choices.Add(a - b);
                if (a * b <= Options.MaxTarget * 10L) choices.Add(a * b);
                if (b > 1 && a % b == 0) choices.Add(a / b);
                pool.Add(choices[rng.Next(0, choices.Count - 1)]);
            }
            var target = pool[0];
            if (target < 1 || target > Options.MaxTarget || numbers.Contains((int)target)) continue;
            return Create(numbers, (int)target);
        }
        throw new InvalidOperationException("could not generate a Countdown problem with these options; raise MaxTarget or MaxNumber");
    }

    /// <inheritdoc />
    public override string Solve(Problem problem)
    {
        var (numbers, target) = Read(problem);
        var solution = ExpressionSearch.Find(numbers, Rational.Of(target), Options.UseAllNumbers, wholeSteps: true)
                       ?? throw new ArgumentException($"problem {problem.Id} has no solution", nameof(problem));
        return Format(solution);
    }

    /// <summary>The completion text of a solution: <c> step, step. answer: expression</c>.</summary>
    internal static string Format(ExpressionSearch.Solution solution) =>
        solution.Steps.Count == 0
            ? " answer: " + solution.Expression
            : " " + string.Join(", ", solution.Steps) + ". answer: " + solution.Expression;

    /// <inheritdoc />
    public override Verdict Verify(Problem problem, string completion)
    {
        var (numbers, target) = Read(problem);
        return VerifyExpression(completion, numbers, Rational.Of(target), Options.UseAllNumbers,
            Options.IntegerDivisionOnly, Options);
    }

    /// <summary>Shared by Countdown and Game24: checks the expression on the answer line.</summary>
    internal static Verdict VerifyExpression(string? completion, IReadOnlyList<long> numbers, Rational target,
                                             bool useAll, bool integerDivisionOnly, TaskOptions options)
    {
        if (completion is null) return Fail(VerdictReasons.NoAnswer, null, false, options);
        if (completion.Length > options.MaxCompletionLength) return Fail(VerdictReasons.TooLong, null, false, options);
        var line = AnswerText.FinalLine(completion);
        if (line is null) return Fail(VerdictReasons.NoAnswer, null, false, options);
        var parsed = ArithmeticExpression.Parse(line, integerDivisionOnly);
        if (parsed.Error is not null) return Fail(parsed.Error, line, false, options);

        var left = new Dictionary<long, int>();
        foreach (var n in numbers) left[n] = left.GetValueOrDefault(n) + 1;
        foreach (var literal in parsed.Literals)
        {
            if (!left.TryGetValue(literal, out var remaining)) return Fail(VerdictReasons.UnknownNumber, line, true, options);
            if (remaining == 0) return Fail(VerdictReasons.ReusedNumber, line, true, options);
            left[literal] = remaining - 1;
        }
        if (useAll && left.Values.Any(c => c > 0)) return Fail(VerdictReasons.UnusedNumber, line, true, options);
        if (parsed.EvaluationError is not null) return Fail(parsed.EvaluationError, line, true, options);
        if (parsed.Value != target) return Fail(VerdictReasons.WrongValue, line, true, options);
        return new Verdict(1 + options.FormatReward, true, VerdictReasons.Correct, options.FormatReward, line);
    }

    static Verdict Fail(string reason, string? extracted, bool formatOk, TaskOptions options)
    {
        var format = formatOk ? options.FormatReward : 0;
        return new Verdict(format, false, reason, format, extracted);
    }

    /// <inheritdoc />
    /// <remarks>The expression on the answer line with spaces and tabs removed.</remarks>
    public override string? ExtractFinalAnswer(string completion) => ExpressionAnswer(completion, Options);

    internal static string? ExpressionAnswer(string? completion, TaskOptions options)
    {
        if (completion is null || completion.Length > options.MaxCompletionLength) return null;
        var line = AnswerText.FinalLine(completion);
        return line?.Replace(" ", "").Replace("\t", "");
    }

    /// <summary>The given numbers and target from a problem's fields; throws on a malformed problem.</summary>
    internal static (long[] Numbers, long Target) Read(Problem problem)
    {
        if (!problem.Fields.TryGetValue("numbers", out var ns) || !problem.Fields.TryGetValue("target", out var t))
            throw new ArgumentException($"problem {problem.Id} lacks the fields 'numbers' and 'target'", nameof(problem));
        try
        {
            var numbers = ns.Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(s => long.Parse(s, NumberStyles.None, CultureInfo.InvariantCulture)).ToArray();
            return (numbers, long.Parse(t, NumberStyles.None, CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new ArgumentException($"problem {problem.Id} has malformed 'numbers' or 'target' fields", nameof(problem), e);
        }
    }
}
