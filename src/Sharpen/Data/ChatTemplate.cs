using System.Text;

namespace Sharpen.Data;

/// <summary>
/// The plain chat template used to turn conversations into prompt text. Each message becomes
/// <c>&lt;|role|&gt;\ncontent\n</c>, and a prompt ends with <c>&lt;|assistant|&gt;\n</c> so the
/// completion follows directly. For example <c>[{"role":"user","content":"Hi"}]</c> renders as
/// <c>"&lt;|user|&gt;\nHi\n&lt;|assistant|&gt;\n"</c>.
/// Models with their own chat template (tokenizer_config.json) should render conversations with it instead.
/// </summary>
public static class ChatTemplate
{
    /// <summary>Renders <paramref name="messages"/> as a prompt, ending with the assistant header.</summary>
    public static string RenderPrompt(IEnumerable<ChatMessage> messages)
    {
        var sb = new StringBuilder();
        foreach (var m in messages) sb.Append("<|").Append(m.Role).Append("|>\n").Append(m.Content).Append('\n');
        return sb.Append("<|assistant|>\n").ToString();
    }
}
