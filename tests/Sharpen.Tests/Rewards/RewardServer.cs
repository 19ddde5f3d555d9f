using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Sharpen.Tests.Rewards;

/// <summary>
/// A real HTTP reward server on 127.0.0.1 for tests: every POST body is parsed and kept, and <c>answer</c> (called with
/// the request's JSON and its 1-based number) gives the status code and the body to send back.
/// </summary>
public sealed class RewardServer : IDisposable
{
    readonly HttpListener _listener = new();
    readonly Func<JsonObject, int, (int Status, string Body)> _answer;
    readonly CancellationTokenSource _stop = new();
    readonly Task _loop;
    readonly List<JsonObject> _requests = [];

    public RewardServer(Func<JsonObject, int, (int Status, string Body)> answer)
    {
        _answer = answer;
        Url = $"http://127.0.0.1:{FreePort()}/score/";
        _listener.Prefixes.Add(Url);
        _listener.Start();
        _loop = Task.Run(Serve);
    }

    /// <summary>Where to POST.</summary>
    public string Url { get; }

    /// <summary>The bodies received so far.</summary>
    public IReadOnlyList<JsonObject> Requests { get { lock (_requests) return [.. _requests]; } }

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
            int n;
            lock (_requests) { _requests.Add(body); n = _requests.Count; }
            var (status, text) = _answer(body, n);
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
