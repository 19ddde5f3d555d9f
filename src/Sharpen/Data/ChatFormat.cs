using Sharpen.Tokenizers;

namespace Sharpen.Data;

/// <summary>
/// How conversations become text: the checkpoint's own Jinja chat template when it has one (rendered as transformers
/// renders it, see <see cref="HfChatTemplate"/>), otherwise Sharpen's plain <c>&lt;|role|&gt;</c> format
/// (<see cref="ChatTemplate"/>), which only suits models trained from scratch with it.
/// </summary>
public abstract class ChatFormat
{
    /// <summary>The plain <c>&lt;|role|&gt;\ncontent\n</c> format, for tokenizers without a chat template.</summary>
    public static ChatFormat Plain { get; } = new PlainFormat();

    /// <summary>The checkpoint's template.</summary>
    public static ChatFormat FromTemplate(HfChatTemplate template) => new TemplateFormat(template ?? throw new ArgumentNullException(nameof(template)));

    /// <summary>The chat template stored in <paramref name="directory"/> (chat_template.jinja or tokenizer_config.json),
    /// or <see cref="Plain"/> when the folder has none or is null.</summary>
    public static ChatFormat ForModel(string? directory) =>
        directory is not null && Directory.Exists(directory) && HfChatTemplate.TryLoad(directory) is { } t ? FromTemplate(t) : Plain;

    /// <summary>The tokenizer's chat template when it has one, else <see cref="Plain"/>.</summary>
    public static ChatFormat ForTokenizer(ITokenizer tokenizer) =>
        tokenizer is HfTokenizer { ChatTemplate: { } t } ? FromTemplate(t) : Plain;

    /// <summary>The template, or null for the plain format.</summary>
    public abstract HfChatTemplate? Template { get; }

    /// <summary>The prompt text: <paramref name="messages"/> followed by the assistant header, so a completion follows.</summary>
    /// <param name="messages">The conversation so far.</param>
    /// <param name="tools">Tool schemas (JSON values) passed to the template as <c>tools</c>, or null.</param>
    /// <exception cref="InvalidOperationException">The plain format was asked to show tools, tool calls or reasoning.</exception>
    public abstract string RenderPrompt(IReadOnlyList<ChatMessage> messages, IReadOnlyList<object?>? tools = null);

    /// <summary>The text the assistant's <paramref name="completion"/> adds after <see cref="RenderPrompt"/> of
    /// <paramref name="prompt"/>: for a template, <c>render(prompt + [completion])</c> minus <c>render(prompt, add_generation_prompt)</c>
    /// (TRL's rule), so it carries the template's end-of-turn text.</summary>
    /// <exception cref="InvalidOperationException">The template does not render the prompt as a prefix of the whole conversation.</exception>
    public abstract string RenderCompletion(IReadOnlyList<ChatMessage> prompt, ChatMessage completion, IReadOnlyList<object?>? tools = null);

    /// <summary>
    /// The character spans of <c>RenderPrompt(messages[..^1]) + RenderCompletion(messages[..^1], messages[^1])</c> (a
    /// conversation that ends with an assistant message) written by the assistant: one per assistant message, what a model
    /// must produce after the assistant header. For a template, <see cref="HfChatTemplate.AssistantSpans"/>; for the plain
    /// format, each assistant message's content plus the newline that ends its turn (the last turn ends with the text).
    /// </summary>
    /// <exception cref="InvalidOperationException">The template rewrites earlier turns, so a turn cannot be located.</exception>
    public abstract IReadOnlyList<(int Start, int End)> AssistantSpans(IReadOnlyList<ChatMessage> messages, IReadOnlyList<object?>? tools = null);

    /// <summary>A message as the template sees it: the row's own message object when there is one, else
    /// <c>{"role": ..., "content": ...}</c>.</summary>
    public static object ToTemplateValue(ChatMessage m) =>
        m.Source is { } source ? source : new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content };

    static List<object?> Values(IEnumerable<ChatMessage> messages) => messages.Select(m => (object?)ToTemplateValue(m)).ToList();

    sealed class PlainFormat : ChatFormat
    {
        public override HfChatTemplate? Template => null;

        public override string RenderPrompt(IReadOnlyList<ChatMessage> messages, IReadOnlyList<object?>? tools = null)
        {
            Check(messages, tools);
            return ChatTemplate.RenderPrompt(messages);
        }

        public override string RenderCompletion(IReadOnlyList<ChatMessage> prompt, ChatMessage completion, IReadOnlyList<object?>? tools = null)
        {
            Check([completion], tools);
            return completion.Content;
        }

        public override IReadOnlyList<(int Start, int End)> AssistantSpans(IReadOnlyList<ChatMessage> messages, IReadOnlyList<object?>? tools = null)
        {
            Check(messages, tools);
            var spans = new List<(int, int)>();
            int at = 0;
            for (int i = 0; i < messages.Count; i++)
            {
                var m = messages[i];
                at += m.Role.Length + 5;   // "<|role|>\n"
                bool last = i == messages.Count - 1;
                if (m.Role == "assistant") spans.Add((at, at + m.Content.Length + (last ? 0 : 1)));
                at += m.Content.Length + (last ? 0 : 1);
            }
            return spans;
        }

        /// <summary>The plain format has no place for tools, tool calls or reasoning: refusing beats dropping them.</summary>
        static void Check(IReadOnlyList<ChatMessage> messages, IReadOnlyList<object?>? tools)
        {
            if (tools is not null)
                throw new PlainFormatException("the row has \"tools\", which only a chat template can show (the model folder has no chat_template)");
            for (int i = 0; i < messages.Count; i++)
                if (messages[i].TemplateOnlyKey is { } key)
                    throw new PlainFormatException(
                        $"a {messages[i].Role} message has \"{key}\", which only a chat template can show (the model folder has no chat_template)");
        }
    }

    sealed class TemplateFormat(HfChatTemplate template) : ChatFormat
    {
        public override HfChatTemplate? Template => template;

        public override string RenderPrompt(IReadOnlyList<ChatMessage> messages, IReadOnlyList<object?>? tools = null) =>
            template.Render(Values(messages), addGenerationPrompt: true, tools);

        public override string RenderCompletion(IReadOnlyList<ChatMessage> prompt, ChatMessage completion, IReadOnlyList<object?>? tools = null)
        {
            var before = RenderPrompt(prompt, tools);
            var whole = template.Render(Values(prompt.Append(completion)), addGenerationPrompt: false, tools);
            if (!whole.StartsWith(before, StringComparison.Ordinal))
                throw new InvalidOperationException(
                    $"{template.SourceName}: the conversation rendered with the assistant's answer does not start with the prompt rendered alone, so the answer cannot be cut out");
            return whole[before.Length..];
        }

        public override IReadOnlyList<(int Start, int End)> AssistantSpans(IReadOnlyList<ChatMessage> messages, IReadOnlyList<object?>? tools = null)
        {
            var values = Values(messages);
            return template.AssistantSpans(values, template.Render(values, addGenerationPrompt: false, tools), tools);
        }
    }
}

/// <summary>The plain <c>&lt;|role|&gt;</c> format was asked to show something only a chat template can (tools, tool calls, reasoning).</summary>
public sealed class PlainFormatException(string message) : InvalidOperationException(message);
