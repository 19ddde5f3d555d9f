using Sharpen.Data;
using Sharpen.Rewards;

namespace Sharpen.Tests.Data;

public class StepSplitterTests
{
    [Fact]
    public void CountdownSolutionSplitsIntoItsStepsAndTheAnswer()
    {
        var steps = StepSplitter.Countdown.Split(" 5*3=15, 15+7=22. answer: 5*3+7");
        Assert.Equal([" 5*3=15, ", "15+7=22. ", "answer: 5*3+7"], steps);
    }

    [Theory]
    [InlineData("a\nb\nc", new[] { "a\n", "b\n", "c" })]
    [InlineData("a\nb\n", new[] { "a\n", "b\n" })]
    [InlineData("\n\na", new[] { "\n\n", "a" })]
    [InlineData("a\n\nb", new[] { "a\n\n", "b" })]
    [InlineData("abc", new[] { "abc" })]
    public void NewlineStepsKeepTheirNewlineAndNeverAreEmpty(string text, string[] expected) =>
        Assert.Equal(expected, StepSplitter.Newline.Split(text));

    [Fact]
    public void EmptyTextHasNoSteps() => Assert.Empty(StepSplitter.Countdown.Split(""));

    [Fact]
    public void RegexStepsEndAfterEachMatch()
    {
        var s = StepSplitter.Parse("regex:Step \\d+:[^;]*;");
        Assert.Equal(["Step 1: x=2;", " Step 2: y=3;", " done"], s.Split("Step 1: x=2; Step 2: y=3; done"));
        Assert.Empty(s.StopStrings);
        Assert.Equal("Step 1: x=2;", s.FirstStep("Step 1: x=2; Step 2"));
    }

    [Fact]
    public void LongerDelimiterWinsAtOnePosition()
    {
        var s = StepSplitter.OnDelimiters(";", ";;");
        Assert.Equal(["a;;", "b;", "c"], s.Split("a;;b;c"));
    }

    [Fact]
    public void BoundaryAndStopStrings()
    {
        Assert.True(StepSplitter.Countdown.EndsAtBoundary("5*3=15, "));
        Assert.False(StepSplitter.Countdown.EndsAtBoundary("answer: 5*3+7"));
        Assert.Equal([", ", ". "], StepSplitter.Countdown.StopStrings);
        Assert.Equal(["\n"], StepSplitter.Parse("newline").StopStrings);
        Assert.Equal(["a\tb"], StepSplitter.Parse("delimiter:a\\tb").Delimiters);
    }

    [Theory]
    [InlineData("tabs")]
    [InlineData("regex:(")]
    [InlineData("regex:x*")]
    [InlineData("delimiter:")]
    public void BadSpecsAreRejectedWithTheExpectedForms(string spec)
    {
        var e = Assert.Throws<ArgumentException>(() => StepSplitter.Parse(spec));
        Assert.Contains("'", e.Message);
    }

    [Fact]
    public void AggregationsMatchHandValues()
    {
        double[] s = [0.9, 0.5, 0.8];
        Assert.Equal(0.5, StepAggregator.Aggregate(s, StepAggregation.Min));
        Assert.Equal(0.8, StepAggregator.Aggregate(s, StepAggregation.Last));
        Assert.Equal(0.36, StepAggregator.Aggregate(s, StepAggregation.Product), 12);
        Assert.Equal(2.2 / 3, StepAggregator.Aggregate(s, StepAggregation.Mean), 12);
        Assert.Equal(2.2, StepAggregator.Aggregate(s, StepAggregation.Sum), 12);
        Assert.True(double.IsNaN(StepAggregator.Aggregate([], StepAggregation.Min)));
        Assert.Throws<ArgumentException>(() => StepAggregator.Parse("median"));
    }
}
