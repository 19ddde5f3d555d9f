using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Generation;
using Sharpen.LlamaCpp;
using Sharpen.Models;
using Sharpen.Tokenizers;

namespace Sharpen.Bench;

/// <summary>
/// The torch engine and the llama.cpp engine side by side on the same random weights (the two models of the rollout-engine
/// issue: Llama 26M, Qwen2 9.8M), greedy, 32-token prompts, 64 new tokens, prompt phase included, llama.cpp with f32
/// weights and cache on the same threads. Rows carry both rates and torch / llama.cpp.
/// </summary>
public static class LlamaCppGenerateBench
{
    /// <summary>Llama 26M: h512, 8 layers, 8/4 heads, ffn 1536, vocab 1000, untied.</summary>
    public static ModelConfig Llama26M => new()
    {
        ModelType = "llama", VocabSize = 1000, HiddenSize = 512, IntermediateSize = 1536, NumHiddenLayers = 8,
        NumAttentionHeads = 8, NumKeyValueHeads = 4, MaxPositionEmbeddings = 1024, EosTokenIds = [2], BosTokenId = 1, PadTokenId = 0,
    };

    /// <summary>Qwen2 9.8M: h384, 6 layers, 6/2 heads, ffn 1024, vocab 1000, tied.</summary>
    public static ModelConfig Qwen2_10M => new()
    {
        ModelType = "qwen2", VocabSize = 1000, HiddenSize = 384, IntermediateSize = 1024, NumHiddenLayers = 6,
        NumAttentionHeads = 6, NumKeyValueHeads = 2, MaxPositionEmbeddings = 1024, TieWordEmbeddings = true, EosTokenIds = [2], BosTokenId = 1, PadTokenId = 0,
    };

    public static JsonArray Run(Action<string> log, int newTokens = 64, int promptLength = 32, int[]? batches = null)
    {
        batches ??= [1, 16, 64];
        var rows = new JsonArray();
        var tokenizer = TokenizerFiles.FromSpec("chars:" + string.Concat(Enumerable.Range(0, 996).Select(i => (char)(0x100 + i))));
        foreach (var (name, cfg) in new[] { ("llama-26M", Llama26M), ("qwen2-9.8M", Qwen2_10M) })
        {
            using var model = new CausalLM(cfg, seed: 1);
            var torchEngine = new RolloutEngine(model, tokenizer);
            using var llama = new LlamaCppEngine(model, tokenizer, new LlamaCppOptions { Threads = TorchSharp.torch.get_num_threads() });
            var rng = new Random(7);
            foreach (var b in batches)
            {
                var prompts = Enumerable.Range(0, b)
                    .Select(_ => (IReadOnlyList<int>)Enumerable.Range(0, promptLength).Select(_ => rng.Next(4, tokenizer.VocabSize)).ToArray()).ToList();
                var o = new SamplingOptions { Temperature = 0, MaxNewTokens = newTokens, StopAtEos = false, MaxBatchSequences = 1024 };
                double Rate(IRolloutEngine engine)
                {
                    engine.Generate(prompts.Take(1).ToList(), o with { MaxNewTokens = 4 });   // warm-up
                    var sw = Stopwatch.StartNew();
                    var outs = engine.Generate(prompts, o);
                    return outs.Sum(r => (long)r.CompletionIds.Length) / sw.Elapsed.TotalSeconds;
                }
                double t = Rate(torchEngine), l = Rate(llama);
                log($"generate {name} batch {b}: torch {t:F0} tokens/s, llama.cpp {l:F0} tokens/s (ratio {t / l:F2})");
                rows.Add(new JsonObject
                {
                    ["model"] = name, ["params"] = model.ParameterCount(), ["batch"] = b, ["prompt_tokens"] = promptLength, ["new_tokens"] = newTokens,
                    ["torch_tokens_per_s"] = Math.Round(t, 1), ["llamacpp_tokens_per_s"] = Math.Round(l, 1), ["torch_over_llamacpp"] = Math.Round(t / l, 2),
                });
            }
        }
        return rows;
    }
}
