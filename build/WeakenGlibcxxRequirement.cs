// MSBuild task (compiled by RoslynCodeTaskFactory from build/TorchNative.targets).
//
// TorchSharp-cpu 0.107.0's libLibTorchSharp.so lists GLIBCXX_3.4.32 among the versions it
// needs from libstdc++.so.6. The only symbol bound to that version is
// std::ios_base_library_init, which no relocation references, so the library works with an
// older libstdc++ once that one requirement is marked weak (VER_FLG_WEAK in its Vernaux entry
// of .gnu.version_r): the dynamic loader then only notes the missing version instead of
// refusing to load. This task flips that flag in the copies found under the given folders
// (the build or publish output), never in the NuGet cache, and only when the system
// libstdc++ lacks the version.
using System;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public sealed class WeakenGlibcxxRequirement : Task
{
    const string Version = "GLIBCXX_3.4.32";
    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    [Required] public string[] Folders { get; set; } = Array.Empty<string>();

    /// <summary>Patch even when this machine needs no patch (or is not Linux): for outputs that are packed and run
    /// elsewhere, such as the Sharpen.Cli tool package.</summary>
    public bool Force { get; set; }

    public override bool Execute()
    {
        if (Force) { PatchAll(); return !Log.HasLoggedErrors; }
        if (!System.Runtime.InteropServices.RuntimeInformation.IsOSPlatform(System.Runtime.InteropServices.OSPlatform.Linux)) return true;
        if (SystemHasVersion(out var where))
        {
            Log.LogMessage(MessageImportance.Low, $"libstdc++ at {where} provides {Version}; no patch needed.");
            return true;
        }
        PatchAll();
        return !Log.HasLoggedErrors;
    }

    void PatchAll()
    {
        foreach (var folder in Folders.Where(Directory.Exists).Distinct())
        {
            foreach (var file in Directory.EnumerateFiles(folder, "libLibTorchSharp.so", SearchOption.AllDirectories))
            {
                try
                {
                    var result = Patch(file);
                    Log.LogMessage(MessageImportance.Normal, $"{file}: {result}");
                }
                catch (Exception e)
                {
                    Log.LogWarning($"{file}: could not mark {Version} weak: {e.Message}");
                }
            }
        }
    }

    /// <summary>True when a libstdc++.so.6 the loader would find defines the version.</summary>
    static bool SystemHasVersion(out string where)
    {
        var dirs = (Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? "")
            .Split(new[] { ':' }, StringSplitOptions.RemoveEmptyEntries)
            .Concat(new[] { "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
                            "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib", "/usr/local/lib" });
        var needle = Encoding.ASCII.GetBytes(Version + "\0");
        bool sawAny = false;
        foreach (var d in dirs)
        {
            var p = Path.Combine(d, "libstdc++.so.6");
            if (!File.Exists(p)) continue;
            sawAny = true;
            var bytes = File.ReadAllBytes(p);
            if (IndexOf(bytes, needle) >= 0) { where = p; return true; }
        }
        where = "";
        // No libstdc++ found at all (static or musl system): nothing we can sensibly do.
        return !sawAny;
    }

    /// <summary>Sets VER_FLG_WEAK on the Vernaux entry naming the version. Returns what it did.</summary>
    static string Patch(string path)
    {
        var data = File.ReadAllBytes(path);
        if (data.Length < 64 || data[0] != 0x7f || data[1] != (byte)'E' || data[2] != (byte)'L' || data[3] != (byte)'F')
            return "not an ELF file; left alone";
        if (data[4] != 2 || data[5] != 1) return "not a little-endian ELF64 file; left alone";
        ulong shoff = BitConverter.ToUInt64(data, 0x28);
        int shentsize = BitConverter.ToUInt16(data, 0x3A);
        int shnum = BitConverter.ToUInt16(data, 0x3C);
        for (int i = 0; i < shnum; i++)
        {
            long sh = checked((long)shoff + (long)i * shentsize);
            if (BitConverter.ToUInt32(data, (int)sh + 4) != ShtGnuVerneed) continue;
            long offset = (long)BitConverter.ToUInt64(data, (int)sh + 0x18);
            int link = (int)BitConverter.ToUInt32(data, (int)sh + 0x28);
            int count = (int)BitConverter.ToUInt32(data, (int)sh + 0x2C);
            long strOff = (long)BitConverter.ToUInt64(data, (int)(checked((long)shoff + (long)link * shentsize) + 0x18));
            long vn = offset;
            for (int n = 0; n < count; n++)
            {
                int cnt = BitConverter.ToUInt16(data, (int)vn + 2);
                long aux = vn + BitConverter.ToUInt32(data, (int)vn + 8);
                for (int a = 0; a < cnt; a++)
                {
                    uint nameOff = BitConverter.ToUInt32(data, (int)aux + 8);
                    if (ReadCString(data, strOff + nameOff) == Version)
                    {
                        ushort flags = BitConverter.ToUInt16(data, (int)aux + 4);
                        if ((flags & VerFlgWeak) != 0) return $"{Version} already weak";
                        flags |= VerFlgWeak;
                        BitConverter.GetBytes(flags).CopyTo(data, (int)aux + 4);
                        // Write beside and rename, so a hard link into a package cache is never modified;
                        // keep the timestamp so incremental builds do not copy the original over it again.
                        var stamp = File.GetLastWriteTimeUtc(path);
                        var tmp = path + ".weak-tmp";
                        File.WriteAllBytes(tmp, data);
                        File.Delete(path);
                        File.Move(tmp, path);
                        File.SetLastWriteTimeUtc(path, stamp);
                        return $"marked {Version} weak";
                    }
                    uint next = BitConverter.ToUInt32(data, (int)aux + 12);
                    if (next == 0) break;
                    aux += next;
                }
                uint vnext = BitConverter.ToUInt32(data, (int)vn + 12);
                if (vnext == 0) break;
                vn += vnext;
            }
        }
        return $"does not require {Version}; left alone";
    }

    static int IndexOf(byte[] hay, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= hay.Length; i++)
        {
            if (hay[i] != needle[0]) continue;
            int j = 1;
            while (j < needle.Length && hay[i + j] == needle[j]) j++;
            if (j == needle.Length) return i;
        }
        return -1;
    }

    static string ReadCString(byte[] data, long start)
    {
        long end = start;
        while (end < data.Length && data[end] != 0) end++;
        return Encoding.ASCII.GetString(data, (int)start, (int)(end - start));
    }
}
