using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Sharpen.Models;
using static TorchSharp.torch;
using Sharpen.Checkpoints;

namespace Sharpen.Training;

/// <summary>
/// The cache of per-sequence reference log-probs that offline trainers compute once (<c>reference_logprobs.json</c>):
/// a JSON object with a <c>key</c> (SHA-256 of the reference weights and the tokenized data) and named arrays. A cache
/// whose key, names or lengths do not match is ignored and recomputed.
/// </summary>
static class ReferenceCache
{
    /// <summary>SHA-256 over <paramref name="model"/>'s weights (names, shapes, dtypes, bytes), <paramref name="count"/> and the token arrays, as hex.</summary>
    public static string Key(CausalLM model, int count, IEnumerable<int[]> sequences)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (no_grad())
        using (NewDisposeScope())   // frees a LoRA model's merged weights
        {
            foreach (var (name, w) in model.Weights().OrderBy(w => w.Name, StringComparer.Ordinal))
            {
                using var scope = NewDisposeScope();
                hash.AppendData(System.Text.Encoding.UTF8.GetBytes($"{name}:{w.dtype}:[{string.Join(",", w.shape)}];"));
                var t = w.detach().cpu().contiguous();
                hash.AppendData(t.bytes);
            }
        }
        hash.AppendData(BitConverter.GetBytes(count));
        foreach (var xs in sequences) { hash.AppendData(BitConverter.GetBytes(xs.Length)); hash.AppendData(MemoryMarshal.AsBytes(xs.AsSpan())); }
        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>The arrays <paramref name="names"/> (each of length <paramref name="n"/>) from <paramref name="path"/> when its key matches, else null.</summary>
    public static float[][]? TryLoad(string path, string key, int n, string[] names, Action<string>? log) =>
        TryLoad(path, key, names.Select(name => (name, n)).ToArray(), log);

    /// <summary>The named arrays, each of its own length, from <paramref name="path"/> when its key matches, else null.</summary>
    public static float[][]? TryLoad(string path, string key, IReadOnlyList<(string Name, int Length)> arraysWanted, Action<string>? log)
    {
        if (!File.Exists(path)) return null;
        try
        {
            var cached = JsonNode.Parse(File.ReadAllText(path));
            if (cached?["key"]?.GetValue<string>() != key) return null;
            var arrays = arraysWanted.Select(w => cached[w.Name]?.AsArray().Select(x => x!.GetValue<float>()).ToArray()).ToArray();
            if (arrays.Zip(arraysWanted).Any(p => p.First?.Length != p.Second.Length)) return null;
            log?.Invoke($"reference log-probs: cached ({path})");
            return arrays!;
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException)
        {
            log?.Invoke($"reference log-probs: unreadable cache {path} ({e.Message}); recomputing");
            return null;
        }
    }

    /// <summary>Writes the cache atomically: <c>key</c>, <paramref name="countName"/> = n, and the named arrays.</summary>
    public static void Save(string path, string key, string countName, IReadOnlyList<(string Name, float[] Values)> arrays)
    {
        var json = new JsonObject { ["key"] = key, [countName] = arrays[0].Values.Length };
        foreach (var (name, values) in arrays) json[name] = new JsonArray(values.Select(x => (JsonNode)x).ToArray());
        AtomicFile.WriteAllText(path, json.ToJsonString());
    }
}
