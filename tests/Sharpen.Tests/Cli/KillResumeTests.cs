using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Sharpen.Tests.Cli;

/// <summary>
/// Crash safety with real processes: `sharpen train` runs as a child process and is killed (SIGKILL, the whole tree) at
/// seeded random moments (its progress line `step N/`, `iter N/` or `iteration N/`), then started again with --resume, until it finishes. The final weights must equal an
/// uninterrupted run's byte for byte, and metrics.jsonl must hold every step exactly once. One kind per driver:
/// SFT (StepLoop), GRPO and online DPO (IterationLoop).
/// </summary>
public class KillResumeTests
{
    static readonly string Cli = Path.Combine(AppContext.BaseDirectory, "Sharpen.Cli.dll");

    const string Task = "task: { name: arithmetic, digits: 1 }\n";
    const string Sft = "kind: sft\nseed: 1\nmodel:\n  init: { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 128 }\n" +
        "  tokenizer: task\n" + Task + "data: { train_problems: 200, test_problems: 4 }\n" +
        "sft: { max_steps: 40, batch_size: 8, learning_rate: 0.003, warmup_steps: 2, max_sequence_length: 40, log_every: 1, eval_every: 0, eval_max_new_tokens: 8, checkpoint_every: 3, keep_checkpoints: 2 }\n" +
        "eval: { problems: 4, samples: 1, max_new_tokens: 8 }\n";

    static string Rl(string start) => $"kind: rl\nseed: 2\nmodel: {{ path: {start} }}\n" + Task + "data: { train_problems: 64, test_problems: 4 }\n" +
        "rl: { algorithm: grpo, iterations: 20, prompts_per_iteration: 4, samples_per_prompt: 4, beta: 0.02, overlong_buffer: 4, max_new_tokens: 8, learning_rate: 0.001, temperature: 1.0, eval_every: 0, eval_problems: 4, checkpoint_every: 2 }\n" +
        "eval: { problems: 4, samples: 1, max_new_tokens: 8 }\n";

    static string OnlineDpo(string start) => $"kind: online_dpo\nseed: 2\nmodel: {{ path: {start} }}\n" + Task + "data: { train_problems: 64, test_problems: 4 }\n" +
        "online_dpo: { iterations: 30, include_data_completion: true, prompts_per_iteration: 4, samples_per_prompt: 3, max_new_tokens: 8, learning_rate: 0.001, checkpoint_every: 2, seed: 1 }\n" +
        "eval: { problems: 4, samples: 1, max_new_tokens: 8 }\n";

    [Fact]
    public void Sft_grpo_and_online_dpo_killed_at_random_moments_resume_to_the_uninterrupted_result()
    {
        using var dir = new TempDir();
        var start = Path.Combine(dir.Path, "base");
        var straightSft = Train(dir, "sft-straight", Sft);
        Directory.CreateDirectory(start);
        foreach (var f in Directory.GetFiles(Path.Combine(straightSft, "final"))) File.Copy(f, Path.Combine(start, Path.GetFileName(f)));

        var rng = new Random(20261202);
        foreach (var (name, recipe) in new[] { ("sft", Sft), ("grpo", Rl(start)), ("online-dpo", OnlineDpo(start)) })
        {
            var straight = name == "sft" ? straightSft : Train(dir, name + "-straight", recipe);
            var killed = TrainWithKills(dir, name + "-killed", recipe, rng, out int kills);
            Assert.True(kills >= 1, $"{name}: the run was never killed (it finished before the first kill)");
            Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "final", "model.safetensors")),
                         File.ReadAllBytes(Path.Combine(killed, "final", "model.safetensors")));
            var steps = File.ReadAllLines(Path.Combine(killed, "metrics.jsonl")).Where(l => l.Length > 0)
                .Select(l => JsonNode.Parse(l)!["step"]!.GetValue<int>()).ToList();
            Assert.Equal(Enumerable.Range(1, steps.Count), steps);
            Assert.Equal(File.ReadAllLines(Path.Combine(straight, "metrics.jsonl")).Count(l => l.Length > 0), steps.Count);
            Assert.Equal("completed", JsonNode.Parse(File.ReadAllText(Path.Combine(killed, "summary.json")))!["status"]!.GetValue<string>());
        }
    }

    internal static string Write(TempDir dir, string name, string recipe)
    {
        var output = Path.Combine(dir.Path, name);
        var path = Path.Combine(dir.Path, name + ".yaml");
        File.WriteAllText(path, $"output: {output}\n" + recipe);
        return path;
    }

    internal static string Train(TempDir dir, string name, string recipe)
    {
        var path = Write(dir, name, recipe);
        using var p = Start(path, resume: false);
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{name}: exit {p.ExitCode}: {p.StandardError.ReadToEnd()}");
        return Path.Combine(dir.Path, name);
    }

    /// <summary>
    /// Starts the run and kills it when its progress line for a seeded random step appears, plus a random 0–100 ms (so the
    /// kill lands anywhere in the next step, a checkpoint write included); resumes and kills again at a later step, three
    /// times; then lets it finish.
    /// </summary>
    internal static string TrainWithKills(TempDir dir, string name, string recipe, Random rng, out int kills)
    {
        var path = Write(dir, name, recipe);
        kills = 0;
        int target = 0, fresh = 0;
        for (int attempt = 0; ; attempt++)
        {
            target += fresh > 0 && kills == 0 ? 1 : 1 + rng.Next(3);
            using var reached = new ManualResetEventSlim();
            int at = target;
            using var p = Start(path, resume: attempt > 0, line =>
            {
                var m = System.Text.RegularExpressions.Regex.Match(line, @"^(?:step|iter|iteration) (\d+)/");
                if (m.Success && int.Parse(m.Groups[1].Value) >= at) reached.Set();
            });
            while (kills < 3 && !reached.IsSet && !p.HasExited) Thread.Sleep(10);
            bool killNow = kills < 3 && reached.IsSet;
            if (killNow)
            {
                Thread.Sleep(rng.Next(100));
                try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                p.WaitForExit();
                if (p.ExitCode != 0) { kills++; continue; }
            }
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, $"{name}: exit {p.ExitCode} after {kills} kills: {p.StandardError.ReadToEnd()}");
            if (kills == 0 && fresh++ < 3)
            {
                // The run finished before the first kill landed (a fast machine): start over, killing at the first step.
                Directory.Delete(Path.Combine(dir.Path, name), recursive: true);
                attempt = -1;
                target = 0;
                continue;
            }
            return Path.Combine(dir.Path, name);
        }
    }

    internal static Process Start(string recipe, bool resume, Action<string>? onLine = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Cli, "train", recipe }.Concat(resume ? ["--resume"] : Array.Empty<string>())) psi.ArgumentList.Add(a);
        psi.Environment["SHARPEN_NUM_THREADS"] = "1";
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => { if (e.Data is { } l) onLine?.Invoke(l); };
        p.BeginOutputReadLine();
        return p;
    }
}
