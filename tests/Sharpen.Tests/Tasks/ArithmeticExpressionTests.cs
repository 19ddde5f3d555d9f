using Sharpen.Tasks;

namespace Sharpen.Tests.Tasks;

public class ArithmeticExpressionTests
{
    [Theory]
    [InlineData("1+2*3", 7, 1)]
    [InlineData("(1+2)*3", 9, 1)]
    [InlineData("8/(3-8/3)", 24, 1)]
    [InlineData("7/2", 7, 2)]
    [InlineData("6/4", 3, 2)]
    [InlineData("10-2-3", 5, 1)]          // left to right: (10-2)-3
    [InlineData("24/4/2", 3, 1)]          // (24/4)/2
    [InlineData("2-5", -3, 1)]
    [InlineData(" ( 1 + 2 ) * 3 ", 9, 1)]
    public void EvaluatesExactly(string text, long num, long den)
    {
        var parsed = ArithmeticExpression.Parse(text);
        Assert.Null(parsed.Error);
        Assert.Null(parsed.EvaluationError);
        Assert.Equal(new Rational(num, den), parsed.Value);
    }

    [Fact]
    public void ListsLiteralsInOrder() =>
        Assert.Equal([3L, 5L, 7L, 5L], ArithmeticExpression.Parse("3*(5+7)-5").Literals);

    [Theory]
    [InlineData("1/0", "division_by_zero")]
    [InlineData("1/(2-2)", "division_by_zero")]
    [InlineData("999999999999999999*999999999999999999", "overflow")]
    [InlineData("999999999999999999+999999999999999999*9", "overflow")]
    public void EvaluationErrors(string text, string reason)
    {
        var parsed = ArithmeticExpression.Parse(text);
        Assert.Null(parsed.Error);
        Assert.Equal(reason, parsed.EvaluationError);
        Assert.Null(parsed.Value);
    }

    [Fact]
    public void IntegerDivisionOnlyRejectsRemainders()
    {
        Assert.Equal("non_integer", ArithmeticExpression.Parse("7/2*2", integerDivisionOnly: true).EvaluationError);
        Assert.Equal(new Rational(7, 1), ArithmeticExpression.Parse("14/2", integerDivisionOnly: true).Value);
    }

    [Theory]
    [InlineData("", "unparsable")]
    [InlineData("1+", "unparsable")]
    [InlineData("+1", "unparsable")]
    [InlineData("1 2", "unparsable")]
    [InlineData("1.5", "unparsable")]
    [InlineData("(1", "unparsable")]
    [InlineData("1)", "unparsable")]
    [InlineData("1234567890123456789", "overflow")]        // 19 digits
    [InlineData("0001234567890123456789", "overflow")]
    public void SyntaxErrors(string text, string reason) =>
        Assert.Equal(reason, ArithmeticExpression.Parse(text).Error);

    [Fact]
    public void NestingIsLimited()
    {
        var ok = new string('(', ArithmeticExpression.MaxDepth) + "1" + new string(')', ArithmeticExpression.MaxDepth);
        Assert.Null(ArithmeticExpression.Parse(ok).Error);
        var deep = "(" + ok + ")";
        Assert.Equal("too_deep", ArithmeticExpression.Parse(deep).Error);
    }

    [Fact]
    public void RationalsAreReducedAndChecked()
    {
        Assert.Equal(new Rational(1, 3), new Rational(-2, -6));
        Assert.Equal(-1, new Rational(1, -2).Num);
        Assert.Throws<DivideByZeroException>(() => new Rational(1, 0));
        Assert.Throws<OverflowException>(() => Rational.Of(long.MaxValue) + Rational.Of(1));
    }

    [Fact]
    public void SplitMix64MatchesTheReferenceSequence()
    {
        // Reference outputs of SplitMix64 (Vigna's splitmix64.c) from state 0.
        var rng = new SeededRandom(0);
        Assert.Equal(0xE220A8397B1DCDAFUL, rng.NextUInt64());
        Assert.Equal(0x6E789E6AA1B965F4UL, rng.NextUInt64());
        Assert.Equal(0x06C45D188009454FUL, rng.NextUInt64());
    }

    [Fact]
    public void NextStaysInRange()
    {
        var rng = new SeededRandom(42);
        var seen = new HashSet<int>();
        for (var i = 0; i < 1000; i++) seen.Add(rng.Next(3, 6));
        Assert.Equal([3, 4, 5, 6], seen.Order());
    }
}
