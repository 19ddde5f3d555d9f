using Sharpen.Tasks;

namespace Sharpen.Tests.Tasks;

/// <summary>Untrusted completions: every one gets a verdict with the right reason, and none throws.</summary>
public class AdversarialVerifierTests
{
    static readonly Problem Countdown = new("c", "3 5 7 -> 22:", "3*5+7",
        new Dictionary<string, string> { ["numbers"] = "3 5 7", ["target"] = "22" });
    static readonly Problem Game24 = new("g", "3 3 8 8 -> 24:", "8/(3-8/3)",
        new Dictionary<string, string> { ["numbers"] = "3 3 8 8", ["target"] = "24" });
    static readonly Problem Sum = ArithmeticTask.Create(457, '+', 68);
    static readonly Gsm8kTask Gsm = Gsm8kTask.FromPairs([("How many?", "3*4 = 12\n#### 12")]);

    public static TheoryData<string, string, string> Cases()
    {
        var deep = new string('(', 100_000);
        var tenMb = new string('7', 10 * 1024 * 1024);
        return new TheoryData<string, string, string>
        {
            // task, completion, reason
            { "countdown", "answer: 99999999999999999999*99999999999999", "overflow" },
            { "game24", "answer: 99999999999999999999*99999999999999", "overflow" },
            { "arithmetic", "answer: 99999999999999999999*99999999999999", "unparsable" },
            { "gsm8k", "#### 99999999999999999999*99999999999999", "wrong_value" },
            { "countdown", "answer: " + deep, "too_long" },
            { "game24", "answer: " + deep + "3", "too_long" },
            { "arithmetic", "answer: " + deep, "too_long" },
            { "gsm8k", "#### " + deep, "too_long" },
            { "countdown", "answer: " + new string('(', 40) + "3" + new string(')', 40) + "*5+7", "too_deep" },
            { "countdown", "answer: " + new string('(', 32) + "3" + new string(')', 32) + "*5+7", "correct" },
            { "countdown", "answer: 3*5+7/(7-7)", "reused_number" },
            { "game24", "answer: 8/(3-3)*8", "division_by_zero" },
            { "countdown", "answer: ３*５+７", "unparsable" },        // full-width digits
            { "countdown", "answer: ٣*٥+٧", "unparsable" },          // Arabic-Indic digits
            { "countdown", "answer: 3×5+7", "unparsable" },
            { "countdown", "answer: 3*5+7 🙂", "unparsable" },
            { "countdown", "🙂 thinking… answer: 3*5+7", "correct" },
            { "gsm8k", "#### ١٢", "no_answer" },
            { "gsm8k", "so it is ١٢ or 12", "correct" },
            { "arithmetic", "answer: ５２５", "unparsable" },
            { "countdown", tenMb, "too_long" },
            { "game24", tenMb, "too_long" },
            { "arithmetic", tenMb, "too_long" },
            { "gsm8k", tenMb, "too_long" },
            { "countdown", "", "no_answer" },
            { "game24", "", "no_answer" },
            { "arithmetic", "", "no_answer" },
            { "gsm8k", "", "no_answer" },
            { "countdown", " \t\n\r\n  ", "no_answer" },
            { "arithmetic", " \t\n\r\n  ", "no_answer" },
            { "gsm8k", " \t\n\r\n  ", "no_answer" },
            { "countdown", "answer: NaN", "unparsable" },
            { "countdown", "answer: Infinity", "unparsable" },
            { "countdown", "answer: 1e309", "unparsable" },
            { "game24", "answer: NaN", "unparsable" },
            { "arithmetic", "answer: NaN", "unparsable" },
            { "arithmetic", "answer: -Infinity", "unparsable" },
            { "gsm8k", "#### NaN", "no_answer" },
            { "gsm8k", "NaN Infinity", "no_answer" },
            { "countdown", "answer: \0\0\0", "unparsable" },
            { "countdown", "answer: )(", "unparsable" },
            { "countdown", "answer: ((((", "unparsable" },
            { "countdown", "answer: 3*5+7\u0000", "unparsable" },
        };
    }

    static IVerifiableTask TaskFor(string name) => name switch
    {
        "countdown" => new CountdownTask(),
        "game24" => new Game24Task(),
        "arithmetic" => new ArithmeticTask(),
        _ => Gsm,
    };

    static Problem ProblemFor(string name) => name switch
    {
        "countdown" => Countdown,
        "game24" => Game24,
        "arithmetic" => Sum,
        _ => Gsm.Problems[0],
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryStringGetsAVerdict(string task, string completion, string reason)
    {
        var t = TaskFor(task);
        var v = t.Verify(ProblemFor(task), completion);
        Assert.Equal(reason, v.Reason);
        Assert.Equal(reason == "correct", v.Correct);
        Assert.Equal(reason == "correct" ? 1.0 : 0.0, v.Reward);
        _ = t.ExtractFinalAnswer(completion);   // must not throw either
    }

    [Fact]
    public void DeepParenthesesBeyondTheLengthLimitAreTooDeep()
    {
        var task = new CountdownTask(new CountdownOptions { MaxCompletionLength = 1_000_000 });
        Assert.Equal("too_deep", task.Verify(Countdown, "answer: " + new string('(', 100_000)).Reason);
        var closed = new string('(', 100_000) + "3" + new string(')', 100_000);
        Assert.Equal("too_deep", task.Verify(Countdown, "answer: " + closed + "*5+7").Reason);
    }

    [Fact]
    public void LongFlatExpressionsDoNotRecurse()
    {
        // 300,000 additions inside the length limit: parsed in a loop, not by recursion.
        var task = new CountdownTask(new CountdownOptions { MaxCompletionLength = 1_000_000 });
        var text = "answer: 3" + string.Concat(Enumerable.Repeat("+3", 300_000));
        Assert.Equal("reused_number", task.Verify(Countdown, text).Reason);
    }

    [Fact]
    public void ArithmeticOverflowInsideTheNumbersLimitIsReported()
    {
        var huge = new Problem("h", "", "", new Dictionary<string, string>
        {
            ["numbers"] = "999999999999999999 999999999999999998", ["target"] = "1",
        });
        var v = new CountdownTask().Verify(huge, "answer: 999999999999999999*999999999999999998");
        Assert.Equal("overflow", v.Reason);
    }
}
