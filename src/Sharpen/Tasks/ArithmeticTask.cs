using System.Globalization;
using System.Numerics;
using System.Text;

namespace Sharpen.Tasks;

/// <summary>
/// Multi-digit addition and multiplication with the work written out.
/// <code>
/// prompt:     457+68:
/// completion:  7+8=15, 5+6+1=12, 4+0+1=5. answer: 525
/// prompt:     457*68:
/// completion:  457*8=3656, 457*60=27420, 3656+27420=31076. answer: 31076
/// </code>
/// Addition goes column by column from the right: the two digits (0 where a number has run out),
/// <c>+1</c> when a carry comes in, and the column sum; the answer is the last column's sum followed
/// by the other columns' last digits. Multiplication writes one partial product per non-zero digit
/// of the second number (the digit with its place value), then adds them up one at a time.
/// The verifier reads the whole number after the last <c>answer:</c> (a leading <c>-</c> and commas
/// between digits are accepted) and compares it exactly, so it never overflows.
/// </summary>
public sealed class ArithmeticTask : SeededTask<ArithmeticOptions>
{
    const ulong Salt = 0xADD_0003;

    /// <summary>Creates the task; throws <see cref="ArgumentOutOfRangeException"/> for invalid options.</summary>
    public ArithmeticTask(ArithmeticOptions? options = null) : base(options, Salt) { }

    /// <inheritdoc />
    public override string Name => "arithmetic";

    /// <inheritdoc />
    public override string Alphabet => " *+,.0123456789:=aenrsw";

    /// <inheritdoc />
    protected override Problem GenerateOne(SeededRandom rng)
    {
        var op = Options.Operation switch
        {
            ArithmeticOperation.Addition => '+',
            ArithmeticOperation.Multiplication => '*',
            _ => rng.Next(0, 1) == 0 ? '+' : '*',
        };
        return Create(Operand(rng), op, Operand(rng));
    }

    long Operand(SeededRandom rng)
    {
        var digits = rng.Next(Options.MinDigits, Options.Digits);
        long value = rng.Next(1, 9);                                   // leading digit, never 0
        for (var d = 1; d < digits; d++) value = value * 10 + rng.Next(0, 9);
        return value;
    }

    /// <summary>Makes the problem <c>a op b</c> for <c>op</c> in <c>+</c>, <c>*</c>; operands non-negative.</summary>
    public static Problem Create(long a, char op, long b)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(a);
        ArgumentOutOfRangeException.ThrowIfNegative(b);
        if (op is not ('+' or '*')) throw new ArgumentOutOfRangeException(nameof(op), "expected '+' or '*'");
        var result = op == '+' ? (BigInteger)a + b : (BigInteger)a * b;
        var sa = a.ToString(CultureInfo.InvariantCulture);
        var sb = b.ToString(CultureInfo.InvariantCulture);
        var key = a <= b ? $"{sa}{op}{sb}" : $"{sb}{op}{sa}";
        return new Problem($"arithmetic:{key}", $"{sa}{op}{sb}:", result.ToString(CultureInfo.InvariantCulture),
            new Dictionary<string, string> { ["a"] = sa, ["b"] = sb, ["op"] = op.ToString() });
    }

    /// <inheritdoc />
    public override string Solve(Problem problem)
    {
        var (a, op, b) = Read(problem);
        return op == '+' ? SolveAddition(a, b) : SolveMultiplication(a, b);
    }

    static string SolveAddition(string a, string b)
    {
        var steps = new List<string>();
        var digits = new StringBuilder();
        var carry = 0;
        var width = Math.Max(a.Length, b.Length);
        for (var col = 0; col < width; col++)
        {
            var da = col < a.Length ? a[a.Length - 1 - col] - '0' : 0;
            var db = col < b.Length ? b[b.Length - 1 - col] - '0' : 0;
            var sum = da + db + carry;
            steps.Add(carry == 1 ? $"{da}+{db}+1={sum}" : $"{da}+{db}={sum}");
            carry = sum / 10;
            if (col < width - 1) digits.Insert(0, (char)('0' + sum % 10));
            else digits.Insert(0, sum.ToString(CultureInfo.InvariantCulture));
        }
        return " " + string.Join(", ", steps) + ". answer: " + Canonical(digits.ToString());
    }

    static string SolveMultiplication(string a, string b)
    {
        var x = BigInteger.Parse(a, CultureInfo.InvariantCulture);
        var steps = new List<string>();
        BigInteger? total = null;
        var partials = new List<BigInteger>();
        for (var col = 0; col < b.Length; col++)
        {
            var d = b[b.Length - 1 - col] - '0';
            if (d == 0) continue;
            var place = d + new string('0', col);
            var partial = x * BigInteger.Parse(place, CultureInfo.InvariantCulture);
            steps.Add($"{a}*{place}={partial}");
            partials.Add(partial);
        }
        foreach (var p in partials)
        {
            if (total is { } t) steps.Add($"{t}+{p}={t + p}");
            total = (total ?? 0) + p;
        }
        if (total is null) return $" {a}*{b}=0. answer: 0";
        return " " + string.Join(", ", steps) + ". answer: " + total.Value.ToString(CultureInfo.InvariantCulture);
    }

    /// <inheritdoc />
    public override Verdict Verify(Problem problem, string completion)
    {
        var fr = Options.FormatReward;
        if (completion is null) return new Verdict(0, false, VerdictReasons.NoAnswer, 0, null);
        if (completion.Length > Options.MaxCompletionLength) return new Verdict(0, false, VerdictReasons.TooLong, 0, null);
        var line = AnswerText.FinalLine(completion);
        if (line is null) return new Verdict(0, false, VerdictReasons.NoAnswer, 0, null);
        var answer = AnswerText.CanonicalInteger(line);
        if (answer is null) return new Verdict(0, false, VerdictReasons.Unparsable, 0, line);
        return answer == Canonical(problem.Answer)
            ? new Verdict(1 + fr, true, VerdictReasons.Correct, fr, answer)
            : new Verdict(fr, false, VerdictReasons.WrongValue, fr, answer);
    }

    /// <inheritdoc />
    /// <remarks>The number on the answer line without leading zeros or commas; null if it is not a whole number.</remarks>
    public override string? ExtractFinalAnswer(string completion)
    {
        if (completion is null || completion.Length > Options.MaxCompletionLength) return null;
        var line = AnswerText.FinalLine(completion);
        return line is null ? null : AnswerText.CanonicalInteger(line);
    }

    static string Canonical(string digits) => AnswerText.CanonicalInteger(digits) ?? digits;

    static (string A, char Op, string B) Read(Problem problem)
    {
        if (problem.Fields.TryGetValue("a", out var a) && problem.Fields.TryGetValue("b", out var b)
            && problem.Fields.TryGetValue("op", out var op) && op is "+" or "*"
            && a.Length > 0 && a.All(char.IsAsciiDigit) && b.Length > 0 && b.All(char.IsAsciiDigit))
            return (a, op[0], b);
        throw new ArgumentException($"problem {problem.Id} lacks well-formed fields 'a', 'op', 'b'", nameof(problem));
    }
}
