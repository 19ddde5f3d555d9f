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
    public abstract string RenderPrompt(IReadOnlyList<ChatMessage> messages);

    /// <summary>The text the assistant's <paramref name="completion"/> adds after <see cref="RenderPrompt"/> of
    /// <paramref name="prompt"/>: for a template, <c>render(prompt + [completion])</c> minus <c>render(prompt, add_generation_prompt)</c>
    /// (TRL's rule), so it carries the template's end-of-turn text.</summary>
    /// <exception cref="InvalidOperationException">The template does not render the prompt as a prefix of the whole conversation.</exception>
    public abstract string RenderCompletion(IReadOnlyList<ChatMessage> prompt, ChatMessage completion);

    /// <summary>A message as the template sees it: <c>{"role": ..., "content": ...}</c>.</summary>
    public static Dictionary<string, object?> ToTemplateValue(ChatMessage m) => new() { ["role"] = m.Role, ["content"] = m.Content };

    sealed class PlainFormat : ChatFormat
    {
        public override HfChatTemplate? Template => null;
        public override string RenderPrompt(IReadOnlyList<ChatMessage> messages) => ChatTemplate.RenderPrompt(messages);
        public override string RenderCompletion(IReadOnlyList<ChatMessage> prompt, ChatMessage completion) => completion.Content;
    }

    sealed class TemplateFormat(HfChatTemplate template) : ChatFormat
    {
        public override HfChatTemplate? Template => template;

        public override string RenderPrompt(IReadOnlyList<ChatMessage> messages) =>
            template.Render(messages.Select(m => (object?)ToTemplateValue(m)).ToList(), addGenerationPrompt: true);

        public override string RenderCompletion(IReadOnlyList<ChatMessage> prompt, ChatMessage completion)
        {
            var before = RenderPrompt(prompt);
            var whole = template.Render(prompt.Append(completion).Select(m => (object?)ToTemplateValue(m)).ToList(), addGenerationPrompt: false);
            if (!whole.StartsWith(before, StringComparison.Ordinal))
                throw new InvalidOperationException(
                    $"{template.SourceName}: the conversation rendered with the assistant's answer does not start with the prompt rendered alone, so the answer cannot be cut out");
            return whole[before.Length..];
        }
    }
}
