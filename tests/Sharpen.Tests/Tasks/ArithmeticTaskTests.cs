using Sharpen.Tasks;

namespace Sharpen.Tests.Tasks;

public class ArithmeticTaskTests
{
    static readonly ArithmeticTask Task = new();

    [Theory]
    [InlineData(457, '+', 68, "457+68:", " 7+8=15, 5+6+1=12, 4+0+1=5. answer: 525")]
    [InlineData(999, '+', 1, "999+1:", " 9+1=10, 9+0+1=10, 9+0+1=10. answer: 1000")]
    [InlineData(12, '+', 34, "12+34:", " 2+4=6, 1+3=4. answer: 46")]
    [InlineData(457, '*', 68, "457*68:", " 457*8=3656, 457*60=27420, 3656+27420=31076. answer: 31076")]
    [InlineData(305, '*', 102, "305*102:", " 305*2=610, 305*100=30500, 610+30500=31110. answer: 31110")]
    [InlineData(7, '*', 8, "7*8:", " 7*8=56. answer: 56")]
    public void WorkedSolutions(long a, char op, long b, string prompt, string solution)
    {
        var p = ArithmeticTask.Create(a, op, b);
        Assert.Equal(prompt, p.Prompt);
        Assert.Equal(solution, Task.Solve(p));
        Assert.True(Task.Verify(p, solution).Correct);
    }

    [Theory]
    [InlineData("answer: 525", "correct")]
    [InlineData("answer: 0525", "correct")]
    [InlineData("answer: 525\nthe end", "correct")]
    [InlineData("answer: 526", "wrong_value")]
    [InlineData("answer: -525", "wrong_value")]
    [InlineData("answer: 525.0", "unparsable")]
    [InlineData("answer: five hundred", "unparsable")]
    [InlineData("answer: ５２５", "unparsable")]
    [InlineData("525", "no_answer")]
    public void Verifies457Plus68(string completion, string reason)
    {
        var v = Task.Verify(ArithmeticTask.Create(457, '+', 68), completion);
        Assert.Equal(reason, v.Reason);
        Assert.Equal(reason == "correct" ? 1.0 : 0.0, v.Reward);
    }

    [Fact]
    public void HugeAnswersCompareExactly()
    {
        // 999999999999999999 * 999999999999999999 = 999999999999999998000000000000000001
        var p = ArithmeticTask.Create(999_999_999_999_999_999, '*', 999_999_999_999_999_999);
        Assert.Equal("999999999999999998000000000000000001", p.Answer);
        Assert.True(Task.Verify(p, "answer: 999999999999999998000000000000000001").Correct);
        Assert.Equal("wrong_value", Task.Verify(p, "answer: 999999999999999998000000000000000002").Reason);
        Assert.True(Task.Verify(p, Task.Solve(p)).Correct);
    }

    [Theory]
    [InlineData(ArithmeticOperation.Addition)]
    [InlineData(ArithmeticOperation.Multiplication)]
    [InlineData(ArithmeticOperation.Mixed)]
    public void SolverSolutionsVerifyFor1000Problems(ArithmeticOperation op)
    {
        var task = new ArithmeticTask(new ArithmeticOptions { Operation = op, MinDigits = 2, Digits = 5 });
        foreach (var p in task.Generate(1000, 3))
        {
            var a = long.Parse(p.Fields["a"]);
            var b = long.Parse(p.Fields["b"]);
            Assert.InRange(a, 10, 99_999);
            Assert.InRange(b, 10, 99_999);
            Assert.Equal(p.Fields["op"] == "+" ? a + b : a * b, long.Parse(p.Answer));
            var solution = task.Solve(p);
            Assert.True(task.Verify(p, solution).Correct, p.Prompt + solution);
            Assert.All(p.Prompt + solution, ch => Assert.Contains(ch, task.Alphabet));
        }
    }

    [Fact]
    public void GenerationIsDeterministic()
    {
        Assert.Equal(Task.Generate(40, 1).Select(p => p.Id), Task.Generate(40, 1).Select(p => p.Id));
        Assert.NotEqual(Task.Generate(40, 1).Select(p => p.Id), Task.Generate(40, 2).Select(p => p.Id));
    }
}
