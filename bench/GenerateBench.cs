using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;
using Sharpen.Torch;

namespace Sharpen.Bench;

/// <summary>
/// Decode throughput of the rollout engine: new tokens per second at batch 1, 16 and 64, 64 new
/// tokens after a 32-token prompt, with and without the KV cache. Every sequence runs the full 64
/// tokens (EOS is ignored) so all configurations do the same work.
/// </summary>
public static class GenerateBench
{
    public static JsonObject Run(Action<string> log, int newTokens = 64, int promptLength = 32, int[]? batches = null)
    {
        Sharpen.Torch.TorchRuntime.EnsureLoaded();
        batches ??= [1, 16, 64];
        var rows = new JsonArray();
        var alphabet = string.Concat(Enumerable.Range(0, 508).Select(i => (char)(0x100 + i)));
        var tokenizer = TokenizerFiles.FromSpec("chars:" + alphabet);
        foreach (var (name, cfg) in BenchModels.All)
        {
            using var model = new CausalLM(cfg with { VocabSize = tokenizer.VocabSize }, seed: 1);
            var engine = new RolloutEngine(model, tokenizer);
            var rng = new Random(7);
            foreach (var b in batches)
            {
                var prompts = Enumerable.Range(0, b)
                    .Select(_ => (IReadOnlyList<int>)Enumerable.Range(0, promptLength).Select(_ => rng.Next(4, tokenizer.VocabSize)).ToArray())
                    .ToList();
                var rates = new Dictionary<bool, double>();
                foreach (var cached in new[] { true, false })
                {
                    var o = new SamplingOptions { MaxNewTokens = newTokens, StopAtEos = false, UseKvCache = cached, Seed = 3, MaxBatchSequences = 1024 };
                    engine.Generate(prompts.Take(1).ToList(), o with { MaxNewTokens = 4 });   // warm-up
                    var sw = Stopwatch.StartNew();
                    var outs = engine.Generate(prompts, o);
                    sw.Stop();
                    long produced = outs.Sum(r => (long)r.CompletionIds.Length);
                    rates[cached] = produced / sw.Elapsed.TotalSeconds;
                    log($"generate {name} batch {b} {(cached ? "kv-cache" : "recompute")}: {rates[cached]:F0} tokens/s ({sw.Elapsed.TotalSeconds:F1} s)");
                }
                rows.Add(new JsonObject
                {
                    ["model"] = name, ["params"] = model.ParameterCount(), ["batch"] = b, ["prompt_tokens"] = promptLength,
                    ["new_tokens"] = newTokens, ["tokens_per_s_kv_cache"] = Math.Round(rates[true], 1),
                    ["tokens_per_s_recompute"] = Math.Round(rates[false], 1),
                    ["kv_cache_speedup"] = Math.Round(rates[true] / rates[false], 2),
                });
            }
        }
        return new JsonObject { ["benchmark"] = "generate", ["threads"] = get_num_threads(), ["rows"] = rows, ["llamacpp"] = LlamaCppGenerateBench.Run(log, newTokens, promptLength, batches) };
    }
}
