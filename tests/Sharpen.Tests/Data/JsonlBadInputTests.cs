using System.Text;
using Sharpen.Data;

namespace Sharpen.Tests.Data;

/// <summary>Bytes and escapes that are not text are bad lines: counted, named file:line, skipped only when asked.</summary>
public class JsonlBadInputTests
{
    [Fact]
    public void Invalid_utf8_is_a_bad_line_not_a_replacement_character()
    {
        using var dir = new TempDir();
        var good = Encoding.UTF8.GetBytes("{\"prompt\": \"ab\", \"completion\": \"c\"}\n");
        var bad = Encoding.UTF8.GetBytes("{\"prompt\": \"a\", \"completion\": \"X\"}\n");
        bad[Array.IndexOf(bad, (byte)'X')] = 0xC3;                      // a lead byte with no continuation: not UTF-8
        File.WriteAllBytes(dir.File("d.jsonl"), [.. good, .. bad, .. good]);

        var e = Assert.Throws<DatasetFormatException>(() => JsonlDataset.LoadSft(dir.File("d.jsonl")));
        Assert.Equal(2, e.Line);
        Assert.Contains("d.jsonl:2: the line is not valid UTF-8", e.Message);

        var loaded = JsonlDataset.LoadSft(dir.File("d.jsonl"), skipBadLines: true);
        Assert.Equal(2, loaded.Items.Count);
        Assert.Equal(1, loaded.SkippedLines);
        Assert.DoesNotContain(loaded.Items, x => x.Completion.Contains('\uFFFD'));
    }

    [Fact]
    public void A_lone_surrogate_escape_is_a_counted_bad_line_with_skip_bad_lines()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("d.jsonl"), "{\"prompt\": \"a\\ud800\", \"completion\": \"b\"}\n{\"prompt\": \"ab\", \"completion\": \"c\"}\n{\"prompt\": \"x\", \"completion\": \"y\", \"\\udc00k\": 1}\n");
        var loaded = JsonlDataset.LoadSft(dir.File("d.jsonl"), skipBadLines: true);
        Assert.Single(loaded.Items);
        Assert.Equal(2, loaded.SkippedLines);
        Assert.StartsWith(dir.File("d.jsonl") + ":1: \"prompt\": an escape that is not valid UTF-16", loaded.Errors[0]);
        Assert.StartsWith(dir.File("d.jsonl") + ":3: a key of the row", loaded.Errors[1]);
    }

    [Fact]
    public void An_empty_file_and_a_file_of_only_bad_lines_are_errors_naming_the_file()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("empty.jsonl"), "\n  \n");
        var e = Assert.Throws<DatasetFormatException>(() => JsonlDataset.LoadSft(dir.File("empty.jsonl")));
        Assert.StartsWith(dir.File("empty.jsonl") + ": the file has no rows", e.Message);
        File.WriteAllText(dir.File("bad.jsonl"), "nope\n[1]\n");
        var e2 = Assert.Throws<DatasetFormatException>(() => JsonlDataset.LoadSft(dir.File("bad.jsonl"), skipBadLines: true));
        Assert.StartsWith(dir.File("bad.jsonl") + ": all 2 rows are malformed", e2.Message);
    }

    [Fact]
    public void Crlf_endings_a_bom_and_a_missing_final_newline_still_read()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("d.jsonl"), [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("{\"prompt\": \"é\", \"completion\": \"c\"}\r\n{\"prompt\": \"b\", \"completion\": \"d\"}")]);
        var loaded = JsonlDataset.LoadSft(dir.File("d.jsonl"));
        Assert.Equal(["é", "b"], loaded.Items.Select(x => x.Prompt));
        Assert.Equal(["c", "d"], loaded.Items.Select(x => x.Completion));
    }
}
