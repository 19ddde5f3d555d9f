namespace Sharpen.Data;

/// <summary>The rows read from a dataset file.</summary>
/// <param name="Items">The well-formed rows, in file order.</param>
/// <param name="SkippedLines">How many malformed lines were skipped (only with <c>skipBadLines</c>).</param>
/// <param name="Errors">The messages of the first <see cref="JsonlDataset.MaxReportedErrors"/> skipped lines.</param>
public sealed record LoadResult<T>(IReadOnlyList<T> Items, int SkippedLines, IReadOnlyList<string> Errors);
