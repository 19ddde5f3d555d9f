using System.Runtime.InteropServices;
using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Tests.Torch;

/// <summary>
/// The allocator settings applied when torch loads (fixed mmap threshold, trim threshold, arena cap on Linux glibc) and
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
    public void Large_tensors_are_mapped_on_their_own_after_a_large_free_so_freeing_them_returns_the_memory()
    {
        TorchRuntime.EnsureLoaded();
        if (!ProcessMemory.IsGlibc) { Assert.Equal("not glibc", ProcessMemory.Settings); return; }
        if (Environment.GetEnvironmentVariable("SHARPEN_MALLOC") is "default") { Assert.Equal("default", ProcessMemory.Settings); return; }
        Assert.Equal($"glibc: mmap_threshold={1024 * 1024}, trim_threshold={1024 * 1024}, arena_max=2", ProcessMemory.Settings);
        Assert.Equal(ProcessMemory.Settings, ProcessMemory.Configure());                 // once per process

        // With glibc's dynamic threshold, freeing a 16 MiB mapped block raises the threshold to 16 MiB, and the next
        // 4 MiB tensor would come from the heap (where freed memory stays resident). With the fixed threshold it is mapped.
        // malloc serves a request from a free heap chunk that fits before it considers mmap, and in a busy test process such a
        // chunk may exist (it did twice under CI), so each size is allocated up to four times, all kept alive: a free chunk
        // serves once, while under the dynamic threshold every one of the four would come from the heap.
        Assert.True(SomeAllocationIsMmapped(4L << 20), "no 16 MiB tensor of four was mapped on its own");
        Assert.True(SomeAllocationIsMmapped(1L << 20), "no 4 MiB tensor of four was mapped on its own after a 16 MiB free");
        using var below = zeros(512 * 1024 / 4);                                        // 512 KiB: from the heap
        Assert.False(ChunkIsMmapped(below));
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
