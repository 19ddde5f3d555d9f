using System.Text;
using System.Text.Json;

namespace Sharpen.Data;

/// <summary>
/// Reads JSONL datasets in the formats TRL uses. One JSON object per line; blank lines are ignored.
/// A malformed line throws <see cref="DatasetFormatException"/> (<c>file:line: what is wrong (expected ...)</c>),
/// or, with <c>skipBadLines</c>, is skipped and counted in the <see cref="LoadResult{T}"/>.
/// <list type="bullet">
/// <item>SFT, standard: <c>{"prompt": "...", "completion": "..."}</c>; language modeling <c>{"text": "..."}</c> (an empty
/// prompt, the text as the completion, <see cref="SftShape.Text"/>).</item>
/// <item>SFT, conversational: <c>{"messages": [{"role": "...", "content": "..."}, ...]}</c>: the messages before the
/// last assistant message are the prompt, rendered with <see cref="ChatTemplate"/>; the last assistant message
/// is the completion; nothing may follow it. <c>prompt</c> may also be a message list and <c>completion</c> a
/// one-message list from the assistant.</item>
/// <item>Preference: <c>{"prompt": ..., "chosen": ..., "rejected": ...}</c>, each as above; or, with the prompt implicit,
/// <c>{"chosen": [messages], "rejected": [messages]}</c>: each conversation is split at its last assistant message like an
/// SFT <c>messages</c> row, and both must render the same prompt. Optional numeric <c>score_chosen</c>/<c>score_rejected</c>
/// are kept in <c>Fields</c>.</item>
/// <item>Ranked preference: <c>{"prompt": ..., "completions": [string, ...], "ranks": [int, ...]}</c> (rank 1 = best, ties
/// allowed) expands to every pair (i, j) with rank_i &lt; rank_j, i chosen and j rejected; see <see cref="ExpandRanks"/>.
/// A malformed ranked line counts as one skipped line.</item>
/// </list>
/// A message is <c>{"role", "content"}</c> with content a string or text parts (<c>[{"type": "text", "text"}]</c>; other part
/// types are errors), and may carry <c>tool_calls</c> (content then optional), <c>reasoning_content</c> and other keys: the
/// chat template receives the message as written. A row's <c>tools</c> (function schemas) is the template's <c>tools</c>.
/// The plain format refuses tools, tool calls and reasoning rather than dropping them.
/// Other keys of a row go to the example's <c>Fields</c>.
/// </summary>
public static class JsonlDataset
{
    /// <summary>How many skipped-line messages a <see cref="LoadResult{T}"/> keeps.</summary>
    public const int MaxReportedErrors = 10;

    internal const string SftExpected =
        "{\"prompt\": string, \"completion\": string}, {\"messages\": [{\"role\": string, \"content\": string}, ...]} or {\"text\": string}";
    const string PreferenceExpected =
        "{\"prompt\": string, \"chosen\": string, \"rejected\": string}, {\"chosen\": [messages], \"rejected\": [messages]} " +
        "or {\"prompt\": string, \"completions\": [string, ...], \"ranks\": [int, ...]}";

    /// <summary>Reads an SFT file (prompt/completion or messages rows, mixed freely).</summary>
    /// <param name="path">The file.</param>
    /// <param name="skipBadLines">Skip and count malformed lines instead of throwing at the first.</param>
    /// <param name="chat">How conversations become text; null for <see cref="ChatFormat.Plain"/>.</param>
    public static LoadResult<SftExample> LoadSft(string path, bool skipBadLines = false, ChatFormat? chat = null) =>
        Read(path, SftExpected, row => ParseSft(row, chat ?? ChatFormat.Plain), skipBadLines, requireRows: true);

    /// <summary>
    /// Reads prompts for online training: SFT rows as <see cref="LoadSft"/> reads them, or rows with a prompt alone —
    /// <c>{"prompt": string or messages, ...fields}</c>, or <c>{"messages": [...]}</c> whose last message is not the
    /// assistant's (the whole conversation is the prompt). A prompt-only row's completion is empty; other keys are fields.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="skipBadLines">Skip and count malformed lines instead of throwing at the first.</param>
    /// <param name="chat">How conversations become text; null for <see cref="ChatFormat.Plain"/>.</param>
    public static LoadResult<SftExample> LoadPrompts(string path, bool skipBadLines = false, ChatFormat? chat = null) =>
        Read(path, PromptExpected, row => ParsePrompt(row, chat ?? ChatFormat.Plain), skipBadLines, requireRows: true);

    const string PromptExpected =
        "{\"prompt\": string or messages, ...fields} (\"completion\" optional) or {\"messages\": [{\"role\": string, \"content\": string}, ...]}";

    static SftExample ParsePrompt(JsonRow row, ChatFormat chat)
    {
        if (row.Has("messages"))
        {
            var messages = Messages(row, "messages");
            if (messages.Count > 0 && messages[^1].Role == "assistant") return ParseSft(row, chat);
            if (messages.Count == 0) throw row.Error("\"messages\" is empty");
            var tools = Tools(row);
            return new SftExample(Render(row, () => chat.RenderPrompt(messages, tools)), "", row.ExtraFields("messages", "tools"));
        }
        if (row.Has("completion")) return ParseSft(row, chat);
        return new SftExample(Prompt(row, chat, Tools(row)), "", row.ExtraFields("prompt", "tools"));
    }

    /// <summary>Reads a preference file (prompt/chosen/rejected rows, implicit-prompt conversations and ranked lists,
    /// mixed freely); a ranked line contributes all its pairs, in file order.</summary>
    /// <param name="path">The file.</param>
    /// <param name="skipBadLines">Skip and count malformed lines instead of throwing at the first.</param>
    /// <param name="chat">How conversations become text; null for <see cref="ChatFormat.Plain"/>.</param>
    public static LoadResult<PreferenceExample> LoadPreferences(string path, bool skipBadLines = false, ChatFormat? chat = null)
    {
        var rows = Read(path, PreferenceExpected, row => ParsePreferenceRow(row, chat ?? ChatFormat.Plain), skipBadLines, requireRows: true);
        return new LoadResult<PreferenceExample>(rows.Items.SelectMany(r => r).ToList(), rows.SkippedLines, rows.Errors);
    }

    const string UnpairedExpected =
        "{\"prompt\": string or messages, \"completion\": string or [one assistant message], \"label\": true|false}, " +
        "or a preference pair ({\"prompt\", \"chosen\", \"rejected\"} or {\"chosen\": [messages], \"rejected\": [messages]})";

    /// <summary>
    /// Reads an unpaired preference file (TRL's format for KTO): rows <c>{"prompt", "completion", "label"}</c> where the
    /// label is a JSON boolean (true = desirable); prompt and completion may be text or, in the conversational form, a
    /// message list and a one-assistant-message list rendered with <paramref name="chat"/> (with the row's <c>tools</c>).
    /// A preference row (explicit or implicit prompt, as <see cref="LoadPreferences"/> reads it) is unpaired as TRL's KTO
    /// trainer does: its chosen completion a desirable row, then its rejected one an undesirable row. Other keys are fields.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="skipBadLines">Skip and count malformed lines instead of throwing at the first.</param>
    /// <param name="chat">How conversations become text; null for <see cref="ChatFormat.Plain"/>.</param>
    public static LoadResult<UnpairedExample> LoadUnpaired(string path, bool skipBadLines = false, ChatFormat? chat = null)
    {
        var rows = Read(path, UnpairedExpected, row => ParseUnpaired(row, chat ?? ChatFormat.Plain), skipBadLines, requireRows: true);
        return new LoadResult<UnpairedExample>(rows.Items.SelectMany(r => r).ToList(), rows.SkippedLines, rows.Errors);
    }

    static List<UnpairedExample> ParseUnpaired(JsonRow row, ChatFormat chat)
    {
        if (!row.Has("label") && row.Has("chosen") && row.Has("rejected"))
        {
            var pair = ParsePreference(row, chat);
            return [new UnpairedExample(pair.Prompt, pair.Chosen, true) { Fields = pair.Fields }, new UnpairedExample(pair.Prompt, pair.Rejected, false) { Fields = pair.Fields }];
        }
        var label = row.Get("label");
        if (label.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            throw row.Error($"\"label\" is {JsonRow.Describe(label.ValueKind)}, not true or false");
        var tools = Tools(row);
        return [new UnpairedExample(Prompt(row, chat, tools), Completion(row, "completion", chat, tools), label.ValueKind == JsonValueKind.True)
            { Fields = row.ExtraFields("prompt", "completion", "label", "tools") }];
    }

    /// <summary>
    /// The pairs of a ranked list (rank 1 = best): every (i, j) with <c>ranks[i] &lt; ranks[j]</c>, i chosen. Pairs are
    /// ordered by the chosen completion's rank (best first, equal ranks in list order), then by the rejected completion's
    /// position in the list. For ranks [2, 1, 3] over (a, b, c): (b &gt; a), (b &gt; c), (a &gt; c). Tied completions form no pair.
    /// </summary>
    public static IReadOnlyList<(int Chosen, int Rejected)> ExpandRanks(IReadOnlyList<int> ranks)
    {
        var pairs = new List<(int, int)>();
        foreach (var i in Enumerable.Range(0, ranks.Count).OrderBy(i => ranks[i]))   // OrderBy is stable
            for (var j = 0; j < ranks.Count; j++)
                if (ranks[i] < ranks[j]) pairs.Add((i, j));
        return pairs;
    }

    /// <summary>
    /// Reads any JSONL file: each non-blank line must be a JSON object, which <paramref name="parse"/> turns into
    /// an item (throwing through <see cref="JsonRow.Error"/> when the row is malformed).
    /// </summary>
    /// <param name="path">The file, named as it should appear in errors.</param>
    /// <param name="expected">What a well-formed row looks like, for error messages.</param>
    /// <param name="parse">Row to item.</param>
    /// <param name="skipBadLines">Skip and count malformed lines instead of throwing at the first.</param>
    public static LoadResult<T> Read<T>(string path, string expected, Func<JsonRow, T> parse, bool skipBadLines = false) =>
        Read(path, expected, parse, skipBadLines, requireRows: false);

    /// <summary><see cref="Read{T}(string, string, Func{JsonRow, T}, bool)"/>; with <paramref name="requireRows"/>, a file without
    /// rows, or whose every row is malformed, is a <see cref="DatasetFormatException"/> naming the file (training data must not be empty).</summary>
    internal static LoadResult<T> Read<T>(string path, string expected, Func<JsonRow, T> parse, bool skipBadLines, bool requireRows)
    {
        var items = new List<T>();
        var errors = new List<string>();
        var skipped = 0;
        var rows = 0;
        FileStream file;
        try { file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new DatasetFormatException(path, "file not found", expected, e);
        }
        using (file)
        {
            foreach (var (lineNo, line) in Lines(file, path, expected))
            {
                if (line is not null && string.IsNullOrWhiteSpace(line)) continue;
                rows++;
                try
                {
                    if (line is null)
                        throw new DatasetFormatException(path, lineNo, "the line is not valid UTF-8", expected);
                    items.Add(ParseLine(path, lineNo, line, expected, parse));
                }
                catch (DatasetFormatException e) when (skipBadLines)
                {
                    skipped++;
                    if (errors.Count < MaxReportedErrors) errors.Add(e.Message);
                }
            }
        }
        if (requireRows && rows == 0) throw new DatasetFormatException(path, "the file has no rows (it is empty or blank)", expected);
        if (requireRows && items.Count == 0)
            throw new DatasetFormatException(path, $"all {rows} rows are malformed, so nothing is left to read; first: {errors.FirstOrDefault()}", expected);
        return new LoadResult<T>(items, skipped, errors);
    }

    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The lines of <paramref name="file"/> (split at \n, a trailing \r and a leading UTF-8 BOM removed), each
    /// decoded strictly; a line that is not valid UTF-8 comes back as null so the caller counts it as a bad line.</summary>
    static IEnumerable<(int LineNo, string? Text)> Lines(Stream file, string path, string expected)
    {
        var buffer = new byte[1 << 16];
        var line = new MemoryStream();
        int lineNo = 0, read;
        bool first = true;
        while ((read = file.Read(buffer, 0, buffer.Length)) > 0)
        {
            int start = 0;
            for (int i = 0; i < read; i++)
            {
                if (buffer[i] != (byte)'\n') continue;
                line.Write(buffer, start, i - start);
                start = i + 1;
                yield return (++lineNo, Decode(line, ref first));
                line.SetLength(0);
            }
            line.Write(buffer, start, read - start);
            if (line.Length > MaxLineBytes)
                throw new DatasetFormatException(path, lineNo + 1, $"the line is longer than {MaxLineBytes / (1 << 20)} MiB", expected);
        }
        if (line.Length > 0) yield return (++lineNo, Decode(line, ref first));
    }

    /// <summary>Longest line a dataset may hold (64 MiB); a longer one is an error rather than an unbounded allocation.</summary>
    public const int MaxLineBytes = 64 << 20;

    static string? Decode(MemoryStream line, ref bool first)
    {
        var bytes = line.GetBuffer().AsSpan(0, (int)line.Length);
        if (first && bytes.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) bytes = bytes[3..];
        first = false;
        if (bytes.Length > 0 && bytes[^1] == (byte)'\r') bytes = bytes[..^1];
        try { return StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException) { return null; }
    }

    static T ParseLine<T>(string path, int lineNo, string line, string expected, Func<JsonRow, T> parse)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new DatasetFormatException(path, lineNo, $"not valid JSON ({FirstSentence(e.Message)})", expected);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new DatasetFormatException(path, lineNo, $"the line is {JsonRow.Describe(doc.RootElement.ValueKind)}, not a JSON object", expected);
            if (InvalidString(doc.RootElement) is { } bad)
                throw new DatasetFormatException(path, lineNo, $"{bad}: an escape that is not valid UTF-16 (a lone surrogate such as \\ud800)", expected);
            return parse(new JsonRow(path, lineNo, doc.RootElement, expected));
        }
    }

    /// <summary>Where <paramref name="e"/> holds a string or key that cannot become a .NET string (a lone surrogate escape
    /// such as "\ud800", which JsonDocument accepts but GetString rejects); null when every string is valid.</summary>
    static string? InvalidString(JsonElement e, string where = "the row")
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.String:
                try { _ = e.GetString(); return null; }
                catch (InvalidOperationException) { return where; }
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject())
                {
                    string name;
                    try { name = p.Name; }
                    catch (InvalidOperationException) { return $"a key of {where}"; }
                    if (InvalidString(p.Value, $"\"{name}\"") is { } bad) return bad;
                }
                return null;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in e.EnumerateArray())
                    if (InvalidString(item, $"{where}[{i++}]") is { } bad) return bad;
                return null;
            default:
                return null;
        }
    }

    static string FirstSentence(string message)
    {
        var cut = message.IndexOf(". ", StringComparison.Ordinal);
        return (cut >= 0 ? message[..cut] : message).TrimEnd('.');
    }

    internal static SftExample ParseSft(JsonRow row) => ParseSft(row, ChatFormat.Plain);

    internal static SftExample ParseSft(JsonRow row, ChatFormat chat)
    {
        var tools = Tools(row);
        if (row.Has("messages"))
        {
            var messages = Messages(row, "messages");
            var last = messages.FindLastIndex(m => m.Role == "assistant");
            if (last < 0) throw row.Error("\"messages\" has no message with role \"assistant\"");
            if (last != messages.Count - 1)
                throw row.Error($"\"messages\" continues after the last assistant message (message {last + 1} of {messages.Count})");
            if (last == 0) throw row.Error("\"messages\" has no message before the assistant's, so the prompt is empty");
            var prompt = messages.Take(last).ToList();
            IReadOnlyList<(int, int)>? spans = null;
            string? spansError = null;
            try { spans = chat.AssistantSpans(messages, tools); }
            catch (InvalidOperationException e) { spansError = row.Error("the assistant turns cannot be located: " + e.Message).Message; }
            return new SftExample(Render(row, () => chat.RenderPrompt(prompt, tools)), Render(row, () => chat.RenderCompletion(prompt, messages[last], tools)),
                row.ExtraFields("messages", "tools"))
            { Shape = SftShape.Conversation, AssistantSpans = spans, AssistantSpansError = spansError };
        }
        if (row.Has("text") && !row.Has("prompt") && !row.Has("completion"))
        {
            var text = row.Get("text");
            if (text.ValueKind != JsonValueKind.String)
                throw row.Error($"\"text\" is {JsonRow.Describe(text.ValueKind)}, not a string (a conversation goes in \"messages\")");
            return new SftExample("", row.AsString(text, "\"text\"", nonEmpty: true), row.ExtraFields("text")) { Shape = SftShape.Text };
        }
        return new SftExample(Prompt(row, chat, tools), Completion(row, "completion", chat, tools), row.ExtraFields("prompt", "completion", "tools"));
    }

    static List<PreferenceExample> ParsePreferenceRow(JsonRow row, ChatFormat chat) =>
        row.Has("completions") || row.Has("ranks") ? ParseRanked(row, chat) : [ParsePreference(row, chat)];

    static PreferenceExample ParsePreference(JsonRow row, ChatFormat chat)
    {
        foreach (var key in new[] { "score_chosen", "score_rejected" })
            if (row.Element.TryGetProperty(key, out var score) && score.ValueKind != JsonValueKind.Number)
                throw row.Error($"\"{key}\" is {JsonRow.Describe(score.ValueKind)}, not a number");
        var fields = row.ExtraFields("prompt", "chosen", "rejected", "tools");
        var tools = Tools(row);
        if (row.Has("prompt")) return new(Prompt(row, chat, tools), Completion(row, "chosen", chat, tools), Completion(row, "rejected", chat, tools)) { Fields = fields };

        // Implicit prompt: chosen and rejected are whole conversations sharing everything before the last assistant message.
        var (chosenPrompt, chosen) = SplitConversation(row, "chosen", chat, tools);
        var (rejectedPrompt, rejected) = SplitConversation(row, "rejected", chat, tools);
        if (chosenPrompt != rejectedPrompt)
            throw row.Error("\"chosen\" and \"rejected\" differ before their last assistant message, so they do not share a prompt");
        return new(chosenPrompt, chosen, rejected) { Fields = fields };
    }

    static (string Prompt, string Completion) SplitConversation(JsonRow row, string key, ChatFormat chat, IReadOnlyList<object?>? tools)
    {
        var value = row.Get(key);
        if (value.ValueKind != JsonValueKind.Array)
            throw row.Error($"\"{key}\" is {JsonRow.Describe(value.ValueKind)}; without \"prompt\" it must be a conversation (a list of messages)");
        var messages = Messages(row, key);
        var last = messages.FindLastIndex(m => m.Role == "assistant");
        if (last < 0) throw row.Error($"\"{key}\" has no message with role \"assistant\"");
        if (last != messages.Count - 1)
            throw row.Error($"\"{key}\" continues after the last assistant message (message {last + 1} of {messages.Count})");
        if (last == 0) throw row.Error($"\"{key}\" has no message before the assistant's, so the prompt is empty");
        var prompt = messages.Take(last).ToList();
        return (Render(row, () => chat.RenderPrompt(prompt, tools)), Render(row, () => chat.RenderCompletion(prompt, messages[last], tools)));
    }

    static List<PreferenceExample> ParseRanked(JsonRow row, ChatFormat chat)
    {
        var prompt = Prompt(row, chat, Tools(row));
        var completionsValue = row.Get("completions");
        var ranksValue = row.Get("ranks");
        if (completionsValue.ValueKind != JsonValueKind.Array)
            throw row.Error($"\"completions\" is {JsonRow.Describe(completionsValue.ValueKind)}, not a list");
        if (ranksValue.ValueKind != JsonValueKind.Array)
            throw row.Error($"\"ranks\" is {JsonRow.Describe(ranksValue.ValueKind)}, not a list");
        var completions = new List<string>();
        foreach (var c in completionsValue.EnumerateArray()) completions.Add(row.AsString(c, $"\"completions\"[{completions.Count}]"));
        var ranks = new List<int>();
        foreach (var r in ranksValue.EnumerateArray())
        {
            if (r.ValueKind != JsonValueKind.Number || !r.TryGetInt32(out var rank))
                throw row.Error($"\"ranks\"[{ranks.Count}] is {(r.ValueKind == JsonValueKind.Number ? r.GetRawText() : JsonRow.Describe(r.ValueKind))}, not an integer");
            if (rank < 1) throw row.Error($"\"ranks\"[{ranks.Count}] is {rank}; ranks start at 1 (the best)");
            ranks.Add(rank);
        }
        if (completions.Count < 2) throw row.Error($"\"completions\" has {completions.Count} item(s); a ranked list needs at least 2");
        if (ranks.Count != completions.Count)
            throw row.Error($"\"ranks\" has {ranks.Count} items but \"completions\" has {completions.Count}");
        var pairs = ExpandRanks(ranks);
        if (pairs.Count == 0) throw row.Error("all ranks are equal, so the list has no preference pair");
        var extra = row.ExtraFields("prompt", "completions", "ranks", "tools");
        return pairs.Select(p =>
        {
            var fields = new Dictionary<string, string>(extra)
            {
                ["rank_chosen"] = ranks[p.Chosen].ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["rank_rejected"] = ranks[p.Rejected].ToString(System.Globalization.CultureInfo.InvariantCulture),
            };
            return new PreferenceExample(prompt, completions[p.Chosen], completions[p.Rejected]) { Fields = fields };
        }).ToList();
    }

    static string Prompt(JsonRow row, ChatFormat chat, IReadOnlyList<object?>? tools = null)
    {
        var value = row.Get("prompt");
        if (value.ValueKind == JsonValueKind.Array)
        {
            var messages = Messages(row, "prompt");
            if (messages.Count == 0) throw row.Error("\"prompt\" is an empty message list");
            return Render(row, () => chat.RenderPrompt(messages, tools));
        }
        if (tools is not null) throw row.Error("\"tools\" needs a conversational row (a message-list \"prompt\" or \"messages\"): text prompts do not go through the chat template");
        return row.AsString(value, "\"prompt\"", nonEmpty: true);
    }

    static string Completion(JsonRow row, string key, ChatFormat chat, IReadOnlyList<object?>? tools = null)
    {
        var value = row.Get(key);
        if (value.ValueKind != JsonValueKind.Array) return row.AsString(value, $"\"{key}\"");
        var messages = Messages(row, key);
        if (messages.Count != 1 || messages[0].Role != "assistant")
            throw row.Error($"\"{key}\" is a message list but not exactly one assistant message");
        if (chat.Template is null) return Render(row, () => chat.RenderCompletion([], messages[0], tools));
        if (!row.Has("prompt") || row.Get("prompt").ValueKind != JsonValueKind.Array)
            return messages[0].TemplateOnlyKey is { } only
                ? throw row.Error($"\"{key}\"[0] has \"{only}\", which needs a conversational prompt (a message list) to be rendered with the chat template")
                : messages[0].Content;
        var prompt = Messages(row, "prompt");
        return Render(row, () => chat.RenderCompletion(prompt, messages[0], tools));
    }

    /// <summary>Runs a template render, turning its errors (raise_exception, bad input) into a row error.</summary>
    static string Render(JsonRow row, Func<string> render)
    {
        try
        {
            return render();
        }
        catch (PlainFormatException e)
        {
            throw row.Error(e.Message);
        }
        catch (Exception e) when (e is Sharpen.Tokenizers.Jinja.JinjaTemplateException or InvalidOperationException)
        {
            throw row.Error("the chat template could not render this conversation: " + e.Message);
        }
    }

    static List<ChatMessage> Messages(JsonRow row, string key)
    {
        var value = row.Get(key);
        if (value.ValueKind != JsonValueKind.Array) throw row.Error($"\"{key}\" is {JsonRow.Describe(value.ValueKind)}, not a list of messages");
        var messages = new List<ChatMessage>();
        var i = 0;
        foreach (var m in value.EnumerateArray())
        {
            i++;
            var what = $"\"{key}\"[{i - 1}]";
            if (m.ValueKind != JsonValueKind.Object) throw row.Error($"{what} is {JsonRow.Describe(m.ValueKind)}, not a message object");
            if (!m.TryGetProperty("role", out var role)) throw row.Error($"{what} has no \"role\"");
            var roleText = row.AsString(role, what + ".role", nonEmpty: true);
            bool toolCalls = m.TryGetProperty("tool_calls", out var calls) && calls.ValueKind != JsonValueKind.Null;
            if (toolCalls && calls.ValueKind != JsonValueKind.Array)
                throw row.Error($"{what}.tool_calls is {JsonRow.Describe(calls.ValueKind)}, not a list of tool calls");
            if (m.TryGetProperty("reasoning_content", out var reasoning) && reasoning.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
                throw row.Error($"{what}.reasoning_content is {JsonRow.Describe(reasoning.ValueKind)}, not a string");
            string content;
            if (!m.TryGetProperty("content", out var c) || c.ValueKind == JsonValueKind.Null)
                content = toolCalls ? "" : throw row.Error($"{what} has no \"content\" (only a message with \"tool_calls\" may go without)");
            else if (c.ValueKind == JsonValueKind.Array) content = ContentParts(row, c, what + ".content");
            else content = row.AsString(c, what + ".content");
            // The row's message goes to the chat template as it is (tool calls, reasoning, content parts, name, ...).
            messages.Add(new ChatMessage(roleText, content) { Source = m.Clone() });
        }
        return messages;
    }

    /// <summary>The text of a list of content parts (<c>[{"type": "text", "text": ...}, ...]</c>), joined; any other part
    /// (image, audio, ...) is an error, since Sharpen's models read text only.</summary>
    static string ContentParts(JsonRow row, JsonElement parts, string what)
    {
        var text = new StringBuilder();
        var i = 0;
        foreach (var part in parts.EnumerateArray())
        {
            var at = $"{what}[{i++}]";
            if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                throw row.Error($"{at} is not a content part ({{\"type\": \"text\", \"text\": string}})");
            if (type.GetString() != "text")
                throw row.Error($"{at} has type \"{type.GetString()}\"; only \"text\" parts are supported (Sharpen's models read text only)");
            if (!part.TryGetProperty("text", out var t)) throw row.Error($"{at} has no \"text\"");
            text.Append(row.AsString(t, at + ".text"));
        }
        return text.ToString();
    }

    /// <summary>The row's <c>tools</c> (TRL's column of function schemas, passed to the chat template), or null.</summary>
    static IReadOnlyList<object?>? Tools(JsonRow row)
    {
        if (!row.Element.TryGetProperty("tools", out var tools) || tools.ValueKind == JsonValueKind.Null) return null;
        if (tools.ValueKind != JsonValueKind.Array) throw row.Error($"\"tools\" is {JsonRow.Describe(tools.ValueKind)}, not a list of tool schemas");
        var list = new List<object?>();
        foreach (var t in tools.EnumerateArray())
        {
            if (t.ValueKind != JsonValueKind.Object) throw row.Error($"\"tools\"[{list.Count}] is {JsonRow.Describe(t.ValueKind)}, not a tool schema object");
            list.Add(t.Clone());
        }
        return list;
    }
}
