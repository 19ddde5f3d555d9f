using System.Text.Json.Nodes;
using Sharpen.Tests.Rewards;

namespace Sharpen.Tests.Environments;

/// <summary>
/// A real HTTP environment server on 127.0.0.1 for tests (the loopback JSON server of <see cref="RewardServer"/> under
/// <c>/env/</c>): every POST (its path and JSON body) is kept, and <c>answer</c> (path, body, 1-based request number)
/// gives the status code and the body to send back.
/// </summary>
public sealed class EnvServer(Func<string, JsonObject, int, (int Status, string Body)> answer) : IDisposable
{
    readonly RewardServer _server = new("env", answer);

    /// <summary>The base URL (/reset and /step below it).</summary>
    public string Url => _server.Url;

    public IReadOnlyList<(string Path, JsonObject Body)> Requests => _server.RequestsWithPaths;

    public void Dispose() => _server.Dispose();
}
