using Sharpen.Data;

namespace Sharpen.Tests.Data;

public sealed class JsonlDatasetTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("sharpen-data-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Write(params string[] lines)
    {
        var path = Path.Combine(_dir, "d.jsonl");
        File.WriteAllText(path, string.Join("\n", lines) + "\n");
        return path;
    }

    const string Good = """{"prompt": "3 5 7 -> 22:", "completion": " answer: 3*5+7"}""";

    [Fact]
    public void Prompt_files_take_rows_with_or_without_a_completion()
    {
        var path = Write(
            """{"prompt": "2+2=", "answer": "4", "level": 3}""",
            """{"prompt": "3+3=", "completion": "6"}""",
            """{"messages": [{"role": "user", "content": "hi"}]}""",
            """{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}""",
            """{"question": "no prompt here"}""");
        var e = Assert.Throws<DatasetFormatException>(() => JsonlDataset.LoadPrompts(path));
        Assert.Contains("d.jsonl:5", e.Message);
        var r = JsonlDataset.LoadPrompts(path, skipBadLines: true);
        Assert.Equal(1, r.SkippedLines);
        Assert.Equal(["2+2=", "3+3=", "<|user|>\nhi\n<|assistant|>\n", "<|user|>\nhi\n<|assistant|>\n"], r.Items.Select(x => x.Prompt));
        Assert.Equal(["", "6", "", "yo"], r.Items.Select(x => x.Completion));
        Assert.Equal("4", r.Items[0].Fields["answer"]);
        Assert.Equal("3", r.Items[0].Fields["level"]);   // non-strings as their JSON text
        Assert.False(r.Items[1].Fields.ContainsKey("completion"));
    }

    [Fact]
    public void ReadsPromptCompletionRowsWithExtraFields()
    {
        var path = Write("""{"prompt": "p", "completion": "c", "target": 22, "numbers": "3 5 7", "meta": {"k": [1, 2]}, "ok": true}""");
        var result = JsonlDataset.LoadSft(path);
        var e = Assert.Single(result.Items);
        Assert.Equal("p", e.Prompt);
        Assert.Equal("c", e.Completion);
        Assert.Equal("22", e.Fields["target"]);
        Assert.Equal("3 5 7", e.Fields["numbers"]);
        Assert.Equal("""{"k": [1, 2]}""", e.Fields["meta"]);
        Assert.Equal("true", e.Fields["ok"]);
        Assert.Equal(4, e.Fields.Count);
        Assert.Equal(0, result.SkippedLines);
    }

    [Fact]
    public void ConvertsMessagesWithTheChatTemplate()
    {
        var path = Write(
            """{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "answer": "4"}""",
            """{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye!"}]}""");
        var items = JsonlDataset.LoadSft(path).Items;
        Assert.Equal("<|system|>\nBe brief.\n<|user|>\n2+2?\n<|assistant|>\n", items[0].Prompt);
        Assert.Equal("4", items[0].Completion);
        Assert.Equal("4", items[0].Fields["answer"]);
        Assert.Equal("<|user|>\nHi\n<|assistant|>\nHello\n<|user|>\nBye\n<|assistant|>\n", items[1].Prompt);
        Assert.Equal("Bye!", items[1].Completion);
    }

    [Fact]
    public void ReadsConversationalPromptCompletion()
    {
        var path = Write("""{"prompt": [{"role": "user", "content": "Q"}], "completion": [{"role": "assistant", "content": "A"}]}""");
        var e = Assert.Single(JsonlDataset.LoadSft(path).Items);
        Assert.Equal("<|user|>\nQ\n<|assistant|>\n", e.Prompt);
        Assert.Equal("A", e.Completion);
    }

    [Theory]
    [InlineData("""{"prompt": "p", "completion": """, "not valid JSON")]
    [InlineData("""{"prompt": "p"}""", "key \"completion\" is missing")]
    [InlineData("""{"completion": "c"}""", "key \"prompt\" is missing")]
    [InlineData("""{"prompt": 5, "completion": "c"}""", "\"prompt\" is a number, not a string")]
    [InlineData("""{"prompt": "p", "completion": null}""", "\"completion\" is null, not a string")]
    [InlineData("""{"prompt": "  ", "completion": "c"}""", "\"prompt\" is empty")]
    [InlineData("""["prompt", "completion"]""", "the line is an array, not a JSON object")]
    [InlineData("""{"messages": [{"role": "user", "content": "Q"}]}""", "\"messages\" has no message with role \"assistant\"")]
    [InlineData("""{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}, {"role": "user", "content": "more"}]}""", "\"messages\" continues after the last assistant message")]
    [InlineData("""{"messages": [{"role": "assistant", "content": "A"}]}""", "the prompt is empty")]
    [InlineData("""{"messages": [{"role": "user"}, {"role": "assistant", "content": "A"}]}""", "\"messages\"[0] has no \"content\"")]
    [InlineData("""{"messages": "hello"}""", "\"messages\" is a string, not a list of messages")]
    public void MalformedLineThreeIsNamed(string line, string what)
    {
        var path = Write(Good, "", line);                      // the blank line 2 still counts
        var e = Assert.Throws<DatasetFormatException>(() => JsonlDataset.LoadSft(path));
        Assert.StartsWith($"{path}:3: ", e.Message);
        Assert.Contains(what, e.Message);
        Assert.Contains("(expected {\"prompt\": string, \"completion\": string}", e.Message);
        Assert.Equal(3, e.Line);
        Assert.Equal(path, e.File);
    }

    [Fact]
    public void SkipBadLinesCountsAndReports()
    {
        var path = Write(Good, """{"prompt": "p"}""", "", "not json", Good, "   ");
        var result = JsonlDataset.LoadSft(path, skipBadLines: true);
        Assert.Equal(2, result.Items.Count);
        Assert.Equal(2, result.SkippedLines);
        Assert.Equal(2, result.Errors.Count);
        Assert.StartsWith($"{path}:2: ", result.Errors[0]);
        Assert.StartsWith($"{path}:4: ", result.Errors[1]);
    }

    [Fact]
    public void ReportsAtMostTenErrorsButCountsAll()
    {
        var path = Write(Enumerable.Repeat("{}", 15).Append(Good).ToArray());
        var result = JsonlDataset.LoadSft(path, skipBadLines: true);
        Assert.Single(result.Items);
        Assert.Equal(15, result.SkippedLines);
        Assert.Equal(10, result.Errors.Count);
        Assert.StartsWith($"{path}:10: ", result.Errors[9]);
    }

    [Fact]
    public void ReadsPreferencePairs()
    {
        var path = Write(
            """{"prompt": "2+2=", "chosen": "4", "rejected": "5", "id": 7}""",
            """{"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}]}""");
        var items = JsonlDataset.LoadPreferences(path).Items;
        Assert.Equal(("2+2=", "4", "5"), (items[0].Prompt, items[0].Chosen, items[0].Rejected));
        Assert.Equal("7", items[0].Fields["id"]);
        Assert.Equal(("<|user|>\n2+2?\n<|assistant|>\n", "4", "5"), (items[1].Prompt, items[1].Chosen, items[1].Rejected));
    }

    [Fact]
    public void PreferenceErrorsNameTheLine()
    {
        var path = Write("""{"prompt": "p", "chosen": "c", "rejected": "r"}""", """{"prompt": "p", "chosen": "c"}""");
        var e = Assert.Throws<DatasetFormatException>(() => JsonlDataset.LoadPreferences(path));
        Assert.StartsWith($"{path}:2: key \"rejected\" is missing (expected {{\"prompt\": string, \"chosen\": string, \"rejected\": string}}", e.Message);
    }

    [Fact]
    public void ReadsUtf8WithBom()
    {
        var path = Path.Combine(_dir, "bom.jsonl");
        File.WriteAllText(path, """{"prompt": "é", "completion": "ü"}""" + "\n", new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: true));
        var e = Assert.Single(JsonlDataset.LoadSft(path).Items);
        Assert.Equal(("é", "ü"), (e.Prompt, e.Completion));
    }
}
