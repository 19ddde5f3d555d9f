using System.Text;
using Sharpen.Data;
using Sharpen.Tasks;

namespace Sharpen.Tests.Data;

public sealed class DatasetWriterTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("sharpen-writer-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void WritesOneCompactObjectPerLine()
    {
        var path = Path.Combine(_dir, "sub", "out.jsonl");
        var rows = new[]
        {
            new SftExample("3 5 7 -> 22:", " 5*3=15, 15+7=22. answer: 5*3+7", new Dictionary<string, string> { ["target"] = "22" }),
            new SftExample("say \"é\"\n", "ok", new Dictionary<string, string> { ["prompt"] = "ignored" }),
        };
        Assert.Equal(2, DatasetWriter.WriteSft(path, rows));
        var bytes = File.ReadAllBytes(path);
        Assert.NotEqual(0xEF, bytes[0]);                                   // no BOM
        Assert.Equal(
            "{\"prompt\":\"3 5 7 -> 22:\",\"completion\":\" 5*3=15, 15+7=22. answer: 5*3+7\",\"target\":\"22\"}\n" +
            "{\"prompt\":\"say \\\"é\\\"\\n\",\"completion\":\"ok\"}\n",
            Encoding.UTF8.GetString(bytes));
        Assert.Single(Directory.GetFiles(Path.Combine(_dir, "sub")));      // no temp file left behind

        var back = JsonlDataset.LoadSft(path).Items;
        Assert.Equal("say \"é\"\n", back[1].Prompt);
        Assert.Equal("22", back[0].Fields["target"]);
    }

    [Fact]
    public void OverwritesAnExistingFile()
    {
        var path = Path.Combine(_dir, "x.jsonl");
        File.WriteAllText(path, "old content that is longer than the new one\n");
        DatasetWriter.WriteSft(path, [new SftExample("p", "c", new Dictionary<string, string>())]);
        Assert.Equal("{\"prompt\":\"p\",\"completion\":\"c\"}\n", File.ReadAllText(path));
    }

    [Fact]
    public void SplitNeverSharesAProblem()
    {
        var task = new CountdownTask();
        var result = DatasetWriter.MakeDataset(task, 400, 1, Path.Combine(_dir, "countdown.jsonl"), testFraction: 0.1);
        Assert.Equal([Path.Combine(_dir, "countdown.train.jsonl"), Path.Combine(_dir, "countdown.test.jsonl")], result.Files);
        Assert.Equal((360, 40, 400), (result.TrainCount, result.TestCount, result.Requested));

        var train = JsonlDataset.LoadSft(result.Files[0]).Items;
        var test = JsonlDataset.LoadSft(result.Files[1]).Items;
        Assert.Equal(360, train.Count);
        Assert.Equal(40, test.Count);
        var trainKeys = train.Select(Key).ToHashSet();
        var testKeys = test.Select(Key).ToHashSet();
        Assert.Equal(360, trainKeys.Count);
        Assert.Equal(40, testKeys.Count);
        Assert.Empty(trainKeys.Intersect(testKeys));
        Assert.False(File.Exists(Path.Combine(_dir, "countdown.jsonl")));

        // Each row carries its ground truth, and its completion verifies against it.
        foreach (var e in train.Concat(test))
        {
            var problem = new Problem(e.Fields["id"], e.Prompt, e.Fields["answer"], e.Fields);
            Assert.True(task.Verify(problem, e.Completion).Correct);
        }
    }

    // Canonical key worked out from the row itself: sorted numbers and target.
    static string Key(SftExample e) =>
        string.Join(",", e.Fields["numbers"].Split(' ').Select(int.Parse).Order()) + "->" + e.Fields["target"];

    [Fact]
    public void SameSeedSameBytes()
    {
        var a = Path.Combine(_dir, "a.jsonl");
        var b = Path.Combine(_dir, "b.jsonl");
        DatasetWriter.MakeDataset(new ArithmeticTask(), 100, 9, a);
        DatasetWriter.MakeDataset(new ArithmeticTask(), 100, 9, b);
        Assert.Equal(File.ReadAllBytes(a), File.ReadAllBytes(b));
        Assert.Equal(100, File.ReadAllLines(a).Length);
    }

    [Fact]
    public void ReportsWhenTheTaskRunsOutOfDistinctProblems()
    {
        // Game24 with numbers 1..3 has at most C(3+4-1, 4) = 15 multisets of four numbers.
        var task = new Game24Task(new Game24Options { MaxNumber = 3 });
        var result = DatasetWriter.MakeDataset(task, 100, 1, Path.Combine(_dir, "g.jsonl"), testCount: 0);
        Assert.InRange(result.TrainCount, 1, 15);
        Assert.Equal(100, result.Requested);
        var ids = File.ReadAllLines(result.Files[0]).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("id").GetString()).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }

    [Fact]
    public void SplitPathsInsertTrainAndTest() =>
        Assert.Equal((Path.Combine("data", "c.train.jsonl"), Path.Combine("data", "c.test.jsonl")),
            DatasetWriter.SplitPaths(Path.Combine("data", "c.jsonl")));
}
