using Sharpen.Data;
using Sharpen.Tasks;

namespace Sharpen.Tests.Tasks;

public sealed class Gsm8kTaskTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("sharpen-gsm8k-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    const string Natalia =
        """{"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?", "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"}""";

    string Write(params string[] lines)
    {
        var path = Path.Combine(_dir, "gsm.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public void LoadsQuestionsAnswersAndSolutions()
    {
        var task = Gsm8kTask.Load(Write(Natalia, "", """{"question": "Price?", "answer": "It costs $1,200.\n#### $1,200", "level": 2}"""));
        Assert.Equal(2, task.Problems.Count);
        var p = task.Problems[0];
        Assert.Equal("72", p.Answer);
        Assert.StartsWith("Natalia sold clips", p.Prompt);
        Assert.EndsWith("#### 72", task.Solve(p));
        Assert.True(task.Verify(p, task.Solve(p)).Correct);
        Assert.Equal("1200", task.Problems[1].Answer);
        Assert.Equal("2", task.Problems[1].Fields["level"]);
        Assert.Equal("gsm8k:3", task.Problems[1].Id);          // line 3 (line 2 is blank)
    }

    [Theory]
    [InlineData("#### 72", "correct", "72")]
    [InlineData("The answer is 72.", "correct", "72")]
    [InlineData("She sold 72 clips, so #### 72.0", "correct", "72")]
    [InlineData("#### $72", "correct", "72")]
    [InlineData("#### 072", "correct", "72")]
    [InlineData("I think 72 but #### 71", "wrong_value", "71")]
    [InlineData("72 clips in April, so the total is 73", "wrong_value", "73")]
    [InlineData("#### -72", "wrong_value", "-72")]
    [InlineData("48-24=24", "wrong_value", "24")]
    [InlineData("#### 7,2", "correct", "72")]                 // comma between digits is a thousands separator
    [InlineData("#### 72, 73", "correct", "72")]              // first number after the marker
    [InlineData("no idea", "no_answer", null)]
    [InlineData("####", "no_answer", null)]
    public void VerifiesNatalia(string completion, string reason, string? extracted)
    {
        var task = Gsm8kTask.Load(Write(Natalia));
        var v = task.Verify(task.Problems[0], completion);
        Assert.Equal(reason, v.Reason);
        Assert.Equal(extracted, v.ExtractedAnswer);
        Assert.Equal(extracted, task.ExtractFinalAnswer(completion));
    }

    [Fact]
    public void FormatRewardNeedsTheMarker()
    {
        var task = Gsm8kTask.FromPairs([("Q", "#### 1,080.50")], new Gsm8kOptions { FormatReward = 0.25 });
        var p = task.Problems[0];
        Assert.Equal("1080.5", p.Answer);
        Assert.Equal(new Verdict(1.25, true, "correct", 0.25, "1080.5"), task.Verify(p, "#### $1,080.50"));
        Assert.Equal(new Verdict(1.0, true, "correct", 0.0, "1080.5"), task.Verify(p, "it is 1080.5"));
        Assert.Equal(new Verdict(0.25, false, "wrong_value", 0.25, "1080"), task.Verify(p, "#### 1080"));
    }

    [Fact]
    public void MalformedLinesNameFileAndLine()
    {
        var path = Write(Natalia, Natalia, """{"question": "Q", "answer": "no final number"}""");
        var e = Assert.Throws<DatasetFormatException>(() => Gsm8kTask.Load(path));
        Assert.StartsWith($"{path}:3: ", e.Message);
        var skipping = Gsm8kTask.Load(path, new Gsm8kOptions { SkipBadLines = true });
        Assert.Equal(2, skipping.Problems.Count);
        Assert.Equal(1, skipping.SkippedLines);
    }

    [Fact]
    public void GenerateSamplesDeterministically()
    {
        var lines = Enumerable.Range(1, 20).Select(i => $$"""{"question": "q{{i}}", "answer": "#### {{i}}"}""").ToArray();
        var task = Gsm8kTask.Load(Write(lines));
        var a = task.Generate(10, 1).Select(p => p.Id).ToList();
        Assert.Equal(a, task.Generate(10, 1).Select(p => p.Id));
        Assert.NotEqual(a, task.Generate(10, 2).Select(p => p.Id));
        Assert.Equal(10, a.Distinct().Count());
        Assert.Equal(20, task.Generate(20, 1).Select(p => p.Id).Distinct().Count());
        Assert.Throws<ArgumentOutOfRangeException>(() => task.Generate(21, 1));
        foreach (var p in task.Problems) Assert.True(task.Verify(p, task.Solve(p)).Correct);
    }

    [Fact]
    public void PromptTemplateWrapsTheQuestion()
    {
        var task = Gsm8kTask.FromPairs([("What is 2+2?", "#### 4")], new Gsm8kOptions { PromptTemplate = "Q: {question}\nA:" });
        Assert.Equal("Q: What is 2+2?\nA:", task.Problems[0].Prompt);
        Assert.Equal(string.Concat("Q: What is 2+2?\nA:#### 4".Distinct().Order()), task.Alphabet);
    }
}
