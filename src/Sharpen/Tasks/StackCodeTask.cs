using System.Globalization;
using System.Text;

namespace Sharpen.Tasks;

/// <summary>
/// Program synthesis with unit tests (PLUM, arXiv:2406.06887; ACECode, arXiv:2412.17264) over the stack language of
/// <see cref="StackMachine"/>, which Sharpen interprets in process under step and memory limits: no host code runs.
/// A problem is a formula over x; the policy writes a postfix program computing it; the verifier runs the program on
/// generated unit tests (distinct inputs, expected outputs from evaluating the formula's tree) and never throws on the
/// program text.
/// <code>
/// prompt:     f(x)=3*x+2:
/// completion:  x 3 * 2 +
/// </code>
/// The program is the completion's first line. Row fields: <c>formula</c>, <c>tests</c> (<c>input:output</c> pairs
/// separated by spaces), <c>solution</c> (the SFT program) and the reference program as <c>answer</c>, whose summed
/// step count is E_ref of the <see cref="StackCodeReward.Runtime"/> reward.
/// </summary>
public sealed class StackCodeTask : SeededTask<StackCodeOptions>
{
    const ulong Salt = 0x5C0DE;
    const int MaxAttempts = 1_000;

    /// <summary>Every character of prompts, worked solutions and the language's words.</summary>
    public const string Characters = " %()*+-/0123456789:=[]adefoprsuvwx";

    /// <summary>Creates the task; throws <see cref="ArgumentOutOfRangeException"/> for invalid options.</summary>
    public StackCodeTask(StackCodeOptions? options = null) : base(options, Salt) { }

    /// <inheritdoc />
    public override string Name => "stack-code";

    /// <inheritdoc />
    public override string Alphabet => Characters;

    /// <inheritdoc />
    protected override Problem GenerateOne(SeededRandom rng)
    {
        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            var tree = RandomTree(rng, Options.Operators);
            var inputs = DistinctInputs(rng);
            var slow = rng.NextUInt64() < Options.SlowSolutionFraction * 18446744073709551616.0;
            if (!tree.HasInput) continue;
            var outputs = inputs.Select(tree.Eval).ToArray();
            if (outputs.Distinct().Count() == 1) continue;   // a constant function (x-x) tests nothing about x
            return Create(tree, inputs, slow);
        }
        throw new InvalidOperationException("could not generate a stack-code problem with these options");
    }

    /// <summary>The problem of <paramref name="formula"/> (a tree) with tests on <paramref name="inputs"/>.</summary>
    internal Problem Create(Formula formula, IReadOnlyList<long> inputs, bool slowSolution)
    {
        var infix = formula.Infix();
        var tests = string.Join(' ', inputs.Select(x => $"{Num(x)}:{Num(formula.Eval(x))}"));
        var reference = formula.Postfix(slow: false);
        return new Problem($"stack-code:{infix}", $"f(x)={infix}:", reference, new Dictionary<string, string>
        {
            ["formula"] = infix, ["tests"] = tests, ["solution"] = formula.Postfix(slowSolution),
        });
    }

    /// <inheritdoc />
    /// <remarks>The row's <c>solution</c> program (slow or not, see <see cref="StackCodeOptions.SlowSolutionFraction"/>), else the reference.</remarks>
    public override string Solve(Problem problem) => " " + (problem.Fields.GetValueOrDefault("solution") ?? problem.Answer);

    /// <summary>The generated unit tests of a problem; throws <see cref="ArgumentException"/> naming the problem when the
    /// <c>tests</c> field is missing or malformed (a data error, not a model error).</summary>
    public static IReadOnlyList<(long Input, long Output)> ReadTests(Problem problem)
    {
        if (!problem.Fields.TryGetValue("tests", out var text) || string.IsNullOrWhiteSpace(text))
            throw new ArgumentException($"problem {problem.Id}: no 'tests' field (input:output pairs separated by spaces)", nameof(problem));
        var tests = new List<(long, long)>();
        foreach (var pair in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var colon = pair.IndexOf(':');
            if (colon < 0 || !long.TryParse(pair.AsSpan(0, colon), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var x)
                          || !long.TryParse(pair.AsSpan(colon + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var y))
                throw new ArgumentException($"problem {problem.Id}: 'tests' entry '{pair}' is not input:output (two integers)", nameof(problem));
            tests.Add((x, y));
        }
        return tests;
    }

    /// <inheritdoc />
    public override Verdict Verify(Problem problem, string completion)
    {
        var tests = ReadTests(problem);
        var runtime = Options.Reward == StackCodeReward.Runtime;
        var notAProgram = runtime ? -1.0 : 0.0;
        if (completion.Length > Options.MaxCompletionLength) return new Verdict(notAProgram, false, VerdictReasons.TooLong, 0, null);
        var source = FirstLine(completion);
        if (!StackMachine.TryParse(source, Options.Limits, out var program, out _))
            return new Verdict(notAProgram, false, source.Trim().Length == 0 ? VerdictReasons.NoAnswer : VerdictReasons.Unparsable, 0, null);
        var normalized = StackMachine.Normalize(source);
        var format = Options.FormatReward;

        int passed = 0, steps = 0;
        string? firstFailure = null;
        foreach (var (x, y) in tests)
        {
            var run = StackMachine.Run(program, x, Options.Limits);
            steps += run.Steps;
            if (run.Ok && run.Value == y) { passed++; continue; }
            firstFailure ??= run.Ok ? VerdictReasons.FailedTest
                : run.Error is StackMachine.StepLimit or StackMachine.StackOverflow ? VerdictReasons.LimitExceeded
                : VerdictReasons.RuntimeError;
        }
        if (firstFailure is not null)
        {
            var failed = runtime ? -0.5 + 0.5 * passed / tests.Count : 0.0;
            return new Verdict(failed + format, false, firstFailure, format, normalized);
        }
        if (!runtime) return new Verdict(1 + format, true, VerdictReasons.Correct, format, normalized);
        var referenceSteps = ReferenceSteps(problem, tests);
        return new Verdict(0.5 + 0.5 * Math.Min((double)referenceSteps / Math.Max(steps, 1), 1.0) + format, true,
            VerdictReasons.Correct, format, normalized);
    }

    /// <summary>E_ref: the reference program's (<see cref="Problem.Answer"/>) interpreter steps summed over the tests. Throws
    /// <see cref="ArgumentException"/> naming the problem when the reference does not pass its own tests.</summary>
    public int ReferenceSteps(Problem problem, IReadOnlyList<(long Input, long Output)> tests)
    {
        if (!StackMachine.TryParse(problem.Answer, Options.Limits, out var program, out var error))
            throw new ArgumentException($"problem {problem.Id}: the reference program '{problem.Answer}' does not parse: {error}", nameof(problem));
        var total = 0;
        foreach (var (x, y) in tests)
        {
            var run = StackMachine.Run(program, x, Options.Limits);
            if (!run.Ok || run.Value != y)
                throw new ArgumentException($"problem {problem.Id}: the reference program fails its test {x}:{y} ({run.Error ?? "got " + run.Value})", nameof(problem));
            total += run.Steps;
        }
        return total;
    }

    /// <inheritdoc />
    /// <remarks>The first line's words joined by single spaces when it parses as a program, else null.</remarks>
    public override string? ExtractFinalAnswer(string completion)
    {
        if (completion.Length > Options.MaxCompletionLength) return null;
        var source = FirstLine(completion);
        return StackMachine.TryParse(source, Options.Limits, out _, out _) ? StackMachine.Normalize(source) : null;
    }

    static string FirstLine(string completion)
    {
        var end = completion.IndexOfAny(['\n', '\r']);
        return end < 0 ? completion : completion[..end];
    }

    long[] DistinctInputs(SeededRandom rng)
    {
        var pool = Enumerable.Range(-Options.MaxInput, 2 * Options.MaxInput + 1).Select(v => (long)v).ToArray();
        for (var i = 0; i < Options.Tests; i++)
        {
            var j = rng.Next(i, pool.Length - 1);
            (pool[i], pool[j]) = (pool[j], pool[i]);
        }
        return pool[..Options.Tests];
    }

    Formula RandomTree(SeededRandom rng, int operators)
    {
        if (operators == 0)
            return rng.Next(0, 1) == 0 ? Formula.X : Formula.Const(rng.Next(1, Options.MaxConstant));
        var left = rng.Next(0, operators - 1);
        var op = "+-*"[rng.Next(0, 2)];
        return Formula.Bin(op, RandomTree(rng, left), RandomTree(rng, operators - 1 - left));
    }

    static string Num(long v) => v.ToString(CultureInfo.InvariantCulture);

    /// <summary>A formula's tree: x, a constant, or a binary + − × node.</summary>
    internal sealed record Formula(char Op, long Value, Formula? Left, Formula? Right)
    {
        public static readonly Formula X = new('x', 0, null, null);
        public static Formula Const(long c) => new('c', c, null, null);
        public static Formula Bin(char op, Formula l, Formula r) => new(op, 0, l, r);

        public bool HasInput => Op == 'x' || (Left?.HasInput ?? false) || (Right?.HasInput ?? false);

        public long Eval(long x) => Op switch
        {
            'x' => x,
            'c' => Value,
            '+' => Left!.Eval(x) + Right!.Eval(x),
            '-' => Left!.Eval(x) - Right!.Eval(x),
            _ => Left!.Eval(x) * Right!.Eval(x),
        };

        int Precedence => Op switch { '+' or '-' => 1, '*' => 2, _ => 3 };

        /// <summary>Infix with the parentheses precedence needs (a right operand of − in parentheses when it is + or −).</summary>
        public string Infix()
        {
            if (Op == 'x') return "x";
            if (Op == 'c') return Num(Value);
            var l = Left!.Infix();
            var r = Right!.Infix();
            if (Left.Precedence < Precedence) l = $"({l})";
            if (Right.Precedence < Precedence || (Right.Precedence == Precedence && Op == '-')) r = $"({r})";
            return l + Op + r;
        }

        /// <summary>The postfix program; <paramref name="slow"/> writes c·e (constant c ≥ 3) as e, c−1 dups, c−1 pluses.</summary>
        public string Postfix(bool slow)
        {
            var sb = new StringBuilder();
            Write(sb, slow);
            return sb.ToString().TrimEnd();
        }

        void Write(StringBuilder sb, bool slow)
        {
            switch (Op)
            {
                case 'x': sb.Append("x "); return;
                case 'c': sb.Append(Num(Value)).Append(' '); return;
            }
            if (slow && Op == '*' && (Left!.Op == 'c' && Left.Value >= 3 || Right!.Op == 'c' && Right.Value >= 3))
            {
                var (c, e) = Left!.Op == 'c' && Left.Value >= 3 ? (Left.Value, Right!) : (Right!.Value, Left);
                e.Write(sb, slow);
                for (var i = 1; i < c; i++) sb.Append("dup ");
                for (var i = 1; i < c; i++) sb.Append("+ ");
                return;
            }
            Left!.Write(sb, slow);
            Right!.Write(sb, slow);
            sb.Append(Op).Append(' ');
        }
    }
}
