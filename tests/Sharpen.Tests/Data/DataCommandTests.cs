using System.CommandLine;
using System.Text.Json.Nodes;
using Sharpen.Cli.Commands;

namespace Sharpen.Tests.Data;

public sealed class DataCommandTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("sharpen-datacmd-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static (int Code, string Out, string Err) Run(params string[] args)
    {
        var root = new RootCommand { DataCommand.Create() };
        var output = new StringWriter();
        var error = new StringWriter();
        var code = root.Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void MakeWritesTrainAndTestFiles()
    {
        var outPath = Path.Combine(_dir, "countdown.jsonl");
        var (code, stdout, _) = Run("data", "make", "--task", "countdown", "--n", "40", "--seed", "3", "--out", outPath, "--split", "0.25");
        Assert.Equal(0, code);
        Assert.Equal(30, File.ReadAllLines(Path.Combine(_dir, "countdown.train.jsonl")).Length);
        Assert.Equal(10, File.ReadAllLines(Path.Combine(_dir, "countdown.test.jsonl")).Length);
        Assert.Contains("wrote 30 problems", stdout);
    }

    [Fact]
    public void MakeWithoutSplitWritesOneFile()
    {
        var outPath = Path.Combine(_dir, "arith.jsonl");
        var (code, _, _) = Run("data", "make", "--task", "arithmetic", "--n", "25", "--out", outPath);
        Assert.Equal(0, code);
        Assert.Equal(25, File.ReadAllLines(outPath).Length);
    }

    [Fact]
    public void Task_options_set_the_difficulty_and_a_misspelt_one_is_named()
    {
        var outPath = Path.Combine(_dir, "hard.jsonl");
        var (code, _, _) = Run("data", "make", "--task", "countdown", "--n", "30", "--out", outPath,
            "--task-option", "min_numbers=4", "--task-option", "max_numbers=4", "--task-option", "max_number=40");
        Assert.Equal(0, code);
        var rows = File.ReadAllLines(outPath).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(30, rows.Count);
        foreach (var row in rows)
        {
            var numbers = row["numbers"]!.GetValue<string>().Split(' ').Select(int.Parse).ToArray();
            Assert.Equal(4, numbers.Length);
            Assert.All(numbers, n => Assert.InRange(n, 1, 40));
        }
        var (bad, _, stderr) = Run("data", "make", "--task", "countdown", "--out", Path.Combine(_dir, "x.jsonl"), "--task-option", "max_numbrs=4");
        Assert.Equal(1, bad);
        Assert.Contains("max_numbrs", stderr);
        var (noEq, _, stderr2) = Run("data", "make", "--task", "countdown", "--out", Path.Combine(_dir, "y.jsonl"), "--task-option", "max_numbers");
        Assert.Equal(1, noEq);
        Assert.Contains("'max_numbers' is not key=value", stderr2);
    }

    [Fact]
    public void UnknownTaskFails()
    {
        var (code, _, stderr) = Run("data", "make", "--task", "sudoku", "--out", Path.Combine(_dir, "x.jsonl"));
        Assert.Equal(1, code);
        Assert.Contains("unknown task 'sudoku'", stderr);
    }
}
