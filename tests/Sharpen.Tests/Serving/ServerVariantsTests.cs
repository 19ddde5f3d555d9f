using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using Sharpen.Serving;

namespace Sharpen.Tests.Serving;

/// <summary>Servers with their own settings: a full queue (429), an API key, CORS, reload errors, graceful shutdown.</summary>
public sealed class ServerVariantsTests
{
    static async Task<(TempDir Dir, PolicyHost Host, OpenAiServer Server)> Start(PolicyHostOptions hostOptions, ServerOptions? options = null)
    {
        var dir = new TempDir();
        ServingFixture.WriteCheckpoint(dir.File("model"), seed: 5);
        var host = PolicyHost.Load(dir.File("model"), hostOptions with { ModelId = ServingFixture.ModelId });
        var server = await OpenAiServer.StartAsync(host, (options ?? new ServerOptions()) with { Port = 0 });
        return (dir, host, server);
    }

    static async Task Stop((TempDir Dir, PolicyHost Host, OpenAiServer Server) s)
    {
        await s.Server.DisposeAsync();
        s.Host.Dispose();
        s.Dir.Dispose();
    }

    static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    const string LongRequest = """{"model": "tiny", "prompt": "a", "max_tokens": 150, "ignore_eos": true, "temperature": 0}""";

    [Fact]
    public async Task A_full_queue_answers_429_with_openai_error_json_and_serves_the_rest()
    {
        var s = await Start(new PolicyHostOptions { MaxBatch = 1, MaxQueue = 1 });
        try
        {
            // The official client with retries off; the body through its protocol method, to add vLLM's ignore_eos.
            var chat = new ChatClient(ServingFixture.ModelId, new ApiKeyCredential("x"),
                new OpenAIClientOptions { Endpoint = new Uri(s.Server.BaseAddress, "v1"), RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0) });
            const string body = """{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "max_tokens": 150, "ignore_eos": true, "temperature": 0}""";
            async Task<(int Status, System.ClientModel.Primitives.PipelineResponse Response)> Send()
            {
                try { var r = await chat.CompleteChatAsync(BinaryContent.Create(BinaryData.FromString(body))); return (r.GetRawResponse().Status, r.GetRawResponse()); }
                catch (ClientResultException e) { return (e.Status, e.GetRawResponse()!); }
            }
            // One request runs, one waits; the rest arrive while the first decodes 150 tokens and find the queue full.
            var results = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => Send()));
            var codes = results.Select(r => r.Status).ToList();
            Assert.Contains(429, codes);
            Assert.Contains(200, codes);
            Assert.All(codes, c => Assert.True(c is 200 or 429, $"status {c}"));
            var refused = results.First(r => r.Status == 429).Response;
            var error = JsonNode.Parse(refused.Content.ToString())!["error"]!;
            Assert.Equal("rate_limit_error", error["type"]!.GetValue<string>());
            Assert.Equal("queue_full", error["code"]!.GetValue<string>());
            Assert.True(refused.Headers.TryGetValue("Retry-After", out var retry) && retry == "1");
            Assert.True(s.Host.Stats.LargestBatch <= 1);
            Assert.Equal(codes.Count(c => c == 200), s.Host.Stats.Jobs);   // refused requests never reached the loop
        }
        finally { await Stop(s); }
    }

    [Fact]
    public async Task An_api_key_guards_v1_but_not_health_and_cors_is_off_by_default()
    {
        var s = await Start(new PolicyHostOptions(), new ServerOptions { ApiKey = "s3cret" });
        try
        {
            var v1 = new Uri(s.Server.BaseAddress, "v1");
            var wrong = new ChatClient(ServingFixture.ModelId, new ApiKeyCredential("wrong"), new OpenAIClientOptions { Endpoint = v1 });
            var e = await Assert.ThrowsAsync<ClientResultException>(() => wrong.CompleteChatAsync([new UserChatMessage("hi")]));
            Assert.Equal(401, e.Status);
            Assert.Equal("invalid_api_key", JsonNode.Parse(e.GetRawResponse()!.Content.ToString())!["error"]!["code"]!.GetValue<string>());
            var right = new ChatClient(ServingFixture.ModelId, new ApiKeyCredential("s3cret"), new OpenAIClientOptions { Endpoint = v1 });
            var ok = await right.CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { MaxOutputTokenCount = 3 });
            Assert.True(ok.Value.Usage.OutputTokenCount is >= 1 and <= 3);

            using var http = new HttpClient { BaseAddress = s.Server.BaseAddress };
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health")).StatusCode);
            using var request = new HttpRequestMessage(HttpMethod.Get, "v1/models");
            request.Headers.Authorization = new("Bearer", "s3cret");
            request.Headers.Add("Origin", "http://evil.example");
            var models = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, models.StatusCode);
            Assert.False(models.Headers.Contains("Access-Control-Allow-Origin"));
        }
        finally { await Stop(s); }
    }

    [Fact]
    public async Task Cors_origins_given_are_allowed()
    {
        var s = await Start(new PolicyHostOptions(), new ServerOptions { CorsOrigins = ["http://app.example"] });
        try
        {
            using var http = new HttpClient { BaseAddress = s.Server.BaseAddress };
            using var request = new HttpRequestMessage(HttpMethod.Get, "v1/models");
            request.Headers.Add("Origin", "http://app.example");
            var response = await http.SendAsync(request);
            Assert.Equal("http://app.example", response.Headers.GetValues("Access-Control-Allow-Origin").Single());
        }
        finally { await Stop(s); }
    }

    [Fact]
    public async Task A_reload_from_a_bad_folder_is_422_and_the_old_weights_keep_serving()
    {
        var s = await Start(new PolicyHostOptions());
        try
        {
            using var http = new HttpClient { BaseAddress = s.Server.BaseAddress };
            var before = await (await http.PostAsync("v1/completions", Json("""{"model": "tiny", "prompt": "ab", "max_tokens": 8, "temperature": 0}"""))).Content.ReadAsStringAsync();
            var missing = s.Dir.File("no-such-folder");
            var reload = await http.PostAsync("v1/sharpen/reload", Json(new JsonObject { ["path"] = missing }.ToJsonString()));
            Assert.Equal(HttpStatusCode.UnprocessableEntity, reload.StatusCode);
            var error = JsonNode.Parse(await reload.Content.ReadAsStringAsync())!["error"]!;
            Assert.Equal("reload_failed", error["code"]!.GetValue<string>());
            Assert.Contains(missing, error["message"]!.GetValue<string>());
            var after = await (await http.PostAsync("v1/completions", Json("""{"model": "tiny", "prompt": "ab", "max_tokens": 8, "temperature": 0}"""))).Content.ReadAsStringAsync();
            Assert.Equal(JsonNode.Parse(before)!["choices"]![0]!["text"]!.GetValue<string>(), JsonNode.Parse(after)!["choices"]![0]!["text"]!.GetValue<string>());
            Assert.Equal(0, s.Host.Stats.Reloads);
        }
        finally { await Stop(s); }
    }

    [Fact]
    public async Task Stopping_the_server_finishes_the_request_in_flight()
    {
        var s = await Start(new PolicyHostOptions());
        try
        {
            using var http = new HttpClient { BaseAddress = s.Server.BaseAddress };
            var inFlight = http.PostAsync("v1/completions", Json(LongRequest));
            while (s.Host.Stats.Jobs == 0) await Task.Delay(5);   // the request reached the batch loop
            await s.Server.App.StopAsync();                        // what Ctrl-C does
            var response = await inFlight;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.Equal(150, json["usage"]!["completion_tokens"]!.GetValue<int>());
            await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync("health"));   // no longer listening
        }
        finally { await Stop(s); }
    }
}
