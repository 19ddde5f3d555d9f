namespace Sharpen.Environments;

/// <summary>An environment server failed or answered something other than the protocol of <see cref="HttpEnvironment"/>.
/// The message names the server, the URL and what was wrong.</summary>
public sealed class HttpEnvironmentException(string message, Exception? inner = null) : IOException(message, inner);
