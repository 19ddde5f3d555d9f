using System.Text;
using Sharpen.Torch;

namespace Sharpen.Tests.Torch;

/// <summary>
/// The build's libstdc++ workaround: the copy of libLibTorchSharp.so in this test's output is
/// patched (GLIBCXX_3.4.32 weak) exactly when the system libstdc++ lacks that version, and the
/// NuGet cache's copy is never touched.
/// </summary>
public class NativePatchTests
{
    const string Version = "GLIBCXX_3.4.32";

    /// <summary>vna_flags of the Vernaux entry naming <see cref="Version"/>, read from the ELF's .gnu.version_r section; null if absent.</summary>
    static ushort? VersionFlags(string path)
    {
        var d = File.ReadAllBytes(path);
        ulong shoff = BitConverter.ToUInt64(d, 0x28);
        int shentsize = BitConverter.ToUInt16(d, 0x3A), shnum = BitConverter.ToUInt16(d, 0x3C);
        for (int i = 0; i < shnum; i++)
        {
            int sh = (int)shoff + i * shentsize;
            if (BitConverter.ToUInt32(d, sh + 4) != 0x6ffffffe) continue;   // SHT_GNU_verneed
            int off = (int)BitConverter.ToUInt64(d, sh + 0x18);
            int link = (int)BitConverter.ToUInt32(d, sh + 0x28), count = (int)BitConverter.ToUInt32(d, sh + 0x2C);
            int str = (int)BitConverter.ToUInt64(d, (int)shoff + link * shentsize + 0x18);
            int vn = off;
            for (int n = 0; n < count; n++)
            {
                int aux = vn + (int)BitConverter.ToUInt32(d, vn + 8);
                for (int a = 0; a < BitConverter.ToUInt16(d, vn + 2); a++)
                {
                    int name = str + (int)BitConverter.ToUInt32(d, aux + 8), end = name;
                    while (d[end] != 0) end++;
                    if (Encoding.ASCII.GetString(d, name, end - name) == Version) return BitConverter.ToUInt16(d, aux + 4);
                    aux += (int)BitConverter.ToUInt32(d, aux + 12);
                }
                vn += (int)BitConverter.ToUInt32(d, vn + 12);
            }
        }
        return null;
    }

    static bool SystemLibstdcxxHasVersion() =>
        new[] { "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64" }
            .Select(dir => Path.Combine(dir, "libstdc++.so.6")).Where(File.Exists)
            .Any(p => File.ReadAllBytes(p).AsSpan().IndexOf(Encoding.ASCII.GetBytes(Version + "\0")) >= 0);

    [Fact]
    public void The_output_copy_is_patched_only_where_needed_and_the_package_cache_is_untouched()
    {
        if (!OperatingSystem.IsLinux()) return;   // the workaround is Linux-only by design
        TorchRuntime.EnsureLoaded();               // torch loads in this process: the workaround (if any) worked
        var output = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(output), output);
        var flags = VersionFlags(output);
        Assert.NotNull(flags);                     // TorchSharp-cpu 0.107.0 asks for the version
        bool weak = (flags!.Value & 0x2) != 0;      // VER_FLG_WEAK
        Assert.Equal(!SystemLibstdcxxHasVersion(), weak);

        var home = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                   ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var cached = Path.Combine(home, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        if (File.Exists(cached)) Assert.Equal(0, VersionFlags(cached)!.Value & 0x2);
    }
}
