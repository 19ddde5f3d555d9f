using System.Text.Json;
using Sharpen.Data;
using Sharpen.Tests.Tokenizers;
using Sharpen.Tokenizers;
using Sharpen.Tokenizers.Jinja;

namespace Sharpen.Tests.Data;

/// <summary>Chat templates in use: datasets, BOS handling, assistant masks, errors and limits. Expected texts are written by hand.</summary>
public sealed class ChatFormatTests
{
    // ChatML as Qwen2.5 / SmolLM2 use it, trimmed to the essentials.
    const string ChatMl = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}" +
                          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    static Dictionary<string, object?> M(string role, string content) => new() { ["role"] = role, ["content"] = content };

    [Fact]
    public void Sft_rows_with_messages_render_prompt_and_completion_with_the_template()
    {
        using var dir = new TempDir();
        var file = dir.File("sft.jsonl");
        File.WriteAllText(file, """{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}""" + "\n");
        var chat = ChatFormat.FromTemplate(HfChatTemplate.Create(ChatMl));
        var row = Assert.Single(JsonlDataset.LoadSft(file, chat: chat).Items);
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", row.Prompt);
        Assert.Equal("Hello!<|im_end|>\n", row.Completion);
        // Without a template, the plain format (unchanged behaviour).
        var plain = Assert.Single(JsonlDataset.LoadSft(file).Items);
        Assert.Equal("<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n", plain.Prompt);
        Assert.Equal("Hello!", plain.Completion);
    }

    [Fact]
    public void A_template_that_rejects_the_conversation_is_a_row_error_with_its_message()
    {
        using var dir = new TempDir();
        var file = dir.File("p.jsonl");
        File.WriteAllText(file, """{"prompt": [{"role": "system", "content": "x"}], "chosen": "a", "rejected": "b"}""" + "\n");
        var chat = ChatFormat.FromTemplate(HfChatTemplate.Create("{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"));
        var e = Assert.Throws<DatasetFormatException>(() => JsonlDataset.LoadPreferences(file, chat: chat));
        Assert.Contains("System role not supported", e.Message);
        Assert.Contains("p.jsonl:1", e.Message);
    }

    [Fact]
    public void Llama3_style_rendered_text_is_encoded_with_one_bos()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("tokenizer.json"), Gpt2TokenizerJson.Llama3Style());
        var template = File.ReadAllText(RepoPaths.Of("tests", "Sharpen.Tests", "Tokenizers", "ChatTemplates", "llama3.1.jinja"));
        File.WriteAllText(dir.File("tokenizer_config.json"), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["bos_token"] = "<|begin_of_text|>", ["eos_token"] = "<|endoftext|>", ["add_bos_token"] = true, ["chat_template"] = template,
        }));
        var tok = HfTokenizer.Load(dir.Path);
        Assert.NotNull(tok.ChatTemplate);
        var bos = tok.BosTokenId!.Value;
        Assert.Equal(50257, bos);
        var text = ChatFormat.ForTokenizer(tok).RenderPrompt([new ChatMessage("user", "Hi there")]);
        Assert.StartsWith("<|begin_of_text|><|start_header_id|>system", text);
        var ids = tok.Encode(text);
        Assert.Equal(1, ids.Count(i => i == bos));
        Assert.Equal([bos, .. tok.Encode(text["<|begin_of_text|>".Length..], addSpecialTokens: false)], ids);
        // Plain text still gets its BOS.
        Assert.Equal(bos, tok.Encode("Hi")[0]);
        // The template travels with the tokenizer.
        using var copy = new TempDir();
        tok.Save(copy.Path);
        Assert.Equal(template, HfTokenizer.Load(copy.Path).ChatTemplate!.Source);
    }

    [Fact]
    public void Assistant_spans_from_prefix_rendering_cover_every_assistant_turn()
    {
        var t = HfChatTemplate.Create(ChatMl);
        var messages = new List<object?> { M("user", "Hi"), M("assistant", "Hello!"), M("user", "Bye?"), M("assistant", "Bye") };
        var text = t.Render(messages, addGenerationPrompt: false);
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye?<|im_end|>\n<|im_start|>assistant\nBye<|im_end|>\n", text);
        var spans = t.AssistantSpans(messages, text);
        Assert.Equal(["Hello!<|im_end|>\n", "Bye<|im_end|>\n"], spans.Select(s => text[s.Start..s.End]));
        Assert.Equal(2, spans.Count);
        Assert.Equal(30 + 22, spans[0].Start); // "<|im_start|>user\nHi<|im_end|>\n" is 30 characters, "<|im_start|>assistant\n" 22
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n".Length, spans[0].Start);
    }

    [Fact]
    public void Assistant_spans_come_from_generation_blocks_when_the_template_has_them()
    {
        var t = HfChatTemplate.Create("{% for m in messages %}[{{ m.role }}]{% if m.role == 'assistant' %}{% generation %}{{ m.content }}<end>{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}");
        Assert.True(t.HasGenerationMarkers);
        var messages = new List<object?> { M("user", "a"), M("assistant", "bb"), M("user", "c"), M("assistant", "dd") };
        var text = t.Render(messages, false);
        Assert.Equal("[user]a[assistant]bb<end>[user]c[assistant]dd<end>", text);
        // "[user]a[assistant]" = 18, "bb<end>" = 7, "[user]c[assistant]" = 18, "dd<end>" = 7.
        Assert.Equal([(18, 25), (43, 50)], t.AssistantSpans(messages, text));
    }

    [Fact]
    public void Chat_template_comes_from_the_default_entry_or_from_chat_template_jinja()
    {
        var config = """{"bos_token": {"content": "<s>"}, "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ bos_token }}"}]}""";
        Assert.Equal("D<s>", HfChatTemplate.FromFiles(config)!.Render([], false));
        Assert.Equal("J", HfChatTemplate.FromFiles(config, jinja: "J")!.Render([], false));
        Assert.Null(HfChatTemplate.FromFiles("""{"bos_token": "<s>"}"""));
        var e = Assert.Throws<TokenizerFileException>(() => HfChatTemplate.FromFiles("""{"chat_template": [{"name": "rag", "template": "R"}]}""", "x/tokenizer_config.json"));
        Assert.Contains("none named 'default'", e.Message);
    }

    [Theory]
    [InlineData("line1\n{% if x %}\nunclosed", "t.jinja:3:", "'{% endif %}'")]
    [InlineData("{{ 1 + }}", "t.jinja:1:8", "expected an expression")]
    [InlineData("a\n  {% frobnicate %}", "t.jinja:2:6", "unknown tag 'frobnicate'")]
    [InlineData("{{ x | nosuchfilter }}", "t.jinja:1:6", "no filter named 'nosuchfilter'")]
    [InlineData("{{ undefined_thing.attr }}", "t.jinja:1:", "'undefined_thing' is undefined")]
    [InlineData("{% set l = [1] %}{% set l.x = 2 %}", "t.jinja:1:", "only namespace() objects")]
    public void Template_errors_name_the_template_line_and_column(string source, string where, string what)
    {
        var e = Assert.ThrowsAny<JinjaTemplateException>(() => JinjaTemplate.Parse(source, "t.jinja").Render(new Dictionary<string, object?>()));
        Assert.StartsWith(where, e.Message);
        Assert.Contains(what, e.Message);
    }

    [Fact]
    public void Raise_exception_is_a_typed_error_carrying_the_message()
    {
        var e = Assert.Throws<JinjaRaiseException>(() => JinjaTemplate.Parse("ok\n  {{ raise_exception('Roles must alternate') }}", "c.jinja").Render(new Dictionary<string, object?>()));
        Assert.Equal("Roles must alternate", e.RaisedMessage);
        Assert.Equal(2, e.Line);
    }

    [Theory]
    [InlineData("{% for i in range(2000) %}{% for j in range(2000) %}{% endfor %}{% endfor %}", "loop iterations")]
    [InlineData("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "macro calls nest deeper")]
    [InlineData("{% for i in range(100000) %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}", "the output exceeds")]
    public void Hostile_templates_stop_at_the_limits(string source, string what)
    {
        var limits = new JinjaLimits { MaxLoopIterations = 100_000, MaxOutputChars = 1_000_000, MaxCallDepth = 32 };
        var e = Assert.ThrowsAny<JinjaTemplateException>(() => JinjaTemplate.Parse(source, "h.jinja").Render(new Dictionary<string, object?>(), limits));
        Assert.Contains(what, e.Message);
    }

    [Fact]
    public void Deeply_nested_templates_are_rejected_at_parse_time()
    {
        var source = string.Concat(Enumerable.Repeat("{% if true %}", 500)) + string.Concat(Enumerable.Repeat("{% endif %}", 500));
        var e = Assert.Throws<JinjaTemplateException>(() => JinjaTemplate.Parse(source, "deep.jinja"));
        Assert.Contains("nests deeper", e.Message);
    }
}
