using Sharpen.Tasks;

namespace Sharpen.Tests.Tasks;

public class Game24TaskTests
{
    static readonly Game24Task Task = new();

    static Problem P(string numbers) =>
        new("test", $"{numbers} -> 24:", "", new Dictionary<string, string> { ["numbers"] = numbers, ["target"] = "24" });

    [Theory]
    [InlineData("3 3 8 8", "answer: 8/(3-8/3)", "correct")]       // 3-8/3 = 1/3, 8/(1/3) = 24
    [InlineData("3 3 8 8", "answer: (8-3)*(8-3)", "wrong_value")]  // 25
    [InlineData("3 3 8 8", "answer: 8*3", "unused_number")]
    [InlineData("3 3 8 8", "answer: 8*3*8/8", "reused_number")]
    [InlineData("3 3 8 8", "answer: (8+8)*3/2", "unknown_number")]
    [InlineData("3 3 8 8", "answer: 8/(3-3)*8", "division_by_zero")]
    [InlineData("4 7 8 8", "answer: 8*(7+4-8)", "correct")]
    [InlineData("1 5 5 5", "answer: 5*(5-1/5)", "correct")]       // 5 * 24/5
    [InlineData("1 2 3 4", "answer: 1*2*3*4", "correct")]
    [InlineData("1 2 3 4", "answer: 4*3*2+1", "wrong_value")]     // 25
    public void VerifiesHandWorkedCases(string numbers, string completion, string reason)
    {
        var v = Task.Verify(P(numbers), completion);
        Assert.Equal(reason, v.Reason);
        Assert.Equal(reason == "correct" ? 1.0 : 0.0, v.Reward);
    }

    [Fact]
    public void SolverPrefersWholeStepsAndFallsBackToFractions()
    {
        Assert.Equal(" 8/3=8/3, 3-(8/3)=1/3, 8/(1/3)=24. answer: 8/(3-8/3)", Task.Solve(Task.Create([3, 3, 8, 8])));
        // 2+1=3, 3+3=6, 6*4=24: whole steps, found before any fraction.
        Assert.Equal(" 2+1=3, 3+3=6, 6*4=24. answer: (3+2+1)*4", Task.Solve(Task.Create([1, 2, 3, 4])));
        Assert.Equal("4 7 8 8 -> 24:", Task.Create([4, 7, 8, 8]).Prompt);
        Assert.Equal("game24:4,7,8,8->24", Task.Create([8, 7, 4, 8]).Id);
    }

    [Fact]
    public void UnsolvableNumbersAreRejected() =>
        Assert.Throws<ArgumentException>(() => Task.Create([1, 1, 1, 1]));   // at most (1+1)*(1+1) = 4

    [Fact]
    public void GenerationIsDeterministic()
    {
        var a = Task.Generate(30, 1);
        Assert.Equal(a.Select(p => p.Id), Task.Generate(30, 1).Select(p => p.Id));
        Assert.NotEqual(a.Select(p => p.Prompt), Task.Generate(30, 2).Select(p => p.Prompt));
    }

    [Fact]
    public void SolverSolutionsVerifyFor1000Problems()
    {
        foreach (var p in Task.Generate(1000, 5))
        {
            var (numbers, target) = CountdownTask.Read(p);
            Assert.Equal(4, numbers.Length);
            Assert.All(numbers, n => Assert.InRange(n, 1, 13));
            Assert.Equal(24, target);
            var solution = Task.Solve(p);
            Assert.True(Task.Verify(p, solution).Correct, p.Prompt + solution);
            Assert.All(p.Prompt + solution, ch => Assert.Contains(ch, Task.Alphabet));
        }
    }

    [Fact]
    public void HardOnlyInstancesNeedAFraction()
    {
        var hard = new Game24Task(new Game24Options { HardOnly = true });
        foreach (var p in hard.Generate(50, 3))
        {
            var solution = hard.Solve(p);
            Assert.True(hard.Verify(p, solution).Correct, p.Prompt + solution);
            Assert.Contains("/", solution[..solution.IndexOf("answer", StringComparison.Ordinal)]);
        }
    }
}
