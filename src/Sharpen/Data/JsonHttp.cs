using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Sharpen.Data;

/// <summary>
/// The one way Sharpen talks JSON to a server it does not own (reward servers, environment servers): a POST with a
/// timeout per attempt; connection failures, timeouts and HTTP 408/429/5xx retried with a doubling wait (0.5 s first);
/// any other status, or the last failed attempt, becomes the caller's error.
/// </summary>
public static class JsonHttp
{
    /// <summary>Posts <paramref name="body"/> to <paramref name="url"/>; returns the answer text of the first successful attempt.
    /// <paramref name="error"/> turns a problem description into the exception to throw; <paramref name="attempted"/> counts requests.</summary>
    public static async Task<string> PostAsync(HttpClient http, Uri url, string body, TimeSpan timeout, int retries,
        Func<string, Exception> error, Action? attempted, CancellationToken cancel)
    {
        for (int attempt = 0; ; attempt++)
        {
            string retryReason;
            using (var perAttempt = CancellationTokenSource.CreateLinkedTokenSource(cancel))
            {
                perAttempt.CancelAfter(timeout);
                try
                {
                    attempted?.Invoke();
                    using var content = new StringContent(body, Encoding.UTF8);
                    content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                    using var response = await http.PostAsync(url, content, perAttempt.Token).ConfigureAwait(false);
                    var text = await response.Content.ReadAsStringAsync(perAttempt.Token).ConfigureAwait(false);
                    if (response.IsSuccessStatusCode) return text;
                    var status = $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}: {Excerpt(text)}";
                    if (!IsTransient(response.StatusCode)) throw error(status);
                    retryReason = status;
                }
                catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                {
                    retryReason = $"no answer within {timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s";
                }
                catch (HttpRequestException e)
                {
                    retryReason = e.Message;
                }
            }
            if (attempt >= retries) throw error($"{retryReason} (after {attempt + 1} attempt{(attempt == 0 ? "" : "s")})");
            await Task.Delay(TimeSpan.FromMilliseconds(500 * (1 << Math.Min(attempt, 6))), cancel).ConfigureAwait(false);
        }
    }

    /// <summary>Statuses worth another attempt: 408, 429 and 5xx.</summary>
    public static bool IsTransient(HttpStatusCode code) =>
        code is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests || (int)code >= 500;

    /// <summary>The first 200 characters of a server's answer, for error messages.</summary>
    public static string Excerpt(string text) => text.Length <= 200 ? text : text[..200] + "…";
}
