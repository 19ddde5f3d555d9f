using System.CommandLine;
using Sharpen.Cli;
using Sharpen.Cli.Commands;

namespace Sharpen.Tests.Cli;

/// <summary>What the CLI tests share: running a command with the console captured, and a tiny preference-pair file.</summary>
static class CliHarness
{
    /// <summary>Invokes <paramref name="cmd"/> with <paramref name="args"/>; returns the exit code and what it wrote.</summary>
    public static (int Code, string Out, string Err) Invoke(Command cmd, params string[] args) => Captured(() => cmd.Parse(args).Invoke());

    /// <summary>Runs the whole CLI (<see cref="SharpenCli.Run"/>, as the <c>sharpen</c> tool does) with <paramref name="args"/>;
    /// returns the exit code and what it wrote, and turns <c>--debug</c>'s stack traces off again afterwards.</summary>
    public static (int Code, string Out, string Err) Root(params string[] args)
    {
        try { return Captured(() => SharpenCli.Run(args)); }
        finally { CliErrors.ShowStackTraces = false; }
    }

    static (int Code, string Out, string Err) Captured(Func<int> run)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try { return (run(), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    /// <summary>
    /// Writes 4 lines over the alphabet "abcd": two text pairs, a ranked list of 3 (3 pairs) and one malformed line,
    /// so a loader with skip_bad_lines reads 5 pairs and skips 1.
    /// </summary>
    public static void WritePairs(string path) => File.WriteAllLines(path,
    [
        """{"prompt": "ab", "chosen": "cd", "rejected": "dc"}""",
        """{"prompt": "ba", "chosen": "dd", "rejected": "cc", "score_chosen": 1}""",
        """{"prompt": "cab", "completions": ["a", "bb", "c"], "ranks": [2, 1, 3]}""",
        "this line is bad",
    ]);
}
