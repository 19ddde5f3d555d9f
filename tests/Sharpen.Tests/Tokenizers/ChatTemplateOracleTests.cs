using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Tokenizers;
using Sharpen.Tokenizers.Jinja;

namespace Sharpen.Tests.Tokenizers;

/// <summary>
/// Renders real models' chat templates (ChatTemplates/*.jinja: Qwen2.5 with tools, Qwen3 with &lt;think&gt;, Llama 2,
/// Llama 3.1/3.2 with date and tools, Mistral, Gemma 2/3, Phi-3, SmolLM2, DeepSeek R1/Coder, Zephyr, and a template
/// exercising every Jinja feature we support) over many conversations, with our interpreter and with Python's jinja2
/// configured as transformers configures it (jinja_oracle.py), and requires byte-identical text, or the same
/// raise_exception message, or an error on both sides. Needs python3 with jinja2; fails (does not skip) without it.
/// </summary>
[Trait("Kind", "Parity")]
public sealed class ChatTemplateOracleTests
{
    static readonly string TemplateDir = RepoPaths.Of("tests", "Sharpen.Tests", "Tokenizers", "ChatTemplates");
    static readonly string OracleScript = RepoPaths.Of("tests", "Sharpen.Tests", "Tokenizers", "jinja_oracle.py");
    static readonly DateTime Now = new(2024, 7, 26, 10, 0, 0);

    public static TheoryData<string> Templates()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(TemplateDir, "*.jinja").OrderBy(f => f, StringComparer.Ordinal)) data.Add(Path.GetFileName(f));
        return data;
    }

    const string WeatherTool = """
        {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city — with «quotes» and \"escapes\"",
         "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"},
         "days": {"type": "integer", "minimum": 1, "maximum": 7.5}}, "required": ["city"]}}}
        """;

    /// <summary>Conversations: (name, messages JSON, tools JSON or null).</summary>
    static readonly (string Name, string Messages, string? Tools)[] Conversations =
    [
        ("single-user", """[{"role": "user", "content": "Hello!"}]""", null),
        ("system-user", """[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}]""", null),
        ("multi-turn", """
            [{"role": "system", "content": "  Be kind.  "}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
             {"role": "user", "content": "Tell me a joke."}, {"role": "assistant", "content": "Why did the chicken cross the road?"}, {"role": "user", "content": "Why?"}]
            """, null),
        ("ends-with-assistant", """
            [{"role": "user", "content": "Count to three."}, {"role": "assistant", "content": "1, 2, 3"}]
            """, null),
        ("unicode", """
            [{"role": "user", "content": "Ünïcödé ✓ 日本語 😀 \"quoted\" 'single' back\\slash\ttab\nnewline  {{ not a tag }} {% neither %}"},
             {"role": "assistant", "content": "  spaced reply \n\n"}]
            """, null),
        ("tools", """
            [{"role": "system", "content": "Use tools."}, {"role": "user", "content": "Weather in Paris?"},
             {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
             {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temp\": 21}"},
             {"role": "assistant", "content": "It is 21 °C in Paris."}]
            """, "[" + WeatherTool + "]"),
        ("tools-no-system", """
            [{"role": "user", "content": "Weather in Oslo and Rome?"},
             {"role": "assistant", "content": "", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
             {"role": "tool", "tool_call_id": "a", "content": "cold"}, {"role": "tool", "tool_call_id": "b", "content": "warm"}]
            """, "[" + WeatherTool + "]"),
        ("content-parts", """
            [{"role": "system", "content": [{"type": "text", "text": "System in parts."}]},
             {"role": "user", "content": [{"type": "text", "text": "Describe"}, {"type": "image"}, {"type": "text", "text": " this."}]},
             {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]}]
            """, null),
        ("reasoning", """
            [{"role": "user", "content": "Is 7 prime?"},
             {"role": "assistant", "content": "Yes.", "reasoning_content": "\n7 has no divisors but 1 and 7.\n"},
             {"role": "user", "content": "And 9?"},
             {"role": "assistant", "content": "<think>\n9 = 3 * 3\n</think>\n\nNo."}]
            """, null),
        ("roles-not-alternating", """
            [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]
            """, null),
    ];

    [Theory]
    [MemberData(nameof(Templates))]
    public void Renders_byte_for_byte_like_jinja2(string templateFile)
    {
        var source = File.ReadAllText(Path.Combine(TemplateDir, templateFile));
        var template = HfChatTemplate.Create(source, Tokens(templateFile), templateFile).With(clock: () => Now);
        var cases = new List<(string What, JsonObject Variables)>();
        foreach (var (name, messages, tools) in Conversations)
            foreach (var agp in new[] { false, true })
                foreach (var thinking in templateFile.StartsWith("qwen3", StringComparison.Ordinal) ? new bool?[] { null, false } : [null])
                {
                    var vars = new JsonObject
                    {
                        ["messages"] = JsonNode.Parse(messages),
                        ["tools"] = tools is null ? null : JsonNode.Parse(tools),
                        ["documents"] = null,
                        ["add_generation_prompt"] = agp,
                    };
                    foreach (var (k, v) in Tokens(templateFile)) vars[k] = v;
                    if (thinking is { } t) vars["enable_thinking"] = t;
                    cases.Add(($"{name} agp={agp} thinking={thinking}", vars));
                }

        var expected = RunOracle(source, cases.Select(c => c.Variables).ToList());
        var compared = 0;
        for (var i = 0; i < cases.Count; i++)
        {
            var vars = cases[i].Variables;
            var messages = JsonSerializer.Deserialize<JsonElement>(vars["messages"]!.ToJsonString());
            var tools = vars["tools"] is { } tl ? JsonSerializer.Deserialize<JsonElement>(tl.ToJsonString()).EnumerateArray().Select(e => (object?)e).ToList() : null;
            var extra = new Dictionary<string, object?>();
            if (vars.ContainsKey("enable_thinking")) extra["enable_thinking"] = (bool)vars["enable_thinking"]!;
            string? ours = null;
            Exception? error = null;
            try
            {
                ours = template.Render(messages.EnumerateArray().Select(e => (object?)e).ToList(), vars["add_generation_prompt"]!.GetValue<bool>(), tools, extra);
            }
            catch (JinjaTemplateException e)
            {
                error = e;
            }
            var want = expected[i]!.AsObject();
            var what = $"{templateFile} / {cases[i].What}";
            if (want["text"] is { } text)
            {
                Assert.True(error is null, $"{what}: jinja2 rendered, we threw {error?.Message}");
                Assert.True(text.GetValue<string>() == ours, $"{what}: differs from jinja2\n--- jinja2:\n{text.GetValue<string>()}\n--- ours:\n{ours}");
                compared++;
            }
            else if (want["error"]!.GetValue<string>() == "TemplateError")
            {
                var raised = Assert.IsType<JinjaRaiseException>(error);
                Assert.Equal(want["message"]!.GetValue<string>(), raised.RaisedMessage);
            }
            else Assert.True(error is not null, $"{what}: jinja2 failed ({want["error"]}: {want["message"]}) but we rendered:\n{ours}");
        }
        Assert.True(compared >= cases.Count / 3, $"{templateFile}: only {compared} of {cases.Count} cases rendered; the test data does not exercise this template");
    }

    static Dictionary<string, string> Tokens(string templateFile) => templateFile switch
    {
        _ when templateFile.StartsWith("llama3", StringComparison.Ordinal) => new() { ["bos_token"] = "<|begin_of_text|>", ["eos_token"] = "<|eot_id|>" },
        _ when templateFile.StartsWith("qwen", StringComparison.Ordinal) || templateFile.StartsWith("smollm", StringComparison.Ordinal) =>
            new() { ["eos_token"] = "<|im_end|>", ["pad_token"] = "<|endoftext|>" },
        _ when templateFile.StartsWith("gemma", StringComparison.Ordinal) => new() { ["bos_token"] = "<bos>", ["eos_token"] = "<eos>" },
        _ when templateFile.StartsWith("deepseek", StringComparison.Ordinal) => new() { ["bos_token"] = "<｜begin▁of▁sentence｜>", ["eos_token"] = "<｜end▁of▁sentence｜>" },
        _ when templateFile.StartsWith("phi3", StringComparison.Ordinal) => new() { ["bos_token"] = "<s>", ["eos_token"] = "<|endoftext|>" },
        _ => new() { ["bos_token"] = "<s>", ["eos_token"] = "</s>" },
    };

    /// <summary>Runs jinja_oracle.py once over all cases of a template.</summary>
    internal static JsonArray RunOracle(string template, List<JsonObject> variables)
    {
        var input = new JsonArray(variables.Select(v => (JsonNode)new JsonObject
        {
            ["now"] = Now.ToString("yyyy-MM-ddTHH:mm:ss", System.Globalization.CultureInfo.InvariantCulture),
            ["template"] = template,
            ["variables"] = v.DeepClone(),
        }).ToArray());
        var psi = new ProcessStartInfo("python3", [OracleScript])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = System.Text.Encoding.UTF8,
            StandardInputEncoding = new System.Text.UTF8Encoding(false),
        };
        psi.Environment["PYTHONIOENCODING"] = "utf-8";
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("The chat-template oracle needs python3 with jinja2 (pip install jinja2==3.1.6); python3 could not be started: " + e.Message, e);
        }
        using (p)
        {
            p.StandardInput.Write(input.ToJsonString());
            p.StandardInput.Close();
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(60_000)) { p.Kill(); throw new TimeoutException("jinja_oracle.py did not finish in 60 s"); }
            if (p.ExitCode != 0)
                throw new InvalidOperationException($"The chat-template oracle (python3 + jinja2) failed with exit code {p.ExitCode}; is jinja2 installed? {stderr.Result}");
            return JsonNode.Parse(stdout.Result)!.AsArray();
        }
    }
}
