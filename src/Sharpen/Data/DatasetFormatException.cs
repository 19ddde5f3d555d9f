using Sharpen.Tasks;
namespace Sharpen.Data;

/// <summary>
/// A line of a dataset file is malformed. The message reads <c>file:line: what is wrong (expected ...)</c>.
/// </summary>
public sealed class DatasetFormatException : Exception
{
    /// <summary>Creates the exception for line <paramref name="line"/> (1-based) of <paramref name="file"/>.</summary>
    public DatasetFormatException(string file, int line, string problem, string expected)
        : base($"{file}:{line}: {problem} (expected {expected})")
    {
        File = file;
        Line = line;
        Problem = problem;
        Expected = expected;
    }

    /// <summary>Creates the exception for the file as a whole (<see cref="Line"/> is 0): <c>file: what is wrong (expected ...)</c>.</summary>
    public DatasetFormatException(string file, string problem, string expected, Exception? inner = null)
        : base($"{file}: {problem} (expected {expected})", inner)
    {
        File = file;
        Problem = problem;
        Expected = expected;
    }

    /// <summary>The file as it was named to the loader.</summary>
    public string File { get; }

    /// <summary>1-based line number; 0 when the problem is the file as a whole.</summary>
    public int Line { get; }

    /// <summary>What is wrong with the line.</summary>
    public string Problem { get; }

    /// <summary>What the line should hold instead.</summary>
    public string Expected { get; }
}
