using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Generation;
using Sharpen.Models;
using static TorchSharp.torch;
using Sharpen.Torch;

namespace Sharpen.Bench;

/// <summary>
/// Training throughput: a full step (forward, cross-entropy on all tokens, backward, AdamW) on
/// batches of 8 × 256 tokens, reported as tokens/s and achieved GFLOPS
/// (6·params·tokens + 12·layers·hidden·seq·tokens for attention), against the GFLOPS of a
/// 2048² fp32 matmul measured in the same run. Each model runs twice: every weight trained, and LoRA (r = 8 on all seven
/// projections), whose backward skips the frozen weights' gradients (counted as 4·base + 6·adapter parameters per token).
/// The tensor state is computed, not measured: 4 bytes × (parameters + gradients and two Adam moments of the trained ones).
/// </summary>
public static class TrainBench
{
    public static JsonObject Run(Action<string> log, int batch = 8, int seq = 256, int steps = 6)
    {
        Sharpen.Torch.TorchRuntime.EnsureLoaded();
        double peak = MatmulGflops(2048, 10);
        log($"matmul 2048x2048 fp32: {peak:F1} GFLOPS");
        var rows = new JsonArray();
        foreach (var (name, cfg) in BenchModels.All)
        foreach (var variant in new[] { "full", "lora" })
        {
            using var model = new CausalLM(cfg, seed: 1);
            long baseParams = model.ParameterCount();
            if (variant == "lora") model.AddLora(new LoraOptions { R = 8, Alpha = 16 }, seed: 2);
            model.train();
            using var opt = optim.AdamW(model.TrainableParameters(), lr: 1e-4);
            var gen = new Generator(5);
            var ids = randint(4, cfg.VocabSize, [batch, seq + 1], generator: gen).DetachFromDisposeScope();
            void Step()
            {
                using var scope = NewDisposeScope();
                opt.zero_grad();
                var input = ids.narrow(1, 0, seq);
                var target = ids.narrow(1, 1, seq);
                var logits = model.Forward(input).Logits;                               // (B, T, V)
                var loss = -Scoring.TokenLogProbs(logits, target).mean();
                loss.backward();
                opt.step();
            }
            Step(); // warm-up
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++) Step();
            sw.Stop();
            double tokens = (double)batch * seq * steps;
            long trained = model.TrainableParameters().Sum(x => x.numel());
            long adapter = model.ParameterCount() - baseParams;
            double perToken = variant == "lora" ? 4.0 * baseParams + 6.0 * adapter : 6.0 * baseParams;
            double flops = tokens * (perToken + 12.0 * cfg.NumHiddenLayers * cfg.HiddenSize * seq);
            double gflops = flops / sw.Elapsed.TotalSeconds / 1e9;
            double stateMb = 4.0 * (model.ParameterCount() + 3.0 * trained) / (1 << 20);
            log($"train {name} {variant}: {tokens / sw.Elapsed.TotalSeconds:F0} tokens/s, {gflops:F1} GFLOPS ({100 * gflops / peak:F0}% of matmul), " +
                $"{trained} trained parameters, {stateMb:F0} MB tensor state");
            rows.Add(new JsonObject
            {
                ["model"] = name, ["variant"] = variant, ["params"] = baseParams, ["trained_params"] = trained, ["batch"] = batch, ["seq"] = seq, ["steps"] = steps,
                ["tokens_per_s"] = Math.Round(tokens / sw.Elapsed.TotalSeconds, 1),
                ["gflops"] = Math.Round(gflops, 2), ["fraction_of_matmul"] = Math.Round(gflops / peak, 3), ["state_mb"] = Math.Round(stateMb, 1),
            });
            ids.Dispose();
        }
        return new JsonObject
        {
            ["benchmark"] = "train", ["threads"] = get_num_threads(), ["matmul_gflops"] = Math.Round(peak, 2), ["rows"] = rows,
        };
    }

    /// <summary>GFLOPS of an n×n fp32 matmul, best of <paramref name="reps"/> after a warm-up.</summary>
    public static double MatmulGflops(int n, int reps)
    {
        using var scope = NewDisposeScope();
        var a = randn(n, n);
        var b = randn(n, n);
        a.matmul(b);
        double best = 0;
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            using var c = a.matmul(b);
            sw.Stop();
            best = Math.Max(best, 2.0 * n * n * n / sw.Elapsed.TotalSeconds / 1e9);
        }
        return best;
    }
}
