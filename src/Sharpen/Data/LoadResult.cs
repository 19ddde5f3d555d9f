namespace Sharpen.Data;

/// <summary>The rows read from a dataset file.</summary>
/// <param name="Items">The well-formed rows, in file order.</param>
/// <param name="SkippedLines">How many malformed lines were skipped (only with <c>skipBadLines</c>).</param>
/// <param name="Errors">The messages of the first <see cref="JsonlDataset.MaxReportedErrors"/> skipped lines.</param>
public sealed record LoadResult<T>(IReadOnlyList<T> Items, int SkippedLines, IReadOnlyList<string> Errors)
{
    /// <summary>Tells <paramref name="log"/> how many lines of <paramref name="path"/> were skipped (if any) and the first error; returns this.</summary>
    public LoadResult<T> Reported(string path, Action<string>? log)
    {
        if (SkippedLines > 0) log?.Invoke($"{path}: skipped {SkippedLines} malformed lines; first: {Errors.FirstOrDefault()}");
        return this;
    }
}
