using System.Text.Encodings.Web;
using System.Text.Json;
using Sharpen.Tasks;

namespace Sharpen.Data;

/// <summary>
/// Writes datasets as JSONL, one <c>{"prompt", "completion", ...fields}</c> object per line, UTF-8 without BOM.
/// Every file is written to a temporary file beside it and renamed into place, so a reader never sees half a file.
/// </summary>
public static class DatasetWriter
{
    static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The SFT example for a problem: its prompt, the task's worked solution, and as fields the
    /// problem's <c>id</c>, <c>answer</c> and its own fields.</summary>
    public static SftExample ToSftExample(IVerifiableTask task, Problem problem)
    {
        var fields = new Dictionary<string, string> { ["id"] = problem.Id, ["answer"] = problem.Answer };
        foreach (var (k, v) in problem.Fields) fields[k] = v;
        return new SftExample(problem.Prompt, task.Solve(problem), fields);
    }

    /// <summary>Writes <paramref name="examples"/> to <paramref name="path"/> atomically; returns the row count.
    /// Fields named <c>prompt</c> or <c>completion</c> are not written (the example's own values win).</summary>
    public static int WriteSft(string path, IEnumerable<SftExample> examples)
    {
        var count = 0;
        WriteAtomically(path, stream =>
        {
            var newline = "\n"u8.ToArray();
            foreach (var e in examples)
            {
                using (var w = new Utf8JsonWriter(stream, WriterOptions))
                {
                    w.WriteStartObject();
                    w.WriteString("prompt", e.Prompt);
                    w.WriteString("completion", e.Completion);
                    foreach (var (k, v) in e.Fields)
                        if (k is not ("prompt" or "completion")) w.WriteString(k, v);
                    w.WriteEndObject();
                }
                stream.Write(newline);
                count++;
            }
        });
        return count;
    }

    /// <summary>
    /// Generates <paramref name="n"/> distinct problems of <paramref name="task"/> from <paramref name="seed"/>, solves
    /// them, checks each solution with the task's verifier, and writes them to <paramref name="outPath"/>; with
    /// <paramref name="testFraction"/> &gt; 0 writes <c>name.train.jsonl</c> and <c>name.test.jsonl</c> beside it instead
    /// (the test file gets round(n·fraction) rows, at least 1). Problems are distinct by <see cref="Problem.Id"/>
    /// across both files, so train and test never share one.
    /// </summary>
    public static MakeDatasetResult MakeDataset(IVerifiableTask task, int n, int seed, string outPath, double testFraction = 0)
    {
        if (!(testFraction >= 0 && testFraction < 1)) throw new ArgumentOutOfRangeException(nameof(testFraction), "must be in [0, 1)");
        var testCount = testFraction == 0 ? 0 : Math.Max(1, (int)Math.Round(n * testFraction));
        return MakeDataset(task, n, seed, outPath, testCount);
    }

    /// <summary>As <see cref="MakeDataset(IVerifiableTask,int,int,string,double)"/> with an exact test size
    /// (<paramref name="testCount"/> = 0: one file, no split).</summary>
    public static MakeDatasetResult MakeDataset(IVerifiableTask task, int n, int seed, string outPath, int testCount)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(n);
        ArgumentOutOfRangeException.ThrowIfNegative(testCount);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(testCount, n);

        var (problems, duplicates) = Distinct(task, n, seed);
        var examples = problems.Select(p =>
        {
            var e = ToSftExample(task, p);
            var verdict = task.Verify(p, e.Completion);
            if (!verdict.Correct)
                throw new InvalidOperationException($"{task.Name}: the solver's solution for {p.Id} does not verify ({verdict.Reason}): {e.Completion}");
            return e;
        }).ToList();

        if (testCount == 0)
        {
            WriteSft(outPath, examples);
            return new MakeDatasetResult([outPath], examples.Count, 0, n, duplicates);
        }
        // When the task ran out of distinct problems, keep the asked-for share for test.
        var test = examples.Count == n ? testCount : Math.Max(1, (int)Math.Round((double)testCount * examples.Count / n));
        if (test >= examples.Count) throw new InvalidOperationException($"{task.Name}: only {examples.Count} distinct problems, too few to split");
        var (trainPath, testPath) = SplitPaths(outPath);
        WriteSft(trainPath, examples.Take(examples.Count - test));
        WriteSft(testPath, examples.Skip(examples.Count - test));
        return new MakeDatasetResult([trainPath, testPath], examples.Count - test, test, n, duplicates);
    }

    /// <summary><c>dir/name.jsonl</c> → (<c>dir/name.train.jsonl</c>, <c>dir/name.test.jsonl</c>).</summary>
    public static (string Train, string Test) SplitPaths(string outPath)
    {
        var dir = Path.GetDirectoryName(outPath) ?? "";
        var stem = Path.GetFileNameWithoutExtension(outPath);
        var ext = Path.GetExtension(outPath);
        if (ext.Length == 0) ext = ".jsonl";
        return (Path.Combine(dir, stem + ".train" + ext), Path.Combine(dir, stem + ".test" + ext));
    }

    /// <summary>Up to <paramref name="n"/> problems with distinct ids, in generation order. Generates in rounds from
    /// seeds derived from <paramref name="seed"/> and stops early when a round finds nothing new.</summary>
    static (List<Problem> Problems, int Duplicates) Distinct(IVerifiableTask task, int n, int seed)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var kept = new List<Problem>(n);
        var duplicates = 0;
        for (var round = 0; round < 16 && kept.Count < n; round++)
        {
            var before = kept.Count;
            var roundSeed = unchecked(seed + round * 1_000_003);   // deterministic; round 0 is the seed itself
            foreach (var p in task.Generate(n, roundSeed))
            {
                if (kept.Count == n) break;
                if (seen.Add(p.Id)) kept.Add(p);
                else duplicates++;
            }
            if (kept.Count == before) break;
        }
        return (kept, duplicates);
    }

    static void WriteAtomically(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var temp = Path.Combine(dir, "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}
