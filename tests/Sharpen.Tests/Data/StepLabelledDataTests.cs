using Sharpen.Data;

namespace Sharpen.Tests.Data;

public class StepLabelledDataTests
{
    [Fact]
    public void Reads_boolean_and_numeric_labels_and_keeps_extra_keys()
    {
        using var dir = new TempDir();
        var path = dir.File("steps.jsonl");
        File.WriteAllLines(path,
        [
            """{"prompt": "3 5 -> 8:", "steps": ["3+5=8, ", "answer: 3+5"], "labels": [true, false], "id": "x", "numbers": [3, 5]}""",
            "",
            """{"prompt": "p", "steps": ["a\n"], "labels": [0.25]}""",
        ]);
        var rows = StepLabelledExample.Load(path).Items;
        Assert.Equal(2, rows.Count);
        Assert.Equal(["3+5=8, ", "answer: 3+5"], rows[0].Steps);
        Assert.Equal([1.0, 0.0], rows[0].Labels);
        Assert.Equal("x", rows[0].Fields["id"]);
        Assert.Equal("[3, 5]", rows[0].Fields["numbers"]);
        Assert.Equal([0.25], rows[1].Labels);
    }

    [Theory]
    [InlineData("""{"prompt": "p", "steps": ["a", "b"], "labels": [1]}""", "\"labels\" has 1 items but \"steps\" has 2")]
    [InlineData("""{"prompt": "p", "steps": ["a"], "labels": [1.5]}""", "\"labels\"[0] is 1.5, not in [0, 1]")]
    [InlineData("""{"prompt": "p", "steps": ["a"], "labels": ["yes"]}""", "\"labels\"[0] is a string, not a boolean or a number")]
    [InlineData("""{"prompt": "p", "steps": "a", "labels": [1]}""", "\"steps\" is a string, not a list of strings")]
    [InlineData("""{"prompt": "p", "steps": [], "labels": []}""", "\"steps\" is empty")]
    [InlineData("""{"prompt": "p", "steps": ["a", ""], "labels": [1, 1]}""", "\"steps\"[1] is empty")]
    [InlineData("""{"steps": ["a"], "labels": [1]}""", "key \"prompt\" is missing")]
    public void A_bad_line_is_an_error_naming_file_line_and_problem(string line, string problem)
    {
        using var dir = new TempDir();
        var path = dir.File("bad.jsonl");
        File.WriteAllLines(path, ["""{"prompt": "ok", "steps": ["a"], "labels": [true]}""", line]);
        var e = Assert.Throws<DatasetFormatException>(() => StepLabelledExample.Load(path));
        Assert.StartsWith($"{path}:2: ", e.Message);
        Assert.Contains(problem, e.Message);
        Assert.Contains("expected", e.Message);

        var skipped = StepLabelledExample.Load(path, skipBadLines: true);
        Assert.Single(skipped.Items);
        Assert.Equal(1, skipped.SkippedLines);
    }

    [Fact]
    public void Writes_rows_that_read_back_with_hard_labels_as_booleans()
    {
        using var dir = new TempDir();
        var path = dir.File("out/rows.jsonl");
        var fields = new Dictionary<string, string> { ["id"] = "q1", ["soft_labels"] = StepLabelledExample.JsonList([0.75, 0.0]) };
        StepLabelledExample[] rows = [new("2+2:", ["2+2=4\n", "answer 4"], [0.75, 0.0], fields)];
        Assert.Equal(1, StepLabelledExample.Write(path, rows));
        var back = Assert.Single(StepLabelledExample.Load(path).Items);
        Assert.Equal(rows[0].Steps, back.Steps);
        Assert.Equal([0.75, 0.0], back.Labels);
        Assert.Equal("[0.75,0]", back.Fields["soft_labels"]);   // written as a JSON list, kept as its raw text

        StepLabelledExample.Write(path, rows, hardLabels: true);
        Assert.Contains("\"labels\":[true,false]", File.ReadAllText(path));
        Assert.Equal([1.0, 0.0], Assert.Single(StepLabelledExample.Load(path).Items).Labels);
    }

    [Fact]
    public void Outcome_rows_take_a_label_or_a_reward_in_0_1()
    {
        using var dir = new TempDir();
        var path = dir.File("outcomes.jsonl");
        File.WriteAllLines(path,
        [
            """{"prompt": "p", "completion": "a", "label": 1, "id": "7"}""",
            """{"prompt": "p", "completion": "b", "label": false}""",
            """{"prompt": "p", "completion": "c", "reward": 0.5}""",
            """{"prompt": "p", "completion": "d"}""",
            """{"prompt": "p", "completion": "e", "reward": 2}""",
        ]);
        var e = Assert.Throws<DatasetFormatException>(() => OutcomeExample.Load(path));
        Assert.StartsWith($"{path}:4: neither \"label\" nor \"reward\"", e.Message);
        var loaded = OutcomeExample.Load(path, skipBadLines: true);
        Assert.Equal([1.0, 0.0, 0.5], loaded.Items.Select(x => x.Label));
        Assert.Equal("7", loaded.Items[0].Fields["id"]);
        Assert.Equal(2, loaded.SkippedLines);
        Assert.Contains("\"reward\" is 2, not in [0, 1]", loaded.Errors[1]);
    }
}
