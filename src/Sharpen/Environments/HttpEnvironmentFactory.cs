using System.Text.Json.Nodes;

namespace Sharpen.Environments;

/// <summary>Makes <see cref="HttpEnvironment"/> instances (one per concurrent episode) that share one HTTP client;
/// disposing the factory disposes the client.</summary>
public sealed class HttpEnvironmentFactory : IDisposable
{
    readonly HttpClient _http = new() { Timeout = System.Threading.Timeout.InfiniteTimeSpan };

    /// <summary>A factory for the server at <paramref name="url"/>; the other arguments are those of <see cref="HttpEnvironment"/>.</summary>
    public HttpEnvironmentFactory(Uri url, string name = "remote", string alphabet = "", TimeSpan? timeout = null, int retries = 2,
        IReadOnlyDictionary<string, JsonNode?>? resetOptions = null)
    {
        // Validate once, here, so a bad URL fails before any episode.
        var probe = new HttpEnvironment(url, _http, name, alphabet, timeout, retries, resetOptions);
        (Url, Name, Alphabet, Timeout, Retries, ResetOptions) = (probe.Url, name, alphabet, probe.Timeout, retries, resetOptions);
    }

    /// <summary>The server's base URL.</summary>
    public Uri Url { get; }
    /// <summary>The environments' name.</summary>
    public string Name { get; }
    string Alphabet { get; }
    TimeSpan Timeout { get; }
    int Retries { get; }
    IReadOnlyDictionary<string, JsonNode?>? ResetOptions { get; }

    /// <summary>A new environment (a new session at its first reset).</summary>
    public HttpEnvironment Create() => new(Url, _http, Name, Alphabet, Timeout, Retries, ResetOptions);

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();
}
