using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Sharpen.Generation;
using Sharpen.Tokenizers;

namespace Sharpen.Serving;

/// <summary>
/// Writes one finished job as an OpenAI response: a <c>text_completion</c> / <c>chat.completion</c> object, or the same
/// as server-sent event chunks (one per token, then the finish reason, optionally the usage, then <c>data: [DONE]</c>).
/// Choice i is prompt i / n, sample i % n.
/// </summary>
sealed class CompletionWriter(PolicyHost host, ParsedRequest request, GenerationResult result, bool chat)
{
    readonly ITokenizer _tok = host.Tokenizer;
    readonly string _id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
    readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    IReadOnlyList<string> Stops => request.Job.Options.StopStrings;

    string TokenText(int id) => request.TokensAsIds ? $"token_id:{id}" : _tok.Decode([id], skipSpecialTokens: false);

    JsonObject Envelope(string obj) => new() { ["id"] = _id, ["object"] = obj, ["created"] = _created, ["model"] = host.ModelId };

    /// <summary>The whole response as one JSON object.</summary>
    public JsonObject Json()
    {
        var choices = new JsonArray();
        for (int i = 0; i < result.Rollouts.Count; i++)
        {
            var r = result.Rollouts[i];
            var text = OpenAiProtocol.VisibleText(r, Stops);
            var choice = new JsonObject { ["index"] = i };
            if (chat) choice["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text };
            else choice["text"] = text;
            choice["logprobs"] = request.Logprobs ? Logprobs(i, 0, r.CompletionIds.Length) : null;
            choice["finish_reason"] = OpenAiProtocol.FinishReason(r.Stop);
            choices.Add(choice);
        }
        var json = Envelope(chat ? "chat.completion" : "text_completion");
        json["choices"] = choices;
        json["usage"] = OpenAiProtocol.Usage(request.Job, result);
        return json;
    }

    // Log-probs of tokens [from, to) of rollout i, in the endpoint's format.
    JsonObject Logprobs(int i, int from, int to)
    {
        var r = result.Rollouts[i];
        var top = result.TopLogprobs?[i];
        if (chat)
        {
            var content = new JsonArray();
            for (int t = from; t < to; t++)
            {
                var entry = Entry(r.CompletionIds[t], r.LogProbs[t]);
                entry["top_logprobs"] = new JsonArray(top?[t].Select(x => (JsonNode)Entry(x.Id, x.LogProb)).ToArray() ?? []);
                content.Add(entry);
            }
            return new JsonObject { ["content"] = content, ["refusal"] = null };
        }
        var tokens = new JsonArray();
        var logprobs = new JsonArray();
        var offsets = new JsonArray();
        JsonArray? tops = top is null ? null : [];
        for (int t = from; t < to; t++)
        {
            tokens.Add(TokenText(r.CompletionIds[t]));
            logprobs.Add(r.LogProbs[t]);
            offsets.Add(_tok.Decode(r.CompletionIds.Take(t), skipSpecialTokens: true).Length);
            if (tops is not null)
            {
                var d = new JsonObject();
                foreach (var x in top![t]) d[TokenText(x.Id)] ??= x.LogProb;   // two ids may print alike; the more likely one stays
                tops.Add(d);
            }
        }
        return new JsonObject { ["tokens"] = tokens, ["token_logprobs"] = logprobs, ["top_logprobs"] = tops, ["text_offset"] = offsets };
    }

    JsonObject Entry(int id, float logprob)
    {
        var text = TokenText(id);
        return new JsonObject { ["token"] = text, ["logprob"] = logprob, ["bytes"] = new JsonArray(Encoding.UTF8.GetBytes(text).Select(b => (JsonNode)(int)b).ToArray()) };
    }

    /// <summary>Writes the response as server-sent events.</summary>
    public async Task StreamAsync(HttpContext ctx)
    {
        var response = ctx.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";   // reverse proxies: do not buffer the stream
        var ct = ctx.RequestAborted;
        async Task Send(JsonObject chunk)
        {
            await response.WriteAsync("data: " + chunk.ToJsonString() + "\n\n", ct).ConfigureAwait(false);
            await response.Body.FlushAsync(ct).ConfigureAwait(false);
        }
        var obj = chat ? "chat.completion.chunk" : "text_completion";
        for (int i = 0; i < result.Rollouts.Count; i++)
        {
            var r = result.Rollouts[i];
            if (chat) await Send(Chunk(obj, i, new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, null)).ConfigureAwait(false);
            var deltas = Deltas(r, OpenAiProtocol.VisibleText(r, Stops));
            for (int t = 0; t < deltas.Length; t++)
            {
                if (deltas[t].Length == 0 && !request.Logprobs) continue;
                var lp = request.Logprobs ? Logprobs(i, t, t + 1) : null;
                await Send(Chunk(obj, i, chat ? new JsonObject { ["content"] = deltas[t] } : deltas[t], lp, null)).ConfigureAwait(false);
            }
            await Send(Chunk(obj, i, chat ? new JsonObject() : "", null, OpenAiProtocol.FinishReason(r.Stop))).ConfigureAwait(false);
        }
        if (request.IncludeUsage)
        {
            var usage = Envelope(obj);
            usage["choices"] = new JsonArray();
            usage["usage"] = OpenAiProtocol.Usage(request.Job, result);
            await Send(usage).ConfigureAwait(false);
        }
        await response.WriteAsync("data: [DONE]\n\n", ct).ConfigureAwait(false);
        await response.Body.FlushAsync(ct).ConfigureAwait(false);
    }

    JsonObject Chunk(string obj, int index, JsonNode delta, JsonObject? logprobs, string? finish)
    {
        var choice = new JsonObject { ["index"] = index };
        choice[chat ? "delta" : "text"] = delta;
        choice["logprobs"] = logprobs;
        choice["finish_reason"] = finish;
        var json = Envelope(obj);
        json["choices"] = new JsonArray(choice);
        return json;
    }

    /// <summary>
    /// The visible text cut into one piece per token: piece t is what token t adds. A token that ends inside a multi-byte
    /// character (byte-level BPE) adds nothing until the character completes. The pieces concatenate to <paramref name="visible"/>.
    /// </summary>
    internal string[] Deltas(Rollout r, string visible)
    {
        var pieces = new string[r.CompletionIds.Length];
        int emitted = 0;
        for (int t = 0; t < pieces.Length; t++)
        {
            var prefix = _tok.Decode(r.CompletionIds.Take(t + 1), skipSpecialTokens: true);
            int common = 0, max = Math.Min(prefix.Length, visible.Length);
            while (common < max && prefix[common] == visible[common]) common++;
            int upTo = t == pieces.Length - 1 ? visible.Length : Math.Max(emitted, common);
            pieces[t] = visible[emitted..upTo];
            emitted = upTo;
        }
        return pieces;
    }
}
