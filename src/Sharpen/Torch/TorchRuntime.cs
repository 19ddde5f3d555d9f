using System.Runtime.InteropServices;
using TorchSharp;

namespace Sharpen.Torch;

/// <summary>
/// Loads libtorch once, sets the CPU thread count, and turns a failed native load into one
/// clear error that says what is missing and how to fix it.
/// </summary>
public static class TorchRuntime
{
    static readonly object Gate = new();
    static bool _ready;
    static Exception? _failure;

    /// <summary>
    /// Makes sure TorchSharp's native libraries are loaded. Every entry point of Sharpen that
    /// touches tensors calls this first. Throws <see cref="TorchUnavailableException"/> when
    /// libtorch cannot be loaded.
    /// </summary>
    public static void EnsureLoaded()
    {
        if (_ready) return;
        lock (Gate)
        {
            if (_ready) return;
            if (_failure is not null) throw new TorchUnavailableException(Explain(_failure), _failure);
            try
            {
                ProcessMemory.Configure();
                torch.InitializeDeviceType(DeviceType.CPU);
                var threads = Environment.GetEnvironmentVariable("SHARPEN_NUM_THREADS") is { } s && int.TryParse(s, out var n) && n > 0
                    ? n : Environment.ProcessorCount;
                torch.set_num_threads(threads);
                _ready = true;
            }
            catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or NotSupportedException
                                          or EntryPointNotFoundException or BadImageFormatException or InvalidOperationException)
            {
                _failure = e;
                throw new TorchUnavailableException(Explain(e), e);
            }
        }
    }

    static string Explain(Exception e)
    {
        var inner = e;
        while (inner.InnerException is not null) inner = inner.InnerException;
        var msg = "Sharpen could not load libtorch through TorchSharp (package TorchSharp-cpu 0.107.0). ";
        if (RuntimeInformation.IsOSPlatform(OSPlatform.Linux))
        {
            msg += "On Linux its libLibTorchSharp.so asks for GLIBCXX_3.4.32 (libstdc++ from GCC 13). " +
                   "Sharpen's build marks that requirement weak in the copy in your build output when the system " +
                   "libstdc++ lacks it; if you copied the binaries by hand or built without Sharpen's " +
                   "Directory.Build.targets, rebuild with `dotnet build` (or `dotnet publish`) from the repository, " +
                   "or install a libstdc++6 from GCC 13 or newer. ";
        }
        return msg + $"The native loader said: {inner.GetType().Name}: {inner.Message}";
    }
}

/// <summary>Thrown when the native torch libraries cannot be loaded.</summary>
public sealed class TorchUnavailableException(string message, Exception inner) : Exception(message, inner);
