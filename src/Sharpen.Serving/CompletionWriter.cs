using System.Text;
using System.Threading.Channels;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Sharpen.Generation;
using Sharpen.Tokenizers;

namespace Sharpen.Serving;

/// <summary>
/// Writes a job as an OpenAI response: a finished job as one <c>text_completion</c> / <c>chat.completion</c> object, or a
/// running one as server-sent event chunks sent while its tokens are sampled (one per token that adds text, or per token
/// when log-probs are asked for; then each choice's finish reason, optionally the usage, then <c>data: [DONE]</c>).
/// Choice i is prompt i / n, sample i % n.
/// </summary>
sealed class CompletionWriter(PolicyHost host, ParsedRequest request, bool chat)
{
    readonly ITokenizer _tok = host.Tokenizer;
    readonly string _id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
    readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    IReadOnlyList<string> Stops => request.Job.Options.StopStrings;

    string TokenText(int id) => request.TokensAsIds ? $"token_id:{id}" : _tok.Decode([id], skipSpecialTokens: false);

    JsonObject Envelope(string obj) => new() { ["id"] = _id, ["object"] = obj, ["created"] = _created, ["model"] = host.ModelId };

    /// <summary>The whole response to the finished job as one JSON object.</summary>
    public JsonObject Json(GenerationResult result)
    {
        var choices = new JsonArray();
        for (int i = 0; i < result.Rollouts.Count; i++)
        {
            var r = result.Rollouts[i];
            var text = OpenAiProtocol.VisibleText(r, Stops);
            var choice = new JsonObject { ["index"] = i };
            if (chat) choice["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text };
            else choice["text"] = text;
            choice["logprobs"] = request.Logprobs ? Logprobs(r, result.TopLogprobs?[i]) : null;
            choice["finish_reason"] = OpenAiProtocol.FinishReason(r.Stop);
            choices.Add(choice);
        }
        var json = Envelope(chat ? "chat.completion" : "text_completion");
        json["choices"] = choices;
        json["usage"] = OpenAiProtocol.Usage(request.Job, result);
        return json;
    }

    // Log-probs of every token of rollout r, in the endpoint's format.
    JsonObject Logprobs(Rollout r, TokenLogProb[][]? top)
    {
        var tokens = Enumerable.Range(0, r.CompletionIds.Length)
            .Select(t => (r.CompletionIds[t], r.LogProbs[t], top?[t], _tok.Decode(r.CompletionIds.Take(t), skipSpecialTokens: true).Length));
        return LogprobsJson(tokens);
    }

    // Log-probs of the given tokens (id, log-prob, top alternatives, text offset), in the endpoint's format.
    JsonObject LogprobsJson(IEnumerable<(int Id, float LogProb, TokenLogProb[]? Top, int Offset)> items)
    {
        if (chat)
        {
            var content = new JsonArray();
            foreach (var x in items)
            {
                var entry = Entry(x.Id, x.LogProb);
                entry["top_logprobs"] = new JsonArray(x.Top?.Select(a => (JsonNode)Entry(a.Id, a.LogProb)).ToArray() ?? []);
                content.Add(entry);
            }
            return new JsonObject { ["content"] = content, ["refusal"] = null };
        }
        var tokens = new JsonArray();
        var logprobs = new JsonArray();
        var offsets = new JsonArray();
        JsonArray? tops = request.Job.TopLogprobs > 0 ? [] : null;
        foreach (var x in items)
        {
            tokens.Add(TokenText(x.Id));
            logprobs.Add(x.LogProb);
            offsets.Add(x.Offset);
            if (tops is not null)
            {
                var d = new JsonObject();
                foreach (var a in x.Top ?? []) d[TokenText(a.Id)] ??= a.LogProb;   // two ids may print alike; the more likely one stays
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

    /// <summary>
    /// Streams the running job as server-sent events while <paramref name="tokens"/> delivers its tokens. Nothing is written
    /// before the first token (or the job's failure, which then becomes an error JSON); <paramref name="done"/> gives the usage.
    /// </summary>
    public async Task StreamAsync(HttpContext ctx, ChannelReader<StreamedToken> tokens, Task<GenerationResult> done)
    {
        var ct = ctx.RequestAborted;
        if (!await tokens.WaitToReadAsync(ct).ConfigureAwait(false)) await done.ConfigureAwait(false);   // a failure before any token: an error JSON
        var response = ctx.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";   // reverse proxies: do not buffer the stream
        async Task Send(JsonObject chunk)
        {
            await response.WriteAsync("data: " + chunk.ToJsonString() + "\n\n", ct).ConfigureAwait(false);
            await response.Body.FlushAsync(ct).ConfigureAwait(false);
        }
        var obj = chat ? "chat.completion.chunk" : "text_completion";
        int choices = request.Job.Prompts.Count * request.Job.Options.SamplesPerPrompt;
        var live = Enumerable.Range(0, choices).Select(_ => new LiveText(_tok, Stops)).ToArray();
        if (chat)
            for (int i = 0; i < choices; i++)
                await Send(Chunk(obj, i, new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, null)).ConfigureAwait(false);
        await foreach (var t in tokens.ReadAllAsync(ct).ConfigureAwait(false))
        {
            var text = live[t.Sequence];
            var piece = text.Add(t.Id, t.Stop);
            if (piece.Length > 0 || request.Logprobs)
            {
                var lp = request.Logprobs ? LogprobsJson([(t.Id, t.LogProb, t.Top, text.Offset)]) : null;
                await Send(Chunk(obj, t.Sequence, chat ? new JsonObject { ["content"] = piece } : piece, lp, null)).ConfigureAwait(false);
            }
            if (t.Stop is { } stop)
                await Send(Chunk(obj, t.Sequence, chat ? new JsonObject() : "", null, OpenAiProtocol.FinishReason(stop))).ConfigureAwait(false);
        }
        var result = await done.ConfigureAwait(false);   // a failure mid-stream cuts the connection (the caller aborts it)
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
}
