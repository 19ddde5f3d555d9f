using Sharpen.Data;
using Sharpen.Tests.Tokenizers;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Data;

/// <summary>
/// TRL's dataset shapes read from real JSONL files: language modeling, content parts, tools and tool calls,
/// reasoning_content, unpaired rows made from pairs, stepwise supervision. Expected texts are written out by hand from
/// the templates' source.
/// </summary>
public sealed class TrlDatasetFormatsTests
{
    static string Template(string name) => File.ReadAllText(RepoPaths.Of("tests", "Sharpen.Tests", "Tokenizers", "ChatTemplates", name));

    static string Write(TempDir dir, string name, params string[] lines)
    {
        var file = dir.File(name);
        File.WriteAllText(file, string.Join("\n", lines) + "\n");
        return file;
    }

    const string QwenSystem = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n";

    [Fact]
    public void Language_modeling_text_rows_are_the_whole_text()
    {
        using var dir = new TempDir();
        var file = Write(dir, "lm.jsonl", """{"text": "The sky is blue.", "source": "wiki"}""", """{"prompt": "a", "completion": "b"}""");
        var rows = JsonlDataset.LoadSft(file).Items;
        Assert.Equal(SftShape.Text, rows[0].Shape);
        Assert.Equal("", rows[0].Prompt);
        Assert.Equal("The sky is blue.", rows[0].Completion);
        Assert.Equal("wiki", rows[0].Fields["source"]);
        Assert.Equal(SftShape.PromptCompletion, rows[1].Shape);
        var bad = Write(dir, "bad.jsonl", """{"text": ["x"]}""");
        var e = Assert.Throws<DatasetFormatException>(() => JsonlDataset.LoadSft(bad));
        Assert.Contains("bad.jsonl:1", e.Message);
        Assert.Contains("\"text\" is an array", e.Message);
    }

    [Fact]
    public void Content_parts_reach_the_template_as_parts_and_the_plain_format_as_joined_text()
    {
        using var dir = new TempDir();
        var file = Write(dir, "parts.jsonl",
            """{"prompt": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "completion": [{"role": "assistant", "content": "c"}]}""");
        var t = HfChatTemplate.Create("{% for m in messages %}{{ m.role }}:{% if m.content is string %}{{ m.content }}{% else %}{% for p in m.content %}[{{ p.text }}]{% endfor %}{% endif %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}");
        var row = Assert.Single(JsonlDataset.LoadSft(file, chat: ChatFormat.FromTemplate(t)).Items);
        Assert.Equal("user:[a][b]\nassistant:", row.Prompt);
        // render(prompt + answer) = "user:[a][b]\nassistant:c\n"; minus render(prompt) without the generation prompt.
        Assert.Equal("c\n", row.Completion);
        var plain = Assert.Single(JsonlDataset.LoadSft(file).Items);
        Assert.Equal("<|user|>\nab\n<|assistant|>\n", plain.Prompt);
        Assert.Equal("c", plain.Completion);
    }

    [Fact]
    public void An_image_part_is_an_error_naming_file_line_and_part()
    {
        using var dir = new TempDir();
        var file = Write(dir, "img.jsonl", """{"prompt": "p", "completion": "c"}""",
            """{"messages": [{"role": "user", "content": [{"type": "image", "image": "cat.png"}, {"type": "text", "text": "What is it?"}]}, {"role": "assistant", "content": "A cat."}]}""");
        var e = Assert.Throws<DatasetFormatException>(() => JsonlDataset.LoadSft(file));
        Assert.Contains("img.jsonl:2", e.Message);
        Assert.Contains("\"messages\"[0].content[0] has type \"image\"", e.Message);
    }

    [Fact]
    public void Tools_and_tool_calls_are_rendered_by_the_qwen25_template()
    {
        using var dir = new TempDir();
        var file = Write(dir, "tools.jsonl",
            """{"messages": [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}, {"role": "tool", "content": "18C"}, {"role": "assistant", "content": "It is 18C."}], "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]}""");
        var chat = ChatFormat.FromTemplate(HfChatTemplate.Create(Template("qwen2.5.jinja")));
        var row = Assert.Single(JsonlDataset.LoadSft(file, chat: chat).Items);
        const string header = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n" +
            "You may call one or more functions to assist with the user query.\n\n" +
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
            "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {}}}\n</tools>\n\n" +
            "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n" +
            "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n";
        const string call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n";
        Assert.Equal(header + "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n" + call +
                     "<|im_start|>user\n<tool_response>\n18C\n</tool_response><|im_end|>\n<|im_start|>assistant\n", row.Prompt);
        Assert.Equal("It is 18C.<|im_end|>\n", row.Completion);
        Assert.False(row.Fields.ContainsKey("tools"));
        // Both assistant turns are located: the tool call and the answer.
        var whole = row.Prompt + row.Completion;
        Assert.Equal([call, "It is 18C.<|im_end|>\n"], row.AssistantSpans!.Select(s => whole[s.Start..s.End]));

        // Without a template, tools and tool calls are refused rather than dropped.
        var e = Assert.Throws<DatasetFormatException>(() => JsonlDataset.LoadSft(file));
        Assert.Contains("tools.jsonl:1", e.Message);
        Assert.Contains("\"tools\"", e.Message);
        var noTools = Write(dir, "calls.jsonl",
            """{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {}}}]}]}""");
        e = Assert.Throws<DatasetFormatException>(() => JsonlDataset.LoadSft(noTools));
        Assert.Contains("calls.jsonl:1", e.Message);
        Assert.Contains("\"tool_calls\"", e.Message);
    }

    [Fact]
    public void Reasoning_content_is_rendered_as_qwen3_renders_it()
    {
        using var dir = new TempDir();
        var file = Write(dir, "think.jsonl",
            """{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4", "reasoning_content": "Add two and two."}]}""");
        var chat = ChatFormat.FromTemplate(HfChatTemplate.Create(Template("qwen3.jinja")));
        var row = Assert.Single(JsonlDataset.LoadSft(file, chat: chat).Items);
        Assert.Equal("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n", row.Prompt);
        Assert.Equal("<think>\nAdd two and two.\n</think>\n\n4<|im_end|>\n", row.Completion);
        var e = Assert.Throws<DatasetFormatException>(() => JsonlDataset.LoadSft(file));
        Assert.Contains("think.jsonl:1", e.Message);
        Assert.Contains("\"reasoning_content\"", e.Message);
    }

    [Fact]
    public void Unpaired_files_take_pairs_with_explicit_and_implicit_prompts()
    {
        using var dir = new TempDir();
        var file = Write(dir, "kto.jsonl",
            """{"prompt": "Q1", "completion": "ok", "label": true}""",
            """{"prompt": "Q2", "chosen": "good", "rejected": "bad"}""",
            """{"chosen": [{"role": "user", "content": "Q3"}, {"role": "assistant", "content": "yes"}], "rejected": [{"role": "user", "content": "Q3"}, {"role": "assistant", "content": "no"}]}""",
            """{"prompt": [{"role": "user", "content": "Q4"}], "completion": [{"role": "assistant", "content": "fine"}], "label": false}""");
        var chat = ChatFormat.FromTemplate(HfChatTemplate.Create(Template("qwen2.5.jinja")));
        var rows = JsonlDataset.LoadUnpaired(file, chat: chat).Items;
        Assert.Equal(6, rows.Count);
        Assert.Equal(("Q1", "ok", true), (rows[0].Prompt, rows[0].Completion, rows[0].Desirable));
        Assert.Equal(("Q2", "good", true), (rows[1].Prompt, rows[1].Completion, rows[1].Desirable));
        Assert.Equal(("Q2", "bad", false), (rows[2].Prompt, rows[2].Completion, rows[2].Desirable));
        const string q3 = QwenSystem + "<|im_start|>user\nQ3<|im_end|>\n<|im_start|>assistant\n";
        Assert.Equal((q3, "yes<|im_end|>\n", true), (rows[3].Prompt, rows[3].Completion, rows[3].Desirable));
        Assert.Equal((q3, "no<|im_end|>\n", false), (rows[4].Prompt, rows[4].Completion, rows[4].Desirable));
        Assert.Equal((QwenSystem + "<|im_start|>user\nQ4<|im_end|>\n<|im_start|>assistant\n", "fine<|im_end|>\n", false),
            (rows[5].Prompt, rows[5].Completion, rows[5].Desirable));
    }

    [Fact]
    public void Stepwise_supervision_rows_use_trl_completions_key()
    {
        using var dir = new TempDir();
        var file = Write(dir, "prm.jsonl",
            """{"prompt": "Which is larger, 9.8 or 9.11?", "completions": ["11 is greater than 8.", "So 9.11 is larger."], "labels": [false, false]}""",
            """{"prompt": "1+1?", "steps": ["1+1=2."], "labels": [true]}""");
        var rows = StepLabelledExample.Load(file).Items;
        Assert.Equal(["11 is greater than 8.", "So 9.11 is larger."], rows[0].Steps);
        Assert.Equal([0.0, 0.0], rows[0].Labels);
        Assert.Empty(rows[0].Fields);
        Assert.Equal([1.0], rows[1].Labels);
        var bad = Write(dir, "bad.jsonl", """{"prompt": "p", "completions": ["a", "b"], "labels": [true]}""");
        var e = Assert.Throws<DatasetFormatException>(() => StepLabelledExample.Load(bad));
        Assert.Contains("bad.jsonl:1", e.Message);
        Assert.Contains("\"labels\" has 1 items but \"completions\" has 2", e.Message);
    }
}
