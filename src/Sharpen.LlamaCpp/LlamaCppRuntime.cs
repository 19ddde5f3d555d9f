using System.Collections.Concurrent;
using LLama.Native;

namespace Sharpen.LlamaCpp;

/// <summary>
/// Loads llama.cpp (LLamaSharp's CPU backend) quietly: its log lines are not printed, but the last error lines are kept so
/// that a failed load or decode can say what llama.cpp complained about.
/// </summary>
public static class LlamaCppRuntime
{
    static readonly object Gate = new();
    static bool _configured;
    static readonly ConcurrentQueue<string> Errors = new();
    static readonly NativeLogConfig.LLamaLogCallback Callback = OnLog;   // kept alive for the native side

    /// <summary>Routes llama.cpp's logs away from the console; call before the first llama.cpp call (repeat calls are free).</summary>
    public static void EnsureConfigured()
    {
        lock (Gate)
        {
            if (_configured) return;
            if (!NativeLibraryConfig.LLama.LibraryHasLoaded) NativeLibraryConfig.All.WithLogCallback(Callback);
            else NativeLogConfig.llama_log_set(Callback);
            _configured = true;
        }
    }

    static void OnLog(LLamaLogLevel level, string message)
    {
        if (level != LLamaLogLevel.Error) return;
        Errors.Enqueue(message.TrimEnd());
        while (Errors.Count > 8) Errors.TryDequeue(out _);
    }

    /// <summary>The last error lines llama.cpp logged (oldest first), cleared by the call.</summary>
    public static string TakeErrors()
    {
        var lines = new List<string>();
        while (Errors.TryDequeue(out var l)) lines.Add(l);
        return string.Join(" | ", lines);
    }
}
