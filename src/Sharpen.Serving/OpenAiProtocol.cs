using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Generation;

namespace Sharpen.Serving;

/// <summary>A request the server refuses, answered as OpenAI's error JSON <c>{"error": {message, type, param, code}}</c>.</summary>
public sealed class OpenAiException(int status, string message, string? param = null, string? code = null, string type = "invalid_request_error")
    : Exception(message)
{
    /// <summary>HTTP status: 400 malformed, 401 auth, 404 unknown model, 413 too large, 422 unprocessable, 429 queue full.</summary>
    public int Status { get; } = status;
    /// <summary>The request field at fault, if one is.</summary>
    public string? Param { get; } = param;
    /// <summary>A machine-readable code (e.g. <c>model_not_found</c>, <c>context_length_exceeded</c>).</summary>
    public string? Code { get; } = code;
    /// <summary>OpenAI's error type (<c>invalid_request_error</c>, <c>rate_limit_error</c>, <c>server_error</c>).</summary>
    public string Type { get; } = type;

    /// <summary>The error body.</summary>
    public JsonObject ToJson() => Body(Message, Type, Param, Code);

    /// <summary>OpenAI's error body.</summary>
    public static JsonObject Body(string message, string type, string? param, string? code) =>
        new() { ["error"] = new JsonObject { ["message"] = message, ["type"] = type, ["param"] = param, ["code"] = code } };
}

/// <summary>Renders a conversation as prompt text (the checkpoint's chat template). <paramref name="addGenerationPrompt"/>
/// ends the text with the assistant's header so the completion is the assistant's reply.</summary>
public delegate string ChatPromptRenderer(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt);

/// <summary>A parsed <c>/v1/completions</c> or <c>/v1/chat/completions</c> request, ready for the <see cref="PolicyHost"/>.</summary>
/// <param name="Job">Prompts (ids) and sampling options.</param>
/// <param name="Stream">Answer with server-sent events.</param>
/// <param name="IncludeUsage">stream_options.include_usage: a last chunk with token counts.</param>
/// <param name="Logprobs">Report per-token log-probs.</param>
/// <param name="TokensAsIds">vLLM's return_tokens_as_token_ids: tokens are reported as <c>token_id:N</c>.</param>
public sealed record ParsedRequest(GenerationJob Job, bool Stream, bool IncludeUsage, bool Logprobs, bool TokensAsIds);

/// <summary>Reads OpenAI requests into <see cref="ParsedRequest"/>s and writes the responses; every refusal is an <see cref="OpenAiException"/>.</summary>
public static class OpenAiProtocol
{
    /// <summary>Roles a chat message may have.</summary>
    public static readonly IReadOnlySet<string> Roles = new HashSet<string> { "system", "developer", "user", "assistant", "tool" };
    /// <summary>Most alternatives per token (OpenAI's limit).</summary>
    public const int MaxTopLogprobs = 20;
    /// <summary>Most stop sequences per request (OpenAI's limit).</summary>
    public const int MaxStops = 4;
    /// <summary>Tokens generated when a completions request names no max_tokens (OpenAI's default).</summary>
    public const int DefaultCompletionTokens = 16;

    /// <summary>Parses a JSON body; anything but an object is a 400.</summary>
    public static JsonObject ParseBody(string text)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(text); }
        catch (JsonException e) { throw new OpenAiException(400, $"We could not parse the JSON body of your request: {e.Message}", code: "invalid_json"); }
        return node as JsonObject ?? throw new OpenAiException(400, "The request body must be a JSON object.", code: "invalid_json");
    }

    /// <summary>Checks <c>model</c> names the served model (404 otherwise).</summary>
    public static void CheckModel(JsonObject body, PolicyHost host)
    {
        var model = String(body, "model") ?? throw Missing("model");
        if (model != host.ModelId) throw new OpenAiException(404, $"The model `{model}` does not exist; this server serves `{host.ModelId}`.", "model", "model_not_found");
    }

    /// <summary>A <c>/v1/completions</c> request: <c>prompt</c> as text, a list of texts, token ids, or a list of token-id lists.</summary>
    public static ParsedRequest ParseCompletion(JsonObject body, PolicyHost host)
    {
        CheckModel(body, host);
        if (Bool(body, "echo") == true) throw new OpenAiException(400, "echo is not supported by this server.", "echo", "unsupported_parameter");
        var prompts = Prompts(body["prompt"], host);
        int? logprobs = Int(body, "logprobs");
        if (logprobs is < 0 or > 5) throw new OpenAiException(400, $"logprobs must be between 0 and 5, got {logprobs}.", "logprobs");
        int maxTokens = Int(body, "max_tokens") ?? DefaultCompletionTokens;
        var (options, seedGiven) = Sampling(body, host, prompts, maxTokens, "max_tokens");
        return new ParsedRequest(new GenerationJob(prompts, options, seedGiven, logprobs ?? 0), Bool(body, "stream") ?? false,
            IncludeUsage(body), logprobs is not null, Bool(body, "return_tokens_as_token_ids") ?? false);
    }

    /// <summary>A <c>/v1/chat/completions</c> request: the messages are rendered with <paramref name="render"/> and encoded.</summary>
    public static ParsedRequest ParseChat(JsonObject body, PolicyHost host, ChatPromptRenderer render, bool addSpecialTokens)
    {
        CheckModel(body, host);
        var messages = Messages(body);
        var ids = host.Tokenizer.Encode(render(messages, true), addSpecialTokens);
        if (ids.Count == 0) throw new OpenAiException(400, "The rendered conversation encodes to no tokens.", "messages");
        IReadOnlyList<IReadOnlyList<int>> prompts = [ids];
        bool logprobs = Bool(body, "logprobs") ?? false;
        int top = Int(body, "top_logprobs") ?? 0;
        if (top is < 0 or > MaxTopLogprobs) throw new OpenAiException(400, $"top_logprobs must be between 0 and {MaxTopLogprobs}, got {top}.", "top_logprobs");
        if (top > 0 && !logprobs) throw new OpenAiException(400, "top_logprobs requires logprobs to be true.", "top_logprobs");
        var maxParam = body.ContainsKey("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
        int maxTokens = Int(body, maxParam) ?? Math.Max(1, host.ContextLength - ids.Count);   // a prompt that fills the context is a 422 below
        var (options, seedGiven) = Sampling(body, host, prompts, maxTokens, maxParam);
        return new ParsedRequest(new GenerationJob(prompts, options, seedGiven, top), Bool(body, "stream") ?? false,
            IncludeUsage(body), logprobs, Bool(body, "return_tokens_as_token_ids") ?? false);
    }

    /// <summary>Reads <c>messages</c>: a non-empty array of {role, content}; content is text or a list of text parts.</summary>
    public static IReadOnlyList<ChatMessage> Messages(JsonObject body)
    {
        if (body["messages"] is not JsonArray array) throw body.ContainsKey("messages")
            ? new OpenAiException(400, "messages must be an array of {role, content} objects.", "messages")
            : Missing("messages");
        if (array.Count == 0) throw new OpenAiException(400, "messages must contain at least one message.", "messages", "empty_array");
        var result = new List<ChatMessage>(array.Count);
        for (int i = 0; i < array.Count; i++)
        {
            var param = $"messages[{i}]";
            if (array[i] is not JsonObject m) throw new OpenAiException(400, $"{param} must be an object with role and content.", param);
            var role = String(m, "role", param) ?? throw Missing($"{param}.role");
            if (!Roles.Contains(role))
                throw new OpenAiException(400, $"{param}.role is '{role}'; expected one of {string.Join(", ", Roles.Order())}.", $"{param}.role", "invalid_role");
            result.Add(new ChatMessage(role, Content(m["content"], $"{param}.content")));
        }
        return result;
    }

    static string Content(JsonNode? node, string param)
    {
        switch (node)
        {
            case null: return "";
            case JsonValue v when v.TryGetValue<string>(out var s): return s;
            case JsonArray parts:
                var sb = new StringBuilder();
                for (int i = 0; i < parts.Count; i++)
                {
                    if (parts[i] is not JsonObject part || String(part, "type", $"{param}[{i}]") != "text")
                        throw new OpenAiException(400, $"{param}[{i}] must be a text part {{\"type\": \"text\", \"text\": ...}}; this server takes text only.", $"{param}[{i}]");
                    sb.Append(String(part, "text", $"{param}[{i}]") ?? "");
                }
                return sb.ToString();
            default: throw new OpenAiException(400, $"{param} must be a string or a list of text parts.", param);
        }
    }

    static IReadOnlyList<IReadOnlyList<int>> Prompts(JsonNode? node, PolicyHost host)
    {
        var tok = host.Tokenizer;
        IReadOnlyList<int> Ids(JsonArray a, string param)
        {
            var ids = new int[a.Count];
            for (int i = 0; i < a.Count; i++)
            {
                if (a[i] is not JsonValue v || !v.TryGetValue<int>(out var id))
                    throw new OpenAiException(400, $"{param}[{i}] must be an integer token id.", "prompt");
                if (id < 0 || id >= host.VocabSize) throw new OpenAiException(400, $"{param}[{i}] = {id} is not a token id (vocabulary size {host.VocabSize}).", "prompt");
                ids[i] = id;
            }
            return ids;
        }
        IReadOnlyList<int> Text(string s) => tok.Encode(s);
        List<IReadOnlyList<int>> prompts = node switch
        {
            null => throw Missing("prompt"),
            JsonValue v when v.TryGetValue<string>(out var s) => [Text(s)],
            JsonArray { Count: 0 } => throw new OpenAiException(400, "prompt must not be an empty list.", "prompt"),
            JsonArray a when a[0] is JsonValue first && first.TryGetValue<string>(out _) =>
                a.Select((x, i) => x is JsonValue xv && xv.TryGetValue<string>(out var t) ? Text(t) : throw new OpenAiException(400, $"prompt[{i}] must be a string.", "prompt")).ToList(),
            JsonArray a when a[0] is JsonValue => [Ids(a, "prompt")],
            JsonArray a => a.Select((x, i) => x is JsonArray inner ? Ids(inner, $"prompt[{i}]") : throw new OpenAiException(400, $"prompt[{i}] must be a list of token ids.", "prompt")).ToList(),
            _ => throw new OpenAiException(400, "prompt must be a string, a list of strings, a list of token ids or a list of such lists.", "prompt"),
        };
        if (prompts.Any(p => p.Count == 0)) throw new OpenAiException(400, "A prompt encodes to no tokens.", "prompt");
        return prompts;
    }

    static (SamplingOptions, bool SeedGiven) Sampling(JsonObject body, PolicyHost host, IReadOnlyList<IReadOnlyList<int>> prompts, int maxTokens, string maxParam)
    {
        double temperature = Number(body, "temperature") ?? 1.0;
        if (temperature is < 0 or > 2) throw new OpenAiException(400, $"temperature must be between 0 and 2, got {temperature}.", "temperature");
        double topP = Number(body, "top_p") ?? 1.0;
        if (!(topP > 0 && topP <= 1)) throw new OpenAiException(400, $"top_p must be in (0, 1], got {topP}.", "top_p");
        int topK = Int(body, "top_k") ?? 0;
        if (topK is < 0 and not -1) throw new OpenAiException(400, $"top_k must be ≥ 0 (or -1 for off), got {topK}.", "top_k");
        int n = Int(body, "n") ?? 1;
        if (n < 1) throw new OpenAiException(400, $"n must be ≥ 1, got {n}.", "n");
        if (n * prompts.Count > host.Options.MaxBatch)
            throw new OpenAiException(422, $"n × prompts = {n * prompts.Count} exceeds this server's --max-batch ({host.Options.MaxBatch}).", "n", "n_too_large");
        if (maxTokens < 1) throw new OpenAiException(400, $"{maxParam} must be ≥ 1, got {maxTokens}.", maxParam);
        int longest = prompts.Max(p => p.Count);
        if (longest + maxTokens > host.ContextLength)
            throw new OpenAiException(422, $"This model's context is {host.ContextLength} tokens; the prompt has {longest} and {maxParam} asks for {maxTokens} more.",
                longest >= host.ContextLength ? "prompt" : maxParam, "context_length_exceeded");
        var stops = Stops(body);
        long? seed = Long(body, "seed");
        var options = new SamplingOptions
        {
            Temperature = temperature, TopP = topP, TopK = Math.Max(0, topK), MaxNewTokens = maxTokens, SamplesPerPrompt = n,
            StopStrings = stops, Seed = seed ?? Random.Shared.NextInt64(), StopAtEos = !(Bool(body, "ignore_eos") ?? false),
        };
        return (options, seed is not null);
    }

    static IReadOnlyList<string> Stops(JsonObject body)
    {
        var node = body["stop"];
        List<string> stops = node switch
        {
            null => [],
            JsonValue v when v.TryGetValue<string>(out var s) => [s],
            JsonArray a => a.Select((x, i) => x is JsonValue xv && xv.TryGetValue<string>(out var s) ? s : throw new OpenAiException(400, $"stop[{i}] must be a string.", "stop")).ToList(),
            _ => throw new OpenAiException(400, "stop must be a string or a list of strings.", "stop"),
        };
        if (stops.Count > MaxStops) throw new OpenAiException(400, $"stop takes at most {MaxStops} sequences, got {stops.Count}.", "stop");
        if (stops.Any(s => s.Length == 0)) throw new OpenAiException(400, "stop sequences must not be empty.", "stop");
        return stops;
    }

    static bool IncludeUsage(JsonObject body) =>
        body["stream_options"] is JsonObject so && (Bool(so, "include_usage") ?? false);

    // ----- typed field readers: a wrong type is a 400 naming the field -----

    static OpenAiException Missing(string param) => new(400, $"Missing required parameter: '{param}'.", param, "missing_required_parameter");

    static OpenAiException WrongType(string param, string expected) => new(400, $"'{param}' must be {expected}.", param, "invalid_type");

    static string? String(JsonObject o, string key, string? prefix = null)
    {
        var node = o[key];
        if (node is null) return null;
        return node is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw WrongType(prefix is null ? key : $"{prefix}.{key}", "a string");
    }

    static bool? Bool(JsonObject o, string key)
    {
        var node = o[key];
        if (node is null) return null;
        return node is JsonValue v && v.TryGetValue<bool>(out var b) ? b : throw WrongType(key, "a boolean");
    }

    static double? Number(JsonObject o, string key)
    {
        var node = o[key];
        if (node is null) return null;
        return node is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<double>() : throw WrongType(key, "a number");
    }

    static long? Long(JsonObject o, string key)
    {
        var node = o[key];
        if (node is null) return null;
        return node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<long>(out var l) ? l : throw WrongType(key, "an integer");
    }

    static int? Int(JsonObject o, string key)
    {
        var node = o[key];
        if (node is null) return null;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out var i)) return i;
        // Integral doubles (1.0) are integers in JSON.
        if (node is JsonValue d && d.GetValueKind() == JsonValueKind.Number && d.GetValue<double>() is var x && x == Math.Floor(x) && Math.Abs(x) < int.MaxValue) return (int)x;
        throw WrongType(key, "an integer");
    }

    // ----- responses -----

    /// <summary>OpenAI's finish_reason for a stop reason.</summary>
    public static string FinishReason(StopReason stop) => stop == StopReason.MaxTokens ? "length" : "stop";

    /// <summary>The completion text the client sees: up to (not including) the first stop string, special tokens removed.</summary>
    public static string VisibleText(Rollout r, IReadOnlyList<string> stops) => VisibleText(r.CompletionText, r.Stop, stops);

    /// <summary>The text a client sees of a completion <paramref name="text"/> that ended for <paramref name="stop"/>: cut before the first stop string.</summary>
    public static string VisibleText(string text, StopReason stop, IReadOnlyList<string> stops)
    {
        if (stop != StopReason.StopString) return text;
        int cut = stops.Select(s => text.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(text.Length).Min();
        return text[..cut];
    }

    /// <summary>The usage block.</summary>
    public static JsonObject Usage(GenerationJob job, GenerationResult result)
    {
        int prompt = job.Prompts.Sum(p => p.Count), completion = result.Rollouts.Sum(r => r.CompletionIds.Length);
        return new JsonObject { ["prompt_tokens"] = prompt, ["completion_tokens"] = completion, ["total_tokens"] = prompt + completion };
    }
}
