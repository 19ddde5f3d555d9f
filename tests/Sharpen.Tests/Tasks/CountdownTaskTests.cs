using Sharpen.Tasks;

namespace Sharpen.Tests.Tasks;

public class CountdownTaskTests
{
    static readonly CountdownTask Task = new();

    static Problem P(string numbers, string target) =>
        new("test", $"{numbers} -> {target}:", "", new Dictionary<string, string> { ["numbers"] = numbers, ["target"] = target });

    [Theory]
    [InlineData(" 3*5=15, 15+7=22. answer: 3*5+7", "correct")]
    [InlineData("answer: 3*5+7+7", "reused_number")]
    [InlineData("answer: 3*5", "wrong_value")]
    [InlineData("answer: 3*5+8", "unknown_number")]
    [InlineData("answer: (3+5)*7", "wrong_value")]          // 56
    [InlineData("answer: 7+5*3", "correct")]                // precedence: 7+15
    [InlineData("answer: (7+5)*3", "wrong_value")]          // 36
    [InlineData("answer: 5*(7-3)+7", "reused_number")]      // 7 twice
    [InlineData("answer:  3 * 5 + 7 ", "correct")]
    [InlineData("ANSWER: 3*5+7", "correct")]
    [InlineData("answer: 1+1\nanswer: 3*5+7", "correct")]    // the last answer line counts
    [InlineData("answer: 3*5+7\nanswer: 3*5", "wrong_value")]
    [InlineData("answer: 3*5+7\nsome rambling after", "correct")]
    [InlineData("answer: 3*5+7.", "unparsable")]
    [InlineData("answer: 3*5+7)", "unparsable")]
    [InlineData("answer: (3*5+7", "unparsable")]
    [InlineData("answer: 3**5", "unparsable")]
    [InlineData("answer: -3+5*5", "unparsable")]            // no unary minus
    [InlineData("answer: 3 5 7", "unparsable")]
    [InlineData("3*5+7", "no_answer")]
    [InlineData("answer:", "no_answer")]
    [InlineData("answer:   \nx", "no_answer")]
    [InlineData("answer: 0003*5+7", "correct")]             // leading zeros: still 3
    public void Verifies_3_5_7_to_22(string completion, string reason)
    {
        var v = Task.Verify(P("3 5 7", "22"), completion);
        Assert.Equal(reason, v.Reason);
        Assert.Equal(reason == "correct", v.Correct);
        Assert.Equal(reason == "correct" ? 1.0 : 0.0, v.Reward);
        Assert.Equal(0.0, v.FormatReward);
    }

    [Fact]
    public void ExactlyOnceRejectsAnUnusedNumber()
    {
        var task = new CountdownTask(new CountdownOptions { UseAllNumbers = true });
        var problem = task.Create([3, 5, 7, 2], 22);
        Assert.Equal("unused_number", task.Verify(problem, "answer: 3*5+7").Reason);
        Assert.True(task.Verify(problem, "answer: 7*2+3+5").Correct);      // 14+3+5 = 22
        Assert.True(Task.Verify(problem, "answer: 3*5+7").Correct);         // at-most-once rule accepts it
    }

    [Fact]
    public void DivisionByZeroAndFractions()
    {
        Assert.Equal("division_by_zero", Task.Verify(P("5 5 3", "3"), "answer: 3/(5-5)").Reason);
        // 7/2*4 = 14 exactly; with whole-number division only, 7/2 is not allowed.
        Assert.True(Task.Verify(P("7 2 4", "14"), "answer: 7/2*4").Correct);
        var strict = new CountdownTask(new CountdownOptions { IntegerDivisionOnly = true });
        Assert.Equal("non_integer", strict.Verify(P("7 2 4", "14"), "answer: 7/2*4").Reason);
        Assert.True(strict.Verify(P("7 2 4", "14"), "answer: 7*4/2").Correct);   // 28/2
    }

    [Fact]
    public void DuplicateNumbersMayEachBeUsedOnce()
    {
        Assert.True(Task.Verify(P("5 5 3", "13"), "answer: 5+5+3").Correct);
        Assert.Equal("reused_number", Task.Verify(P("5 5 3", "18"), "answer: 5+5+5+3").Reason);
    }

    [Fact]
    public void FormatRewardGoesToParsableAnswers()
    {
        var task = new CountdownTask(new CountdownOptions { FormatReward = 0.1 });
        var p = P("3 5 7", "22");
        Assert.Equal(new Verdict(1.1, true, "correct", 0.1, "3*5+7"), task.Verify(p, "answer: 3*5+7"));
        Assert.Equal(new Verdict(0.1, false, "wrong_value", 0.1, "3*5"), task.Verify(p, "answer: 3*5"));
        Assert.Equal(new Verdict(0.1, false, "reused_number", 0.1, "3*5+7+7"), task.Verify(p, "answer: 3*5+7+7"));
        Assert.Equal(new Verdict(0.0, false, "unparsable", 0.0, "3*"), task.Verify(p, "answer: 3*"));
        Assert.Equal(new Verdict(0.0, false, "no_answer", 0.0, null), task.Verify(p, "22"));
    }

    [Fact]
    public void ExtractsTheAnswerExpressionWithoutSpaces()
    {
        Assert.Equal("5*3+7", Task.ExtractFinalAnswer(" 5*3=15, 15+7=22. answer: 5 * 3 + 7\nmore"));
        Assert.Null(Task.ExtractFinalAnswer("no marker here"));
    }

    [Fact]
    public void PromptAndWorkedSolutionFormat()
    {
        var p = Task.Create([3, 5, 7], 22);
        Assert.Equal("3 5 7 -> 22:", p.Prompt);
        Assert.Equal("countdown:3,5,7->22", p.Id);
        // Shortest solution: two steps; the larger operand is written first.
        Assert.Equal(" 5*3=15, 15+7=22. answer: 5*3+7", Task.Solve(p));
        Assert.Equal("5*3+7", p.Answer);
        Assert.Equal("countdown:3,5,7->22", Task.Create([7, 3, 5], 22).Id);   // same problem, other order
    }

    [Fact]
    public void SolverWritesTheFewestParentheses()
    {
        // No single step makes 13 from 3 4 20; the search tries the pair (3,4) first: 4+3=7, then 20-7=13.
        Assert.Equal(" 4+3=7, 20-7=13. answer: 20-(4+3)", Task.Solve(Task.Create([3, 4, 20], 13)));
        // With 20 first the pair (20,3) comes first: 20+3=23 leads nowhere, 20-3=17 then 17-4=13.
        Assert.Equal(" 20-3=17, 17-4=13. answer: 20-3-4", Task.Solve(Task.Create([20, 3, 4], 13)));
        // (4+3)*2 = 14: product of a sum keeps its parentheses.
        Assert.Equal(" 4+3=7, 7*2=14. answer: (4+3)*2", Task.Solve(Task.Create([4, 3, 2], 14)));
    }

    [Fact]
    public void GenerationIsDeterministic()
    {
        var a = Task.Generate(50, 7);
        var b = Task.Generate(50, 7);
        var c = Task.Generate(50, 8);
        Assert.Equal(a.Select(p => p.Prompt), b.Select(p => p.Prompt));
        Assert.Equal(a.Select(p => p.Answer), b.Select(p => p.Answer));
        Assert.NotEqual(a.Select(p => p.Prompt), c.Select(p => p.Prompt));
        Assert.Equal(Task.Generate(10, 7).Select(p => p.Prompt), a.Take(10).Select(p => p.Prompt));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SolverSolutionsVerifyFor1000Problems(bool useAll)
    {
        var task = new CountdownTask(new CountdownOptions { UseAllNumbers = useAll });
        foreach (var p in task.Generate(1000, 11))
        {
            var (numbers, target) = CountdownTask.Read(p);
            Assert.InRange(numbers.Length, 3, 4);
            Assert.All(numbers, n => Assert.InRange(n, 1, 20));
            Assert.InRange(target, 1, 100);
            Assert.DoesNotContain(target, numbers);
            var solution = task.Solve(p);
            var verdict = task.Verify(p, solution);
            Assert.True(verdict.Correct, $"{p.Prompt}{solution} -> {verdict.Reason}");
            Assert.All(solution, ch => Assert.Contains(ch, task.Alphabet));
            Assert.All(p.Prompt, ch => Assert.Contains(ch, task.Alphabet));
            // Every step's result is a non-negative integer: " a*b=c, c+d=e. answer: ..."
            var steps = solution[1..solution.IndexOf(". answer: ", StringComparison.Ordinal)].Split(", ");
            Assert.All(steps, s => Assert.Matches("^[0-9]+[-+*/][0-9]+=[0-9]+$", s));
            if (useAll) Assert.Equal(numbers.Length - 1, steps.Length);
        }
    }

    [Fact]
    public void AlphabetIsSortedAndDistinct()
    {
        Assert.Equal(" ()*+,-./0123456789:=>aenrsw", Task.Alphabet);
        Assert.Equal(string.Concat(Task.Alphabet.Order().Distinct()), Task.Alphabet);
    }

    [Fact]
    public void InvalidOptionsThrow()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new CountdownTask(new CountdownOptions { MaxNumbers = 7 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new CountdownTask(new CountdownOptions { MinNumbers = 5, MaxNumbers = 4 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new CountdownTask(new CountdownOptions { FormatReward = -1 }));
    }
}
