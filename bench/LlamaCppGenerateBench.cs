using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Generation;
using Sharpen.LlamaCpp;
using Sharpen.Models;

namespace Sharpen.Bench;

/// <summary>
/// The torch engine and the llama.cpp engine side by side on the same random weights (the two models of the rollout-engine
/// issue: Llama 26M, Qwen2 9.8M; <see cref="GenerateBench.Models"/>), greedy, 32-token prompts, 64 new tokens, prompt phase
/// included, llama.cpp with f32 weights and cache on the same threads. Each engine is warmed up, then the two alternate
/// <c>repeats</c> times and each keeps its best run, so load that comes and goes hits both. Rows carry both rates,
/// torch / llama.cpp, and the share of greedy tokens on which the two engines agree (they run the same weights, so it
/// shows they did the same work).
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
            var rng = new Random(7);
            foreach (var b in batches)
            {
                var prompts = GenerateBench.RandomPrompts(rng, b, promptLength, cfg.VocabSize);
                var o = new SamplingOptions { Temperature = 0, MaxNewTokens = newTokens, StopAtEos = false, MaxBatchSequences = 1024 };
                IReadOnlyList<Rollout>? torchOut = null, llamaOut = null;
                double Rate(IRolloutEngine engine, ref IReadOnlyList<Rollout>? outs)
                {
                    var sw = Stopwatch.StartNew();
                    outs = engine.Generate(prompts, o);
                    return outs.Sum(r => (long)r.CompletionIds.Length) / sw.Elapsed.TotalSeconds;
                }
                torchEngine.Generate(prompts.Take(1).ToList(), o with { MaxNewTokens = 4 });   // warm-up
                llama.Generate(prompts.Take(1).ToList(), o with { MaxNewTokens = 4 });
                double t = 0, l = 0;
                for (int r = 0; r < repeats; r++)
                {
                    t = Math.Max(t, Rate(torchEngine, ref torchOut));
                    l = Math.Max(l, Rate(llama, ref llamaOut));
                }
                double agree = torchOut!.Zip(llamaOut!).Average(p => p.First.CompletionIds.Zip(p.Second.CompletionIds).TakeWhile(x => x.First == x.Second).Count() / (double)newTokens);
                log($"generate {name} batch {b}: torch {t:F0} tokens/s, llama.cpp {l:F0} tokens/s (ratio {t / l:F2}; best of {repeats} each, alternating; greedy tokens agree before the first difference: {agree:P0})");
                rows.Add(new JsonObject
                {
                    ["model"] = name, ["params"] = model.ParameterCount(), ["batch"] = b, ["prompt_tokens"] = promptLength, ["new_tokens"] = newTokens,
                    ["torch_tokens_per_s"] = Math.Round(t, 1), ["llamacpp_tokens_per_s"] = Math.Round(l, 1), ["torch_over_llamacpp"] = Math.Round(t / l, 2),
                    ["greedy_prefix_agreement"] = Math.Round(agree, 3),
                });
            }
        }
        return rows;
    }
}
