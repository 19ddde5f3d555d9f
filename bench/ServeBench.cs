using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Serving;
using Sharpen.Tokenizers;

namespace Sharpen.Bench;

/// <summary>
/// <c>sharpen bench serve</c>: <c>sharpen serve</c>'s server on loopback driven by 1, 8 and 64 concurrent clients (each sends
/// its requests one after another), against the same prompts run through the torch engine directly at the same batch size.
/// Every request is a 32-token prompt (token ids) and 64 greedy new tokens with EOS ignored, so every request yields 64 tokens.
/// Levels run twice, interleaved, and each keeps its fastest round (the machine is shared). Each row also reports the host's
/// decode steps, sequences per step and milliseconds per step: where the time goes.
/// </summary>
public static class ServeBench
{
    const int PromptTokens = 32, NewTokens = 64;

    /// <summary>The models the bench can serve: the issue's Llama 26M (the default) and the 3.2M Llama of earlier runs.</summary>
    public static readonly string[] Models = ["llama-26m", "3m"];

    /// <summary>
    /// Runs the benchmark on <paramref name="model"/> (one of <see cref="Models"/>); <paramref name="quick"/> is a smoke run
    /// (tiny model, few requests), not a result.
    /// </summary>
    public static JsonObject Run(Action<string> log, bool quick = false, double secondsPerLevel = 60, string model = "llama-26m")
    {
        if (!Models.Contains(model)) throw new ArgumentException($"--model: unknown model '{model}'; bench serve serves {string.Join(", ", Models)}");
        // The 26M Llama (vocabulary 1000, the model of `bench generate`) reads ~100 MB of weights per decode step, so one
        // sequence at a time is bound by memory traffic and per-step overhead, as serving a real model is; the 3.2M model's
        // weights (13 MB) stay in cache and its batch-1 step is already cheap, so batching has less to amortise.
        var tokenizer = model == "3m" || quick ? CharTokenizer.Create(new string(Enumerable.Range(32, 95).Select(c => (char)c).ToArray())) : GenerateBench.BenchTokenizer(1000);
        var baseConfig = quick ? BenchModels.Small with { HiddenSize = 64, IntermediateSize = 128, NumHiddenLayers = 1 }
            : model == "3m" ? BenchModels.Small : GenerateBench.Llama26M;
        var config = baseConfig with { VocabSize = tokenizer.VocabSize, EosTokenIds = [CharTokenizer.EosId], PadTokenId = CharTokenizer.PadId, BosTokenId = CharTokenizer.BosId };
        var dir = Path.Combine(Path.GetTempPath(), "sharpen-bench-serve-" + Guid.NewGuid().ToString("N"));
        int[] levels = quick ? [1, 4] : [1, 8, 64];
        int maxBatch = levels.Max();
        var rows = new JsonArray();
        try
        {
            long parameters;
            using (var lm = new CausalLM(config, seed: 1)) { parameters = lm.ParameterCount(); HfCheckpoint.Save(dir, lm, tokenizer); }
            var random = new Random(7);
            var prompts = Enumerable.Range(0, 4 * maxBatch)
                .Select(_ => (IReadOnlyList<int>)Enumerable.Range(0, PromptTokens).Select(_ => random.Next(4, tokenizer.VocabSize)).ToArray()).ToList();
            using var host = PolicyHost.Load(dir, new PolicyHostOptions { ModelId = "bench", MaxBatch = maxBatch, MaxQueue = 4 * maxBatch });
            var server = OpenAiServer.StartAsync(host, new ServerOptions { Port = 0 }).GetAwaiter().GetResult();
            try
            {
                using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes(10) };
                Request(http, prompts[0]).GetAwaiter().GetResult();   // warm-up: JIT, first allocations
                var engineModel = HfCheckpoint.Load(dir, requireTokenizer: true);
                using var engineOwner = engineModel.Model;
                var engine = new RolloutEngine(engineModel.Model, engineModel.Tokenizer!);
                // Each level runs `rounds` times, levels interleaved; a level keeps its fastest server round and its fastest
                // engine round (best-of-N: on a shared machine other processes only ever slow a round down).
                int rounds = quick ? 1 : 2;
                var best = new Dictionary<int, JsonObject>();
                var bestEngine = new Dictionary<int, double>();
                for (int round = 0; round < rounds; round++)
                foreach (int clients in levels)
                {
                    int perClient = quick ? 2 : clients == 1 ? 12 : clients == 8 ? 4 : 2;
                    var latencies = new List<double>();
                    var statsBefore = host.Stats;
                    var deadline = Stopwatch.StartNew();
                    long tokens = 0;
                    var sw = Stopwatch.StartNew();
                    Task.WhenAll(Enumerable.Range(0, clients).Select(async c =>
                    {
                        for (int k = 0; k < perClient && deadline.Elapsed.TotalSeconds < secondsPerLevel; k++)
                        {
                            var t = Stopwatch.StartNew();
                            int n = await Request(http, prompts[(c + k * clients) % prompts.Count]).ConfigureAwait(false);
                            lock (latencies) { latencies.Add(t.Elapsed.TotalSeconds); tokens += n; }
                        }
                    })).GetAwaiter().GetResult();
                    double seconds = sw.Elapsed.TotalSeconds;
                    double serverTps = tokens / seconds;
                    var statsAfter = host.Stats;
                    long steps = statsAfter.Steps - statsBefore.Steps;

                    // The same prompts through the engine directly, `clients` at a time.
                    var options = new SamplingOptions { Temperature = 0, MaxNewTokens = NewTokens, StopAtEos = false, MaxBatchSequences = maxBatch };
                    int engineRequests = latencies.Count;
                    long engineTokens = 0;
                    sw.Restart();
                    for (int start = 0; start < engineRequests; start += clients)
                    {
                        var batch = Enumerable.Range(start, Math.Min(clients, engineRequests - start)).Select(i => prompts[i % prompts.Count]).ToList();
                        engineTokens += engine.Generate(batch, options).Sum(r => r.CompletionIds.Length);
                    }
                    double engineTps = engineTokens / sw.Elapsed.TotalSeconds;
                    bestEngine[clients] = Math.Max(bestEngine.GetValueOrDefault(clients), engineTps);
                    latencies.Sort();
                    var row = new JsonObject
                    {
                        ["clients"] = clients, ["requests"] = latencies.Count, ["tokens"] = tokens, ["seconds"] = Math.Round(seconds, 2),
                        ["tokens_per_s"] = Math.Round(serverTps, 1),
                        ["p50_latency_s"] = Math.Round(Percentile(latencies, 0.50), 3), ["p99_latency_s"] = Math.Round(Percentile(latencies, 0.99), 3),
                        ["decode_steps"] = steps,
                        ["mean_running"] = steps == 0 ? 0 : Math.Round((double)(statsAfter.Tokens - statsBefore.Tokens) / steps, 1),
                        ["step_ms"] = steps == 0 ? 0 : Math.Round(1000 * seconds / steps, 2),
                        ["peak_rss_mb"] = Math.Round(Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0, 1),
                    };
                    log($"round {round + 1}/{rounds}, serve {clients} clients: {row["tokens_per_s"]} tok/s (engine directly {Math.Round(engineTps, 1)}), p50 {row["p50_latency_s"]} s, " +
                        $"p99 {row["p99_latency_s"]} s, {row["mean_running"]} sequences per step over {steps} steps ({row["step_ms"]} ms a step)");
                    if (!best.TryGetValue(clients, out var kept) || kept["tokens_per_s"]!.GetValue<double>() < serverTps) best[clients] = row;
                }
                foreach (int clients in levels)
                {
                    var row = best[clients];
                    double serverTps = row["tokens_per_s"]!.GetValue<double>(), engineTps = bestEngine[clients];
                    row["engine_tokens_per_s"] = Math.Round(engineTps, 1);
                    row["server_over_engine"] = Math.Round(serverTps / engineTps, 2);
                    row["throughput_over_1_client"] = Math.Round(serverTps / best[levels[0]]["tokens_per_s"]!.GetValue<double>(), 2);
                    row["engine_over_1_client"] = Math.Round(engineTps / bestEngine[levels[0]], 2);
                    rows.Add(row);
                    log($"serve {clients} clients (best of {rounds}): {row["tokens_per_s"]} tok/s, {row["throughput_over_1_client"]}x one client; engine directly {row["engine_tokens_per_s"]} tok/s, " +
                        $"{row["engine_over_1_client"]}x one; server / engine {row["server_over_engine"]}; peak RSS {row["peak_rss_mb"]} MB");
                }
                return new JsonObject
                {
                    ["benchmark"] = "serve", ["quick"] = quick, ["model"] = quick ? "tiny" : model, ["params"] = parameters, ["prompt_tokens"] = PromptTokens, ["new_tokens"] = NewTokens,
                    ["max_batch"] = maxBatch, ["threads"] = TorchSharp.torch.get_num_threads(), ["batches"] = host.Stats.Batches, ["largest_batch"] = host.Stats.LargestBatch, ["continuous_batching"] = true, ["rounds"] = rounds,
                    ["rows"] = rows,
                };
            }
            finally { server.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }
        finally { try { Directory.Delete(dir, recursive: true); } catch (IOException) { } }
    }

    static async Task<int> Request(HttpClient http, IReadOnlyList<int> prompt)
    {
        var body = new JsonObject
        {
            ["model"] = "bench", ["prompt"] = new JsonArray(prompt.Select(t => (JsonNode)t).ToArray()),
            ["max_tokens"] = NewTokens, ["temperature"] = 0, ["ignore_eos"] = true,
        };
        using var response = await http.PostAsync("v1/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json")).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        var json = await response.Content.ReadFromJsonAsync<JsonObject>().ConfigureAwait(false);
        return json!["usage"]!["completion_tokens"]!.GetValue<int>();
    }

    static double Percentile(List<double> sorted, double q) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];

    /// <summary>The README table.</summary>
    public static string Table(JsonNode? serve)
    {
        if (serve is null) return "";
        var sb = new StringBuilder();
        sb.AppendLine($"Serving ({serve["date"]}, {serve["machine"]}, {serve["threads"]} torch threads; {serve["model"] ?? "3m"}, {serve["params"]} params; `sharpen serve` on loopback, " +
                      $"{serve["prompt_tokens"]}-token prompts, {serve["new_tokens"]} greedy tokens each, --max-batch {serve["max_batch"]}" +
                      (serve["rounds"] is { } rounds ? $", continuous batching, best of {rounds} rounds per level" : "") + "; the engine column runs the same prompts directly, that many at a time):\n");
        sb.AppendLine("| clients | requests | tokens/s (server) | tokens/s (engine directly) | server / engine | × one client | engine × one | sequences per step | ms per step | p50 latency (s) | p99 latency (s) | peak RSS (MB) |");
        sb.AppendLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in serve["rows"]!.AsArray())
            sb.AppendLine($"| {r!["clients"]} | {r["requests"]} | {r["tokens_per_s"]} | {r["engine_tokens_per_s"]} | {r["server_over_engine"]} | {r["throughput_over_1_client"]} | " +
                          $"{r["engine_over_1_client"]?.ToString() ?? "–"} | {r["mean_running"]?.ToString() ?? "–"} | {r["step_ms"]?.ToString() ?? "–"} | {r["p50_latency_s"]} | {r["p99_latency_s"]} | {r["peak_rss_mb"]} |");
        sb.AppendLine();
        return sb.ToString();
    }
}
