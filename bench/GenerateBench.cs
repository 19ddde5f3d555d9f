using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;
using Sharpen.Torch;

namespace Sharpen.Bench;

/// <summary>
/// Prompt + decode throughput of the rollout engines on issue 16's two models (random weights): tokens/s for 32-token
/// prompts and 64 greedy new tokens at batch 1, 16 and 64, prompt phase included. Every sequence runs all 64 tokens (EOS
/// is ignored) so all configurations do the same work. One row per (engine, model, batch), so other engines add rows.
/// </summary>
public static class GenerateBench
{
    /// <summary>The issue's Llama: h512, 8 layers, 8/4 heads, ffn 1536, vocab 1000 (~26M parameters).</summary>
    public static ModelConfig Llama26M => new()
    {
        ModelType = "llama", VocabSize = 1000, HiddenSize = 512, IntermediateSize = 1536, NumHiddenLayers = 8,
        NumAttentionHeads = 8, NumKeyValueHeads = 4, MaxPositionEmbeddings = 2048, TieWordEmbeddings = false,
        EosTokenIds = [2], BosTokenId = 1, PadTokenId = 0,
    };

    /// <summary>The issue's Qwen2: h384, 6 layers, 6/2 heads, ffn 1024, tied embeddings, vocab 1000 (~9.8M parameters).</summary>
    public static ModelConfig Qwen2_10M => new()
    {
        ModelType = "qwen2", VocabSize = 1000, HiddenSize = 384, IntermediateSize = 1024, NumHiddenLayers = 6,
        NumAttentionHeads = 6, NumKeyValueHeads = 2, MaxPositionEmbeddings = 2048, TieWordEmbeddings = true,
        EosTokenIds = [2], BosTokenId = 1, PadTokenId = 0,
    };

    /// <summary>Both, with labels.</summary>
    public static IReadOnlyList<(string Name, ModelConfig Config)> Models => [("llama-26m", Llama26M), ("qwen2-9.8m", Qwen2_10M)];

    /// <summary>The built-in engine's variants measured side by side.</summary>
    static readonly (string Engine, Func<SamplingOptions, SamplingOptions> Options)[] Engines =
    [
        ("torch", o => o),
        ("torch-reference", o => o with { FastDecode = false }),
    ];

    /// <summary>
    /// The whole benchmark: fast path vs reference path, H₂O, and the torch vs llama.cpp comparison. With
    /// <paramref name="quick"/> only the torch vs llama.cpp comparison runs (a result named <c>generate-quick</c>).
    /// </summary>
    public static JsonObject Run(Action<string> log, int newTokens = 64, int promptLength = 32, int[]? batches = null, int repeats = 2, bool quick = false, bool profileOnly = false)
    {
        Sharpen.Torch.TorchRuntime.EnsureLoaded();
        batches ??= [1, 16, 64];
        if (profileOnly)
            return new JsonObject
            {
                ["benchmark"] = "generate-profile", ["threads"] = get_num_threads(), ["repeats"] = repeats,
                ["profile"] = Profile(log, newTokens, promptLength, repeats),
            };
        if (quick)
            return new JsonObject
            {
                ["benchmark"] = "generate-quick", ["threads"] = get_num_threads(), ["repeats"] = repeats,
                ["llamacpp"] = LlamaCppGenerateBench.Run(log, newTokens, promptLength, batches, repeats),
                ["profile"] = Profile(log, newTokens, promptLength, repeats),
            };
        var rows = new JsonArray();
        var tokenizer = BenchTokenizer(1000);
        foreach (var (name, cfg) in Models)
        {
            using var model = new CausalLM(cfg, seed: 1);
            var engine = new RolloutEngine(model, tokenizer);
            var rng = new Random(7);
            foreach (var b in batches)
            {
                var prompts = RandomPrompts(rng, b, promptLength, cfg.VocabSize);
                foreach (var (engineName, variant) in Engines)
                {
                    var o = variant(new SamplingOptions { Temperature = 0, MaxNewTokens = newTokens, StopAtEos = false, MaxBatchSequences = 1024 });
                    engine.Generate(prompts.Take(1).ToList(), o with { MaxNewTokens = 4 });   // warm-up
                    double best = 0, seconds = 0;
                    for (int r = 0; r < repeats; r++)
                    {
                        var sw = Stopwatch.StartNew();
                        var outs = engine.Generate(prompts, o);
                        sw.Stop();
                        double rate = outs.Sum(x => (long)x.CompletionIds.Length) / sw.Elapsed.TotalSeconds;
                        if (rate > best) (best, seconds) = (rate, sw.Elapsed.TotalSeconds);
                    }
                    log($"generate {engineName} {name} batch {b}: {best:F0} tokens/s ({seconds:F2} s, best of {repeats})");
                    rows.Add(new JsonObject
                    {
                        ["engine"] = engineName, ["model"] = name, ["params"] = model.ParameterCount(), ["batch"] = b,
                        ["prompt_tokens"] = promptLength, ["new_tokens"] = newTokens, ["tokens_per_s"] = Math.Round(best, 1),
                        ["seconds"] = Math.Round(seconds, 3),
                    });
                }
            }
        }
        var speedups = new JsonArray();
        foreach (var fast in rows.Where(r => (string)r!["engine"]! == "torch"))
        {
            var reference = rows.First(r => (string)r!["engine"]! == "torch-reference" && (string)r["model"]! == (string)fast!["model"]! && (int)r["batch"]! == (int)fast["batch"]!)!;
            speedups.Add(new JsonObject
            {
                ["model"] = (string)fast!["model"]!, ["batch"] = (int)fast["batch"]!, ["fast"] = (double)fast["tokens_per_s"]!,
                ["reference"] = (double)reference["tokens_per_s"]!,
                ["speedup"] = Math.Round((double)fast["tokens_per_s"]! / (double)reference["tokens_per_s"]!, 2),
            });
        }
        return new JsonObject
        {
            ["benchmark"] = "generate", ["threads"] = get_num_threads(), ["repeats"] = repeats, ["rows"] = rows,
            ["speedups"] = speedups, ["h2o"] = H2o(log, tokenizer),
            ["llamacpp"] = LlamaCppGenerateBench.Run(log, newTokens, promptLength, batches, Math.Max(repeats, 3)),
            ["profile"] = Profile(log, newTokens, promptLength, Math.Max(repeats, 3)),
        };
    }

    /// <summary>
    /// H₂O on long completions: the Llama model, 4 prompts of 32 tokens, 256 greedy new tokens, full cache against budgets of
    /// 64 and 128 (half recent, half heavy hitters); agreement of the greedy tokens with the full cache's, and the KV cache's
    /// size (keys + values, float32, computed from its shape).
    /// </summary>
    static JsonArray H2o(Action<string> log, ITokenizer tokenizer, int batch = 4, int promptLength = 32, int newTokens = 256)
    {
        var cfg = Llama26M;
        using var model = new CausalLM(cfg, seed: 1);
        var engine = new RolloutEngine(model, tokenizer);
        var prompts = RandomPrompts(new Random(11), batch, promptLength, cfg.VocabSize);
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = newTokens, StopAtEos = false };
        IReadOnlyList<Rollout>? full = null;
        var result = new JsonArray();
        foreach (int? budget in new int?[] { null, 128, 64 })
        {
            var sw = Stopwatch.StartNew();
            var outs = engine.Generate(prompts, o with { KvBudget = budget });
            sw.Stop();
            full ??= outs;
            double same = 0, prefix = 0;
            for (int i = 0; i < outs.Count; i++)
            {
                var (a, b) = (full[i].CompletionIds, outs[i].CompletionIds);
                same += a.Zip(b).Count(x => x.First == x.Second) / (double)a.Length;
                prefix += a.Zip(b).TakeWhile(x => x.First == x.Second).Count();
            }
            long slots = budget is null ? promptLength + newTokens : budget.Value + 1;
            double mb = 2.0 * cfg.NumHiddenLayers * batch * cfg.NumKeyValueHeads * slots * cfg.HeadDim * 4 / 1e6;
            double rate = outs.Sum(x => (long)x.CompletionIds.Length) / sw.Elapsed.TotalSeconds;
            log($"h2o llama-26m budget {budget?.ToString() ?? "full"}: {rate:F0} tokens/s, KV cache {mb:F2} MB, agreement {same / outs.Count:P1}, first difference after {prefix / outs.Count:F1} tokens");
            result.Add(new JsonObject
            {
                ["model"] = "llama-26m", ["batch"] = batch, ["prompt_tokens"] = promptLength, ["new_tokens"] = newTokens,
                ["kv_budget"] = budget, ["kv_cache_mb"] = Math.Round(mb, 2), ["tokens_per_s"] = Math.Round(rate, 1),
                ["agreement"] = Math.Round(same / outs.Count, 4), ["prefix_agreement_tokens"] = Math.Round(prefix / outs.Count, 1),
            });
        }
        return result;
    }

    /// <summary>
    /// Where the fast path's time goes, per model at batch 1 and 64 (best of <paramref name="repeats"/>): starting the session
    /// (fused weights, cache allocation), the prompt phase, and the decode steps, split into the model's step and the
    /// greedy pick with its host sync (argmax, copy of the ids to .NET), in ms per generation and µs per step; the tensors one
    /// step creates (each a native call to make it and one to free it). The same session's general step (the path every
    /// step took before the step lane) and the lane without torch's inference mode (<see cref="DecodeSession.UseInferenceMode"/>)
    /// are timed beside it, alternating, so the three share the run's load.
    /// </summary>
    static JsonArray Profile(Action<string> log, int newTokens, int promptLength, int repeats)
    {
        var result = new JsonArray();
        foreach (var (name, cfg) in Models)
        {
            using var model = new CausalLM(cfg, seed: 1);
            model.eval();
            foreach (var b in new[] { 1, 64 })
            {
                var prompts = RandomPrompts(new Random(7), b, promptLength, cfg.VocabSize);
                // Variants, alternating: the lane (what Generate runs), the general step, the lane without inference mode.
                var variants = new[] { "lane", "general", "no-inference-mode" };
                var best = variants.ToDictionary(v => v, _ => (Start: double.MaxValue, Prefill: double.MaxValue, Step: double.MaxValue, Pick: double.MaxValue));
                var handles = new Dictionary<string, int>();                          // tensors one decode step creates
                for (int r = 0; r <= repeats; r++)                                    // run 0 warms up
                    foreach (var variant in variants)
                    {
                        using var _ = no_grad();
                        using var scope = NewDisposeScope();
                        var ids = tensor(prompts.SelectMany(x => x.Select(t => (long)t)).ToArray()).view(b, promptLength);
                        var sw = Stopwatch.StartNew();
                        using var session = model.StartDecoding(b, promptLength + newTokens);
                        session.ForceGeneralStep = variant == "general";
                        session.UseInferenceMode = variant != "no-inference-mode";
                        double start = sw.Elapsed.TotalMilliseconds;
                        sw.Restart();
                        var logits = session.Prefill(ids, ones_like(ids));
                        var next = logits.argmax(-1);
                        next.data<long>().ToArray();
                        double prefill = sw.Elapsed.TotalMilliseconds, step = 0, pick = 0;
                        for (int k = 1; k < newTokens; k++)
                        {
                            using var stepScope = NewDisposeScope();
                            var fed = next.view(b, 1);
                            int before = stepScope.DisposablesCount;
                            sw.Restart();
                            logits = session.Step(fed);
                            step += sw.Elapsed.TotalMilliseconds;
                            handles[variant] = stepScope.DisposablesCount - before;
                            sw.Restart();
                            var picked = logits.argmax(-1);
                            var host = picked.data<long>().ToArray();
                            next = tensor(host).MoveToOuterDisposeScope();
                            pick += sw.Elapsed.TotalMilliseconds;
                        }
                        if (r == 0) continue;
                        var o = best[variant];
                        best[variant] = (Math.Min(o.Start, start), Math.Min(o.Prefill, prefill), Math.Min(o.Step, step), Math.Min(o.Pick, pick));
                    }
                var (bs, bp, bst, bpk) = best["lane"];
                double total = bs + bp + bst + bpk, generalStep = best["general"].Step, plainStep = best["no-inference-mode"].Step;
                log($"profile {name} batch {b}: start {bs:F1} ms, prompt {bp:F1} ms, steps {bst:F1} ms ({bst * 1000 / (newTokens - 1):F0} µs/step, " +
                    $"{handles["lane"]} tensors/step; general step {generalStep * 1000 / (newTokens - 1):F0} µs/step, {handles["general"]} tensors/step; " +
                    $"lane without inference mode {plainStep * 1000 / (newTokens - 1):F0} µs/step), " +
                    $"pick + host sync {bpk:F1} ms; {b * newTokens / (total / 1000):F0} tokens/s");
                result.Add(new JsonObject
                {
                    ["model"] = name, ["batch"] = b, ["start_ms"] = Math.Round(bs, 2), ["prompt_ms"] = Math.Round(bp, 2),
                    ["steps_ms"] = Math.Round(bst, 2), ["us_per_step"] = Math.Round(bst * 1000 / (newTokens - 1), 1),
                    ["tensors_per_step"] = handles["lane"],
                    ["general_step_us_per_step"] = Math.Round(generalStep * 1000 / (newTokens - 1), 1),
                    ["general_step_tensors_per_step"] = handles["general"],
                    ["step_speedup_over_general"] = Math.Round(generalStep / bst, 2),
                    ["no_inference_mode_us_per_step"] = Math.Round(plainStep * 1000 / (newTokens - 1), 1),
                    ["step_speedup_over_no_inference_mode"] = Math.Round(plainStep / bst, 2),
                    ["pick_and_sync_ms"] = Math.Round(bpk, 2), ["tokens_per_s"] = Math.Round(b * newTokens / (total / 1000), 1),
                });
            }
        }
        return result;
    }

    /// <summary>A character tokenizer with exactly <paramref name="vocab"/> ids (4 specials + vocab − 4 characters).</summary>
    internal static ITokenizer BenchTokenizer(int vocab) =>
        TokenizerFiles.FromSpec(TokenizerFiles.CharsSpecPrefix + string.Concat(Enumerable.Range(0, vocab - 4).Select(i => (char)(0x100 + i))));

    internal static List<IReadOnlyList<int>> RandomPrompts(Random rng, int count, int length, int vocab) =>
        Enumerable.Range(0, count).Select(_ => (IReadOnlyList<int>)Enumerable.Range(0, length).Select(_ => rng.Next(4, vocab)).ToArray()).ToList();
}
