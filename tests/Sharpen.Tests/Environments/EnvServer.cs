using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Sharpen.Tests.Rewards;

namespace Sharpen.Tests.Environments;

/// <summary>
/// A real HTTP environment server on 127.0.0.1 for tests: every POST (its path and JSON body) is kept, and
/// <c>answer</c> (path, body, 1-based request number) gives the status code and the body to send back.
/// </summary>
public sealed class EnvServer : IDisposable
{
    readonly HttpListener _listener = new();
    readonly Func<string, JsonObject, int, (int Status, string Body)> _answer;
    readonly CancellationTokenSource _stop = new();
    readonly Task _loop;
    readonly List<(string Path, JsonObject Body)> _requests = [];

    public EnvServer(Func<string, JsonObject, int, (int Status, string Body)> answer)
    {
        _answer = answer;
        Url = $"http://127.0.0.1:{RewardServer.FreePort()}/env/";
        _listener.Prefixes.Add(Url);
        _listener.Start();
        _loop = Task.Run(Serve);
    }

    /// <summary>The base URL (/reset and /step below it).</summary>
    public string Url { get; }

    public IReadOnlyList<(string Path, JsonObject Body)> Requests { get { lock (_requests) return [.. _requests]; } }

    async Task Serve()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext ctx;
            try { ctx = await _listener.GetContextAsync(); }
            catch (Exception) when (_stop.IsCancellationRequested || !_listener.IsListening) { return; }
            _ = Task.Run(() => Handle(ctx));
        }
    }

    void Handle(HttpListenerContext ctx)
    {
        try
        {
            using var reader = new StreamReader(ctx.Request.InputStream, Encoding.UTF8);
            var body = (JsonObject)JsonNode.Parse(reader.ReadToEnd())!;
            var path = ctx.Request.Url!.AbsolutePath["/env".Length..];
            int n;
            lock (_requests) { _requests.Add((path, body)); n = _requests.Count; }
            var (status, text) = _answer(path, body, n);
            var bytes = Encoding.UTF8.GetBytes(text);
            ctx.Response.StatusCode = status;
            ctx.Response.ContentType = "application/json";
            ctx.Response.ContentLength64 = bytes.Length;
            ctx.Response.OutputStream.Write(bytes);
            ctx.Response.Close();
        }
        catch (Exception) when (_stop.IsCancellationRequested) { }
        catch (HttpListenerException) { }
        catch (IOException) { }
        catch (ObjectDisposedException) { }
    }

    public void Dispose()
    {
        _stop.Cancel();
        try { _listener.Stop(); _listener.Close(); } catch (ObjectDisposedException) { }
        try { _loop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
    }
}
