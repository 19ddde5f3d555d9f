using System.Runtime.InteropServices;

namespace Sharpen.Torch;

/// <summary>
/// The process's native memory: resident and peak resident set size (Linux <c>/proc/self/status</c>), glibc's heap
/// statistics (<c>mallinfo2</c>), returning freed heap to the system (<c>malloc_trim</c>) and the allocator settings Sharpen
/// applies at start-up (<see cref="Configure"/>). libtorch's CPU tensors come from the C library's malloc, so on Linux
/// glibc decides how much of the memory a run frees goes back to the system.
/// </summary>
public static class ProcessMemory
{
    // mallopt parameters (glibc malloc.h).
    internal const int M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3, M_ARENA_MAX = -8;

    /// <summary>Blocks at least this large are mapped on their own and unmapped when freed (a fixed threshold; glibc's
    /// default starts at 128 KiB and rises to the largest freed mapped block, up to 32 MiB, after which big tensors come
    /// from the heap and stay there).</summary>
    public const int MmapThreshold = 1024 * 1024;
    /// <summary>Free memory at the top of the heap beyond this is returned to the system at once.</summary>
    public const int TrimThreshold = 1024 * 1024;
    /// <summary>The mmap threshold while a <see cref="TrainingScope"/> is open (SFT). Every tensor at or past the threshold
    /// is fresh zero-filled pages from the kernel; at the quickstart's sizes most activations are 1–8 MiB, and mapping each
    /// one made SFT about 40% slower (21.5 million page faults against 2.8 million on a short quickstart). Below this
    /// threshold they are reused from the heap step after step.</summary>
    public const int TrainingMmapThreshold = 32 * 1024 * 1024;
    /// <summary>At most this many malloc arenas (glibc's default is 8 per core).</summary>
    public const int ArenaMax = 2;

    [DllImport("libc", EntryPoint = "mallopt")] static extern int Mallopt(int param, int value);
    [DllImport("libc", EntryPoint = "malloc_trim")] static extern int MallocTrim(nuint pad);
    [DllImport("libc", EntryPoint = "mallinfo2")] static extern MallInfo2 MallInfo2Native();
    [DllImport("libc", EntryPoint = "gnu_get_libc_version")] static extern IntPtr GnuGetLibcVersion();

    [StructLayout(LayoutKind.Sequential)]
    struct MallInfo2
    {
        public nuint Arena, Ordblks, Smblks, Hblks, Hblkhd, Usmblks, Fsmblks, Uordblks, Fordblks, Keepcost;
    }

    static readonly object Gate = new();
    static bool _configured, _applied;
    static int _trainingScopes;

    /// <summary>Whether the C library is glibc (the settings and heap statistics exist only there).</summary>
    public static bool IsGlibc { get; } = DetectGlibc();

    /// <summary>The allocator settings in force: "glibc: mmap_threshold=…, trim_threshold=…, arena_max=…", "default"
    /// (asked for with <c>SHARPEN_MALLOC=default</c>), or "not glibc".</summary>
    public static string Settings { get; private set; } = "not configured";

    static bool DetectGlibc()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try { return GnuGetLibcVersion() != IntPtr.Zero; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
    }

    /// <summary>
    /// Applies Sharpen's allocator settings once per process (called by <see cref="TorchRuntime.EnsureLoaded"/>): on Linux
    /// glibc a fixed mmap threshold (<see cref="MmapThreshold"/>), a trim threshold (<see cref="TrimThreshold"/>) and at
    /// most <see cref="ArenaMax"/> arenas. With the environment variable <c>SHARPEN_MALLOC=default</c> it changes nothing.
    /// Returns <see cref="Settings"/>.
    /// </summary>
    public static string Configure()
    {
        lock (Gate)
        {
            if (_configured) return Settings;
            _configured = true;
            if (!IsGlibc) return Settings = "not glibc";
            if (string.Equals(Environment.GetEnvironmentVariable("SHARPEN_MALLOC"), "default", StringComparison.OrdinalIgnoreCase))
                return Settings = "default";
            bool ok = Mallopt(M_MMAP_THRESHOLD, MmapThreshold) == 1
                      & Mallopt(M_TRIM_THRESHOLD, TrimThreshold) == 1
                      & Mallopt(M_ARENA_MAX, ArenaMax) == 1;
            _applied = ok;
            return Settings = ok
                ? $"glibc: mmap_threshold={MmapThreshold} ({TrainingMmapThreshold} in training scopes), trim_threshold={TrimThreshold}, arena_max={ArenaMax}"
                : "glibc: mallopt refused a setting";
        }
    }

    /// <summary>
    /// Raises the mmap threshold to <see cref="TrainingMmapThreshold"/> until the returned scope is disposed (scopes nest;
    /// the last one out restores <see cref="MmapThreshold"/> and trims the heap). Used around SFT, whose activations are
    /// the same sizes every step and so are reused from the heap; not around RL, whose generation and scoring passes grow
    /// and vary in size and left a 25M model's GRPO step at 3.9 GB with the higher threshold (1.9 GB without). A no-op
    /// unless <see cref="Configure"/> applied Sharpen's settings. The threshold is process-wide.
    /// </summary>
    public static IDisposable TrainingScope()
    {
        lock (Gate)
        {
            if (!_applied) return NoScope.Instance;
            if (_trainingScopes++ == 0) Mallopt(M_MMAP_THRESHOLD, TrainingMmapThreshold);
            return new Scope();
        }
    }

    sealed class NoScope : IDisposable
    {
        public static readonly NoScope Instance = new();
        public void Dispose() { }
    }

    sealed class Scope : IDisposable
    {
        int _disposed;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
            lock (Gate)
            {
                if (--_trainingScopes != 0) return;
                Mallopt(M_MMAP_THRESHOLD, MmapThreshold);
                Trim();
            }
        }
    }

    /// <summary>The mmap threshold in force now (Sharpen's settings only; null when they are not applied).</summary>
    public static int? CurrentMmapThreshold
    {
        get { lock (Gate) return !_applied ? null : _trainingScopes > 0 ? TrainingMmapThreshold : MmapThreshold; }
    }

    /// <summary>Returns the heap's free memory to the system (glibc <c>malloc_trim(0)</c>); false elsewhere or when nothing was released.</summary>
    public static bool Trim() => IsGlibc && MallocTrim(0) == 1;

    /// <summary>glibc heap statistics in bytes: Arena = heap obtained with sbrk (main arena) and other arenas' heaps,
    /// Mapped = blocks mapped on their own, InUse = allocated from the heap, Free = free in the heap. Null when not glibc.</summary>
    public static (long Arena, long Mapped, long InUse, long Free)? HeapStats()
    {
        if (!IsGlibc) return null;
        try
        {
            var m = MallInfo2Native();
            return ((long)m.Arena, (long)m.Hblkhd, (long)m.Uordblks, (long)m.Fordblks);
        }
        catch (EntryPointNotFoundException) { return null; }   // glibc before 2.33
    }

    /// <summary>Resident set size in bytes (VmRSS), or the working set where /proc is missing.</summary>
    public static long ResidentBytes() => Status("VmRSS:") ?? Environment.WorkingSet;

    /// <summary>Peak resident set size in bytes since start or the last <see cref="ResetPeak"/> (VmHWM), or the process's peak working set.</summary>
    public static long PeakResidentBytes() => Status("VmHWM:") ?? System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64;

    /// <summary>Resets the peak resident set size to the current one (Linux: writes 5 to /proc/self/clear_refs). False where unsupported.</summary>
    public static bool ResetPeak()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try { File.WriteAllText("/proc/self/clear_refs", "5"); return true; }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    static long? Status(string key)
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(key, StringComparison.Ordinal))
                {
                    var parts = line[key.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[0]) * 1024;                                        // kB
                }
        }
        catch (IOException) { }
        return null;
    }
}
