using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;

namespace Sharpen.Bench;

/// <summary>
/// <c>sharpen bench soak</c>: GRPO on a tiny model for about <c>--minutes</c> M of wall clock, with rewards from a loopback
/// HTTP reward server that answers 10% of requests with HTTP 503 and is stopped and restarted twice, while the training
/// child process (`sharpen train`) is killed with SIGKILL and resumed with --resume every M/6 minutes (every 5 minutes at
/// the default 30). Then the same recipe runs undisturbed (no kills, no restarts, no failed requests). Reports whether the
/// final weights are byte-identical (else max |Δ|), the child's RSS over time (from /proc/PID/status) and whether it grows
/// after warm-up, and the server's counts of requests, of 503 answers (each one retried by the trainer) and of answered ones.
/// </summary>
public static class SoakBench
{
    const double FailRate = 0.1;
    const double DowntimeSeconds = 3;

    /// <summary>Runs the soak; <paramref name="childCommand"/> starts the CLI (<c>dotnet Sharpen.Cli.dll</c> or the app host).</summary>
    public static JsonObject Run(Action<string> log, string workDir, string childCommand, double minutes = 30)
    {
        if (!(minutes > 0)) throw new ArgumentException($"--minutes must be > 0, got {minutes}");
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("bench soak reads RSS from /proc/PID/status (Linux only)");
        Directory.CreateDirectory(workDir);
        workDir = Path.GetFullPath(workDir);
        var started = Stopwatch.StartNew();

        // 1. The starting policy: a tiny SFT model on 1-digit sums.
        var baseDir = Path.Combine(workDir, "base");
        if (!File.Exists(Path.Combine(baseDir, "final", "model.safetensors")))
        {
            log($"soak: training the starting policy in {baseDir}");
            var sft = WriteRecipe(workDir, "base", BaseRecipe(baseDir));
            var r = RunChild(childCommand, sft, resume: false, log: null);
            if (r.ExitCode != 0) throw new InvalidOperationException($"soak: the SFT child failed ({r.ExitCode}): {r.Stderr}");
        }

        using var server = new FlakyRewardServer(FailRate, seed: 7);
        string Recipe(string name, int iterations) =>
            $"output: {Path.Combine(workDir, name)}\n" + GrpoRecipe(Path.Combine(baseDir, "final"), server.Url, iterations);

        // 2. Calibration: seconds per iteration, so that the run lasts about `minutes`.
        var calibDir = Path.Combine(workDir, "calibration");
        if (Directory.Exists(calibDir)) Directory.Delete(calibDir, recursive: true);
        var iterTimes = new List<double>();
        var calibWatch = Stopwatch.StartNew();
        var calib = RunChild(childCommand, WriteRecipe(workDir, "calibration", Recipe("calibration", 8)), resume: false,
            log: line => { if (line.StartsWith("iter ", StringComparison.Ordinal)) lock (iterTimes) iterTimes.Add(calibWatch.Elapsed.TotalSeconds); });
        if (calib.ExitCode != 0 || iterTimes.Count < 3) throw new InvalidOperationException($"soak: the calibration run failed ({calib.ExitCode}): {calib.Stderr}");
        double secondsPerIteration = (iterTimes[^1] - iterTimes[1]) / (iterTimes.Count - 2);
        int iterations = Math.Max(20, (int)Math.Round(minutes * 60 / secondsPerIteration));
        log($"soak: {secondsPerIteration:F2} s/iteration measured; {iterations} iterations for {minutes} minutes");
        var calibCounts = server.Counts();

        // 3. The disturbed run: SIGKILL + --resume every minutes/6, the server stopped and restarted twice, 10% 503s.
        double period = minutes * 60;
        var killTimes = Enumerable.Range(1, 5).Select(k => period * k / 6).ToList();
        var restartTimes = new List<double> { period * 0.25, period * 0.6 };
        var disturbedPath = WriteRecipe(workDir, "disturbed", Recipe("disturbed", iterations));
        var disturbedDir = Path.Combine(workDir, "disturbed");
        if (Directory.Exists(disturbedDir)) Directory.Delete(disturbedDir, recursive: true);
        server.Reset(FailRate);
        var disturbedRss = new JsonArray();
        int kills = 0, restarts = 0, segment = 0;
        var watch = Stopwatch.StartNew();
        Task? restarting = null;
        while (true)
        {
            log($"soak: disturbed run, segment {segment + 1} ({(segment == 0 ? "fresh" : "--resume")}) at {watch.Elapsed.TotalSeconds:F0} s");
            using var child = StartChild(childCommand, disturbedPath, resume: segment > 0, out var stderr);
            var segmentWatch = Stopwatch.StartNew();
            double nextSample = 0;
            bool killed = false;
            while (!child.WaitForExit(200))
            {
                double t = watch.Elapsed.TotalSeconds;
                if (segmentWatch.Elapsed.TotalSeconds >= nextSample && Rss(child.Id) is { } rss)
                {
                    disturbedRss.Add(new JsonArray(Math.Round(t, 1), segment + 1, Math.Round(rss, 1)));
                    nextSample = segmentWatch.Elapsed.TotalSeconds + SampleEvery(minutes);
                }
                if (restarts < restartTimes.Count && t >= restartTimes[restarts] && restarting is null or { IsCompleted: true })
                {
                    restarts++;
                    log($"soak: stopping the reward server for {DowntimeSeconds} s (restart {restarts}) at {t:F0} s");
                    restarting = Task.Run(() => { server.Stop(); Thread.Sleep(TimeSpan.FromSeconds(DowntimeSeconds)); server.Start(); });
                }
                if (kills < killTimes.Count && t >= killTimes[kills])
                {
                    kills++;
                    log($"soak: SIGKILL {kills} of the training child at {t:F0} s");
                    try { child.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                    child.WaitForExit();
                    killed = child.ExitCode != 0;
                    break;
                }
            }
            child.WaitForExit();
            segment++;
            if (killed) continue;
            if (child.ExitCode != 0) throw new InvalidOperationException($"soak: the disturbed run failed ({child.ExitCode}): {stderr}");
            break;
        }
        restarting?.Wait();
        double disturbedSeconds = watch.Elapsed.TotalSeconds;
        var disturbedCounts = server.Counts();

        // 4. The same recipe undisturbed: one process, no restarts, no failed requests.
        server.Reset(failRate: 0);
        var straightDir = Path.Combine(workDir, "straight");
        if (Directory.Exists(straightDir)) Directory.Delete(straightDir, recursive: true);
        var straightPath = WriteRecipe(workDir, "straight", Recipe("straight", iterations));
        log("soak: the undisturbed run");
        var straightRss = new JsonArray();
        watch.Restart();
        using (var child = StartChild(childCommand, straightPath, resume: false, out var stderr))
        {
            double nextSample = 0;
            while (!child.WaitForExit(200))
            {
                if (watch.Elapsed.TotalSeconds >= nextSample && Rss(child.Id) is { } rss)
                {
                    straightRss.Add(new JsonArray(Math.Round(watch.Elapsed.TotalSeconds, 1), 1, Math.Round(rss, 1)));
                    nextSample = watch.Elapsed.TotalSeconds + SampleEvery(minutes);
                }
            }
            child.WaitForExit();
            if (child.ExitCode != 0) throw new InvalidOperationException($"soak: the undisturbed run failed ({child.ExitCode}): {stderr}");
        }
        double straightSeconds = watch.Elapsed.TotalSeconds;

        // 5. Compare.
        var a = Path.Combine(disturbedDir, "final", "model.safetensors");
        var b = Path.Combine(straightDir, "final", "model.safetensors");
        bool identical = File.ReadAllBytes(a).AsSpan().SequenceEqual(File.ReadAllBytes(b));
        double maxAbs = identical ? 0 : MaxAbsDiff(a, b);
        var steps = File.ReadAllLines(Path.Combine(disturbedDir, "metrics.jsonl")).Where(l => l.Length > 0)
            .Select(l => JsonNode.Parse(l)!["step"]!.GetValue<int>()).ToList();
        bool eachOnce = steps.SequenceEqual(Enumerable.Range(1, iterations));
        var status = JsonNode.Parse(File.ReadAllText(Path.Combine(disturbedDir, "summary.json")))!["status"]?.GetValue<string>();

        var result = new JsonObject
        {
            ["benchmark"] = "soak",
            ["minutes"] = minutes,
            ["iterations"] = iterations,
            ["calibrated_seconds_per_iteration"] = Math.Round(secondsPerIteration, 3),
            ["disturbed_seconds"] = Math.Round(disturbedSeconds, 1),
            ["straight_seconds"] = Math.Round(straightSeconds, 1),
            ["total_seconds"] = Math.Round(started.Elapsed.TotalSeconds, 1),
            ["kills"] = kills,
            ["kill_at_seconds"] = new JsonArray(killTimes.Take(kills).Select(t => (JsonNode)Math.Round(t, 1)).ToArray()),
            ["server_restarts"] = restarts,
            ["server_downtime_seconds"] = DowntimeSeconds,
            ["fail_rate"] = FailRate,
            ["requests"] = Delta(disturbedCounts, calibCounts),
            ["weights_identical"] = identical,
            ["max_abs_diff"] = maxAbs,
            ["metrics_each_step_once"] = eachOnce,
            ["status"] = status,
            ["rss_disturbed"] = Rows(disturbedRss),
            ["rss_straight"] = Rows(straightRss),
            ["rss_growth_straight"] = Growth(straightRss),
            ["rss_growth_disturbed_segments"] = new JsonArray(disturbedRss.GroupBy(r => r![1]!.GetValue<int>())
                .Select(g => (JsonNode)Growth(new JsonArray(g.Select(r => r!.DeepClone()).ToArray()))).ToArray()),
            ["sample_every_seconds"] = SampleEvery(minutes),
            ["threads"] = Environment.GetEnvironmentVariable("SHARPEN_NUM_THREADS") ?? "default",
        };
        log($"soak: weights {(identical ? "byte-identical" : $"differ, max |Δ| {maxAbs:G3}")}; steps logged once: {eachOnce}; " +
            $"{result["requests"]!["served_503"]} requests answered 503 and retried, {restarts} server restarts, {kills} kills; " +
            $"RSS growth after warm-up (undisturbed) {result["rss_growth_straight"]!["growth_mb"]} MB");
        return result;
    }

    static double SampleEvery(double minutes) => Math.Clamp(minutes * 60 / 120, 1, 15);

    static JsonObject Rows(JsonArray samples) => new()
    {
        ["columns"] = new JsonArray("seconds", "segment", "rss_mb"),
        ["rows"] = samples.DeepClone(),
    };

    /// <summary>
    /// RSS after warm-up (warm-up ends at the first sample that reaches 90% of the process's peak: a fixed fraction of the
    /// samples cut inside the ramp of a slow start and read the ramp as growth): the mean of the first and last quarter of
    /// what is left, their difference, and the least-squares slope in MB per minute. Growth counts when the difference
    /// exceeds max(5% of the mean, 10 MB).
    /// </summary>
    internal static JsonObject Growth(JsonArray samples)
    {
        var pts = samples.Select(r => (T: r![0]!.GetValue<double>(), Mb: r[2]!.GetValue<double>())).ToList();
        double peak = pts.Count == 0 ? 0 : pts.Max(p => p.Mb);
        int warm = pts.FindIndex(p => p.Mb >= 0.9 * peak);
        var after = pts.Skip(Math.Max(0, warm)).ToList();
        if (after.Count < 4) return new JsonObject { ["samples"] = pts.Count, ["grows_after_warmup"] = null };
        int q = Math.Max(1, after.Count / 4);
        double first = after.Take(q).Average(p => p.Mb), last = after.TakeLast(q).Average(p => p.Mb), mean = after.Average(p => p.Mb);
        double mt = after.Average(p => p.T);
        double slope = after.Sum(p => (p.T - mt) * (p.Mb - mean)) / Math.Max(1e-9, after.Sum(p => (p.T - mt) * (p.T - mt))) * 60;
        return new JsonObject
        {
            ["samples"] = pts.Count, ["warmup_until_s"] = after[0].T, ["peak_mb"] = pts.Max(p => p.Mb),
            ["first_quarter_mb"] = Math.Round(first, 1), ["last_quarter_mb"] = Math.Round(last, 1), ["growth_mb"] = Math.Round(last - first, 1),
            ["slope_mb_per_min"] = Math.Round(slope, 2), ["grows_after_warmup"] = last - first > Math.Max(0.05 * mean, 10),
        };
    }

    static JsonObject Delta(JsonObject now, JsonObject before) => new()
    {
        ["received"] = now["received"]!.GetValue<long>() - before["received"]!.GetValue<long>(),
        ["served_503"] = now["served_503"]!.GetValue<long>() - before["served_503"]!.GetValue<long>(),
        ["answered"] = now["answered"]!.GetValue<long>() - before["answered"]!.GetValue<long>(),
    };

    static double MaxAbsDiff(string a, string b)
    {
        Sharpen.Torch.TorchRuntime.EnsureLoaded();
        var x = Safetensors.Load(a);
        var y = Safetensors.Load(b);
        double max = 0;
        foreach (var (name, t) in x)
        {
            if (!y.TryGetValue(name, out var u)) return double.PositiveInfinity;
            max = Math.Max(max, (double)(t - u).abs().max().item<float>());
        }
        return max;
    }

    /// <summary>Resident set size of process <paramref name="pid"/> in MB, from /proc/PID/status (null once it has exited).</summary>
    static double? Rss(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return double.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    static string WriteRecipe(string workDir, string name, string text)
    {
        var path = Path.Combine(workDir, name + ".yaml");
        File.WriteAllText(path, text);
        return path;
    }

    static string BaseRecipe(string output) => $"output: {output}\nkind: sft\nseed: 1\n" +
        "model:\n  init: { hidden_size: 48, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 128 }\n" +
        "  tokenizer: task\ntask: { name: arithmetic, digits: 1 }\ndata: { train_problems: 200, test_problems: 8 }\n" +
        "sft: { max_steps: 200, batch_size: 16, learning_rate: 0.01, warmup_steps: 5, max_sequence_length: 40, log_every: 20, eval_every: 0, eval_max_new_tokens: 24 }\n" +
        "eval: { problems: 8, samples: 1, max_new_tokens: 24 }\n";

    static string GrpoRecipe(string start, string url, int iterations) => $"kind: rl\nseed: 2\nmodel: {{ path: {start} }}\n" +
        "task: { name: arithmetic, digits: 1 }\ndata: { train_problems: 256, test_problems: 8 }\n" +
        $"rewards:\n  - {{ name: arithmetic }}\n  - {{ url: \"{url}\", name: judge, weight: 0.5, retries: 8, timeout_seconds: 30 }}\n" +
        $"rl: {{ algorithm: grpo, iterations: {iterations}, prompts_per_iteration: 8, samples_per_prompt: 4, beta: 0.02, max_new_tokens: 24, " +
        "learning_rate: 0.0005, temperature: 1.0, eval_every: 0, eval_problems: 8, checkpoint_every: 10 }\n" +
        "eval: { problems: 8, samples: 1, max_new_tokens: 24 }\n";

    sealed record ChildResult(int ExitCode, string Stderr);

    static ChildResult RunChild(string childCommand, string recipe, bool resume, Action<string>? log)
    {
        using var p = StartChild(childCommand, recipe, resume, out var stderr, log);
        p.WaitForExit();
        return new ChildResult(p.ExitCode, stderr.ToString());
    }

    static Process StartChild(string childCommand, string recipe, bool resume, out StringBuilder stderr, Action<string>? onLine = null)
    {
        var parts = childCommand.Split(' ');
        var psi = new ProcessStartInfo(parts[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in parts.Skip(1).Concat(["train", recipe]).Concat(resume ? ["--resume"] : Array.Empty<string>())) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        var err = stderr = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is { } l) onLine?.Invoke(l); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is { } l) lock (err) err.AppendLine(l); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>
    /// A reward server on a fixed loopback port that answers a seeded <c>failRate</c> of requests with HTTP 503 and can be
    /// stopped (the port refuses connections) and started again. The reward is a deterministic function of the completion
    /// (its length against 16 characters), so a retried or repeated request gets the same answer.
    /// </summary>
    sealed class FlakyRewardServer : IDisposable
    {
        readonly object _gate = new();
        readonly int _port;
        HttpListener? _listener;
        Random _random;
        double _failRate;
        long _received, _failed, _answered;

        public FlakyRewardServer(double failRate, int seed)
        {
            _failRate = failRate;
            _random = new Random(seed);
            var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            _port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            Start();
        }

        public string Url => $"http://127.0.0.1:{_port}/score/";

        public void Reset(double failRate)
        {
            lock (_gate) { _failRate = failRate; _random = new Random(7); }
        }

        public JsonObject Counts()
        {
            lock (_gate) return new JsonObject { ["received"] = _received, ["served_503"] = _failed, ["answered"] = _answered };
        }

        public void Start()
        {
            var listener = new HttpListener();
            listener.Prefixes.Add(Url);
            listener.Start();
            lock (_gate) _listener = listener;
            _ = Task.Run(() => Serve(listener));
        }

        public void Stop()
        {
            HttpListener? l;
            lock (_gate) { l = _listener; _listener = null; }
            l?.Close();
        }

        async Task Serve(HttpListener listener)
        {
            while (listener.IsListening)
            {
                HttpListenerContext ctx;
                try { ctx = await listener.GetContextAsync(); }
                catch (Exception) { return; }
                _ = Task.Run(() => Handle(ctx));
            }
        }

        void Handle(HttpListenerContext ctx)
        {
            try
            {
                using var reader = new StreamReader(ctx.Request.InputStream, Encoding.UTF8);
                var body = JsonNode.Parse(reader.ReadToEnd())!;
                bool fail;
                lock (_gate) { _received++; fail = _random.NextDouble() < _failRate; if (fail) _failed++; else _answered++; }
                string answer;
                if (fail)
                {
                    ctx.Response.StatusCode = 503;
                    answer = "{\"error\": \"injected failure\"}";
                }
                else
                {
                    var rewards = new JsonArray();
                    foreach (var item in body["items"]!.AsArray())
                    {
                        var completion = item!["completion"]!.GetValue<string>();
                        rewards.Add(Math.Round(1 - Math.Min(1.0, Math.Abs(completion.Length - 16) / 16.0), 6));
                    }
                    answer = new JsonObject { ["rewards"] = rewards }.ToJsonString();
                }
                var bytes = Encoding.UTF8.GetBytes(answer);
                ctx.Response.ContentType = "application/json";
                ctx.Response.OutputStream.Write(bytes);
                ctx.Response.Close();
            }
            catch (Exception)
            {
                try { ctx.Response.Abort(); } catch (Exception) { }
            }
        }

        public void Dispose() => Stop();
    }
}
