using System.Runtime.InteropServices;
using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Tests.Torch;

/// <summary>
/// The allocator settings applied when torch loads (fixed mmap threshold, raised in training scopes; trim threshold, arena cap on Linux glibc) and
/// the process memory readings the benchmarks and RL metrics use.
/// </summary>
public class ProcessMemoryTests
{
    // glibc keeps each chunk's size word just before the memory it returns; bit 1 says the chunk was mmapped on its own.
    static bool ChunkIsMmapped(Tensor t) => (Marshal.ReadInt64(t.storage<float>().data_ptr() - 8) & 0x2) != 0;

    static bool SomeAllocationIsMmapped(long floats)
    {
        var live = new List<Tensor>();
        try
        {
            for (int i = 0; i < 4; i++)
            {
                live.Add(zeros(floats));
                if (ChunkIsMmapped(live[^1])) return true;
            }
            return false;
        }
        finally { foreach (var t in live) t.Dispose(); }
    }

    [Fact]
    public void Large_tensors_are_mapped_on_their_own_and_training_scopes_raise_the_threshold_while_any_is_open()
    {
        TorchRuntime.EnsureLoaded();
        if (!ProcessMemory.IsGlibc) { Assert.Equal("not glibc", ProcessMemory.Settings); return; }
        if (Environment.GetEnvironmentVariable("SHARPEN_MALLOC") is "default")
        {
            Assert.Equal("default", ProcessMemory.Settings);
            Assert.Null(ProcessMemory.CurrentMmapThreshold);
            using (ProcessMemory.TrainingScope()) Assert.Null(ProcessMemory.CurrentMmapThreshold);   // a no-op
            return;
        }
        Assert.Equal($"glibc: mmap_threshold={1 << 20} ({32 << 20} in training scopes), trim_threshold={1 << 20}, arena_max=2", ProcessMemory.Settings);
        Assert.Equal(ProcessMemory.Settings, ProcessMemory.Configure());                 // once per process

        // 64 MiB is past either threshold: mapped on its own, so freeing it returns the memory. malloc serves a request from
        // a free heap chunk that fits before it considers mmap, and in a busy test process such a chunk may exist, so the size
        // is allocated up to four times, all kept alive.
        Assert.True(SomeAllocationIsMmapped(16L << 20), "no 64 MiB tensor of four was mapped on its own");
        // Scopes nest and are counted (an SFT test may hold one at the same time: the threshold is process-wide). Which
        // smaller block is mapped depends on the free chunks the heap holds at that moment, so the effect on speed and
        // memory is measured by `sharpen bench memory` and the quickstart, not here.
        var outer = ProcessMemory.TrainingScope();
        using (ProcessMemory.TrainingScope()) Assert.Equal(32 << 20, ProcessMemory.CurrentMmapThreshold);
        Assert.Equal(32 << 20, ProcessMemory.CurrentMmapThreshold);                      // the outer scope still holds it
        outer.Dispose();
        outer.Dispose();                                                                  // a second dispose must not release another holder's scope
    }

    [Fact]
    public void Resident_and_peak_readings_follow_a_touched_allocation_and_the_peak_can_be_reset()
    {
        TorchRuntime.EnsureLoaded();
        if (!OperatingSystem.IsLinux()) return;
        long before = ProcessMemory.ResidentBytes();
        Assert.True(before > 10 << 20, $"RSS {before} bytes is implausibly small for a process with libtorch loaded");
        using (var t = ones(128L << 20 >> 2))                                          // 128 MiB, every page written
        {
            long during = ProcessMemory.ResidentBytes();
            Assert.True(ProcessMemory.PeakResidentBytes() >= during);
            Assert.True(during - before > 96 << 20, $"RSS grew by {(during - before) >> 20} MiB while 128 MiB were touched");
        }
        Assert.True(ProcessMemory.ResetPeak());
        long peak = ProcessMemory.PeakResidentBytes(), now = ProcessMemory.ResidentBytes();
        // After the reset the peak is the current RSS, not the 128 MiB above it (other test threads may allocate or free
        // in between: allow 32 MiB either way).
        Assert.InRange(peak - now, -(32L << 20), 32L << 20);
    }
}
