using System.Text;
using Sharpen.Data;

namespace Sharpen.Environments;

/// <summary>Turns a conversation into the prompt text the policy continues (it ends where the assistant's next
/// message begins). A renderer must render a conversation's earlier prompt, followed by the assistant's message, as a
/// prefix of the longer conversation's rendering; <see cref="MultiTurnRollout"/> checks this.</summary>
public delegate string ChatRenderer(IReadOnlyList<ChatMessage> messages);

/// <summary>Built-in renderers.</summary>
public static class TranscriptRenderer
{
    /// <summary>The characters <see cref="Plain"/> adds to the messages' own text.</summary>
    public const string PlainCharacters = "\n> ";

    /// <summary>
    /// The plain format for tiny character-level policies: every non-assistant message is its text and a newline, every
    /// assistant message is <c>"&gt; "</c>, its text and a newline, and a prompt ends with <c>"&gt; "</c>. The assistant's
    /// turn therefore ends at a newline (the default stop string of <see cref="MultiTurnOptions"/>):
    /// <code>
    /// guess 1-100
    /// &gt; 50
    /// lower
    /// &gt; 
    /// </code>
    /// </summary>
    public static string Plain(IReadOnlyList<ChatMessage> messages)
    {
        var sb = new StringBuilder();
        foreach (var m in messages)
        {
            if (m.Role == "assistant") sb.Append("> ");
            sb.Append(m.Content).Append('\n');
        }
        return sb.Append("> ").ToString();
    }

    /// <summary>The <see cref="Sharpen.Data.ChatTemplate"/> format (<c>&lt;|role|&gt;\n</c> headers), for models trained on it.</summary>
    public static string Tagged(IReadOnlyList<ChatMessage> messages) => ChatTemplate.RenderPrompt(messages);
}
