using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Generation;
using Sharpen.LlamaCpp;
using Sharpen.Models;

namespace Sharpen.Bench;

/// <summary>
/// The torch engine and the llama.cpp engine side by side on the same random weights (the two models of the rollout-engine
/// issue: Llama 26M, Qwen2 9.8M; <see cref="GenerateBench.Models"/>), greedy, 32-token prompts, 64 new tokens, prompt phase
/// included, on the same threads: llama.cpp with f32 weights and cache (the same arithmetic as torch), and llama.cpp with
/// f16 weights and cache (llama.cpp's usual setting; half the bytes read per token, which decides batch 1). Each engine is
/// warmed up, then the three alternate <c>repeats</c> times and each keeps its best run, so load that comes and goes hits
/// all. Rows carry the rates, torch / llama.cpp for both, and the share of greedy tokens on which torch and f32 llama.cpp
/// agree (they run the same weights, so it shows they did the same work).
/// </summary>
public static class LlamaCppGenerateBench
{
    public static JsonArray Run(Action<string> log, int newTokens = 64, int promptLength = 32, int[]? batches = null, int repeats = 3)
    {
        batches ??= [1, 16, 64];
        var rows = new JsonArray();
        var tokenizer = GenerateBench.BenchTokenizer(1000);
        foreach (var (name, cfg) in GenerateBench.Models)
        {
            using var model = new CausalLM(cfg, seed: 1);
            var torchEngine = new RolloutEngine(model, tokenizer);
            using var llama = new LlamaCppEngine(model, tokenizer, new LlamaCppOptions { Threads = TorchSharp.torch.get_num_threads() });
            using var llama16 = new LlamaCppEngine(model, tokenizer, new LlamaCppOptions { Threads = TorchSharp.torch.get_num_threads(), DType = Sharpen.Export.GgufDType.F16, Float32Cache = false });
            var rng = new Random(7);
            foreach (var b in batches)
            {
                var prompts = GenerateBench.RandomPrompts(rng, b, promptLength, cfg.VocabSize);
                var o = new SamplingOptions { Temperature = 0, MaxNewTokens = newTokens, StopAtEos = false, MaxBatchSequences = 1024 };
                IReadOnlyList<Rollout>? torchOut = null, llamaOut = null, llama16Out = null;
                double Rate(IRolloutEngine engine, ref IReadOnlyList<Rollout>? outs)
                {
                    var sw = Stopwatch.StartNew();
                    outs = engine.Generate(prompts, o);
                    return outs.Sum(r => (long)r.CompletionIds.Length) / sw.Elapsed.TotalSeconds;
                }
                torchEngine.Generate(prompts.Take(1).ToList(), o with { MaxNewTokens = 4 });   // warm-up
                llama.Generate(prompts.Take(1).ToList(), o with { MaxNewTokens = 4 });
                llama16.Generate(prompts.Take(1).ToList(), o with { MaxNewTokens = 4 });
                double t = 0, l = 0, l16 = 0;
                for (int r = 0; r < repeats; r++)
                {
                    t = Math.Max(t, Rate(torchEngine, ref torchOut));
                    l = Math.Max(l, Rate(llama, ref llamaOut));
                    l16 = Math.Max(l16, Rate(llama16, ref llama16Out));
                }
                double agree = torchOut!.Zip(llamaOut!).Average(p => p.First.CompletionIds.Zip(p.Second.CompletionIds).TakeWhile(x => x.First == x.Second).Count() / (double)newTokens);
                log($"generate {name} batch {b}: torch {t:F0} tokens/s, llama.cpp f32 {l:F0} tokens/s (ratio {t / l:F2}), llama.cpp f16 {l16:F0} tokens/s (ratio {t / l16:F2}); " +
                    $"best of {repeats} each, alternating; greedy tokens agree before the first difference: {agree:P0}; load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
                rows.Add(new JsonObject
                {
                    ["model"] = name, ["params"] = model.ParameterCount(), ["batch"] = b, ["prompt_tokens"] = promptLength, ["new_tokens"] = newTokens,
                    ["torch_tokens_per_s"] = Math.Round(t, 1), ["llamacpp_tokens_per_s"] = Math.Round(l, 1), ["torch_over_llamacpp"] = Math.Round(t / l, 2),
                    ["greedy_prefix_agreement"] = Math.Round(agree, 3),
                    ["llamacpp_f16_tokens_per_s"] = Math.Round(l16, 1), ["torch_over_llamacpp_f16"] = Math.Round(t / l16, 2),
                    ["llamacpp_context"] = $"{llama.ContextShape.Sequences} sequences × {llama.ContextShape.CellsPerSequence} cells, one KV stream each",
                });
            }
        }
        return rows;
    }
}
