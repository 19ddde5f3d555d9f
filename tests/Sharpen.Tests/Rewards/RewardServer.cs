using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Sharpen.Tests.Rewards;

/// <summary>
/// A real HTTP JSON server on 127.0.0.1 for tests (reward servers; environment servers through <c>EnvServer</c>): every
/// POST (its path below the base and its JSON body) is kept, and <c>answer</c> (called with the path, the request's JSON
/// and its 1-based number) gives the status code and the body to send back.
/// </summary>
public sealed class RewardServer : IDisposable
{
    readonly HttpListener _listener = new();
    readonly Func<string, JsonObject, int, (int Status, string Body)> _answer;
    readonly string _base;
    readonly CancellationTokenSource _stop = new();
    readonly Task _loop;
    readonly List<(string Path, JsonObject Body)> _requests = [];

    public RewardServer(Func<JsonObject, int, (int Status, string Body)> answer) : this("score", (_, body, n) => answer(body, n)) { }

    /// <summary>A server whose URL ends in <c>/{basePath}/</c>; <paramref name="answer"/> also gets the path below it (e.g. <c>/reset</c>).</summary>
    public RewardServer(string basePath, Func<string, JsonObject, int, (int Status, string Body)> answer)
    {
        _answer = answer;
        _base = "/" + basePath;
        Url = $"http://127.0.0.1:{FreePort()}/{basePath}/";
        _listener.Prefixes.Add(Url);
        _listener.Start();
        _loop = Task.Run(Serve);
    }

    /// <summary>Where to POST.</summary>
    public string Url { get; }

    /// <summary>The bodies received so far.</summary>
    public IReadOnlyList<JsonObject> Requests { get { lock (_requests) return [.. _requests.Select(r => r.Body)]; } }

    /// <summary>The requests received so far with their paths below the base.</summary>
    public IReadOnlyList<(string Path, JsonObject Body)> RequestsWithPaths { get { lock (_requests) return [.. _requests]; } }

    /// <summary>A port nothing listens on (just released by the OS).</summary>
    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

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
            var path = ctx.Request.Url!.AbsolutePath[_base.Length..];
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
        catch (HttpListenerException) { }   // the client gave up (a timeout test)
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
