using System.Globalization;

namespace Sharpen.Tasks;

/// <summary>
/// A prompt-selection task (PromptPG's setting at toy scale): four made-up operators whose meaning the prompt does not
/// say, <c>#</c> = a+b, <c>@</c> = a·b, <c>&amp;</c> = a−b, <c>$</c> = 2a+b. A frozen model can only answer <c>7#3=</c>
/// from in-context examples that show the same operator, so which examples a selection policy puts in the prompt
/// decides the answer reward.
/// <code>
/// prompt:     7#3=
/// completion:  10
/// </code>
/// The verifier reads the first integer after the last <c>answer:</c>, or else the first integer of the completion.
/// </summary>
public sealed class SymbolOpsTask : SeededTask<SymbolOpsOptions>
{
    const ulong Salt = 0x5E_0B5;

    /// <summary>The operators, in a fixed order.</summary>
    public const string Operators = "#@&$";

    /// <summary>Creates the task; throws <see cref="ArgumentOutOfRangeException"/> for invalid options.</summary>
    public SymbolOpsTask(SymbolOpsOptions? options = null) : base(options, Salt) { }

    /// <inheritdoc />
    public override string Name => "symbol-ops";

    /// <inheritdoc />
    public override string Alphabet => " #$&-0123456789:=@aenrsw";

    /// <summary>The value of <c>a op b</c>.</summary>
    public static long Apply(char op, long a, long b) => op switch
    {
        '#' => a + b,
        '@' => a * b,
        '&' => a - b,
        '$' => 2 * a + b,
        _ => throw new ArgumentException($"unknown operator '{op}' (known: {Operators})", nameof(op)),
    };

    /// <inheritdoc />
    protected override Problem GenerateOne(SeededRandom rng)
    {
        var op = Operators[rng.Next(0, Operators.Length - 1)];
        return Create(rng.Next(1, Options.MaxOperand), op, rng.Next(1, Options.MaxOperand));
    }

    /// <summary>The problem <c>a op b</c>.</summary>
    public Problem Create(int a, char op, int b)
    {
        var answer = Apply(op, a, b).ToString(CultureInfo.InvariantCulture);
        var text = $"{a}{op}{b}=";
        return new Problem($"symbol-ops:{text}", text, answer, new Dictionary<string, string>
        {
            ["a"] = a.ToString(CultureInfo.InvariantCulture), ["b"] = b.ToString(CultureInfo.InvariantCulture), ["op"] = op.ToString(),
        });
    }

    /// <inheritdoc />
    public override string Solve(Problem problem) => " " + problem.Answer;

    /// <inheritdoc />
    public override Verdict Verify(Problem problem, string completion)
    {
        if (completion.Length > Options.MaxCompletionLength) return new Verdict(0, false, VerdictReasons.TooLong, 0, null);
        var found = ExtractFinalAnswer(completion);
        if (found is null) return new Verdict(0, false, VerdictReasons.NoAnswer, 0, null);
        var format = Options.FormatReward;
        var correct = found == AnswerText.CanonicalInteger(problem.Answer);
        return new Verdict((correct ? 1 : 0) + format, correct, correct ? VerdictReasons.Correct : VerdictReasons.WrongValue, format, found);
    }

    /// <inheritdoc />
    public override string? ExtractFinalAnswer(string completion)
    {
        if (completion.Length > Options.MaxCompletionLength) return null;
        var text = AnswerText.FinalLine(completion) ?? completion;
        foreach (var n in AnswerText.Numbers(text)) return n.Contains('.') ? null : n;
        return null;
    }
}
