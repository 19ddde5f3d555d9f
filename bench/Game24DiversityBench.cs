using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Recipes;
using Sharpen.Tasks;

namespace Sharpen.Bench;

/// <summary>Settings of <c>sharpen bench diversity --game24</c>.</summary>
public sealed record Game24DiversitySettings
{
    /// <summary>Scratch folder (the SFT policy is trained once here and reused; the RL runs are redone).</summary>
    public string WorkDir { get; init; } = "runs/bench-diversity-game24";
    /// <summary>SFT steps of the starting policy.</summary>
    public int SftSteps { get; init; } = 300;
    /// <summary>RL iterations of each method (8 prompts × 8 samples each).</summary>
    public int Iterations { get; init; } = 20;
    /// <summary>Held-out problems sampled after training.</summary>
    public int Problems { get; init; } = 30;
    /// <summary>Samples per held-out problem.</summary>
    public int Samples { get; init; } = 32;
    /// <summary>A tiny smoke run.</summary>
    public bool Quick { get; init; }

    /// <summary>Throws naming the bad option.</summary>
    public Game24DiversitySettings Validate()
    {
        if (SftSteps < 1) throw new ArgumentException($"--sft-steps must be ≥ 1, got {SftSteps}");
        if (Iterations < 1) throw new ArgumentException($"--iterations must be ≥ 1, got {Iterations}");
        if (Problems < 1) throw new ArgumentException($"--problems must be ≥ 1, got {Problems}");
        if (Samples < 1) throw new ArgumentException($"--samples must be ≥ 1, got {Samples}");
        return this;
    }
}

/// <summary>
/// Flow of Reasoning against GRPO on Game24 with a language model (issue 19 item 8; Yu et al. 2024, arXiv:2406.05673): a tiny
/// policy is SFT-trained on Game24's worked solutions, then trained by each method from that checkpoint with the same prompts,
/// samples (8 prompts × 8 samples per iteration), iterations, learning rate and temperature; afterwards every policy (SFT too)
/// samples <see cref="Game24DiversitySettings.Samples"/> solutions per held-out problem at temperature 1, and the bench counts,
/// per problem, the distinct correct solutions (distinct final expressions, spaces removed, among the samples the verifier accepts).
/// </summary>
public static class Game24DiversityBench
{
    const int MaxNewTokens = 48;
    const double LearningRate = 5e-5, Temperature = 1.0;

    /// <summary>Distinct correct solutions among one problem's samples: distinct extracted answers (spaces removed) of the correct ones.</summary>
    public static int DistinctCorrect(IEnumerable<Verdict> verdicts) =>
        verdicts.Where(v => v.Correct && v.ExtractedAnswer is not null).Select(v => v.ExtractedAnswer!.Replace(" ", "", StringComparison.Ordinal)).Distinct(StringComparer.Ordinal).Count();

    /// <summary>Runs the benchmark.</summary>
    public static JsonObject Run(Action<string> log, Game24DiversitySettings s)
    {
        s.Validate();
        var total = Stopwatch.StartNew();
        bool q = s.Quick;
        int sftSteps = q ? 4 : s.SftSteps, iterations = q ? 1 : s.Iterations, problems = q ? 2 : s.Problems, samples = q ? 4 : s.Samples;
        var sftOut = Path.Combine(s.WorkDir, "sft");
        var sftRecipe = Recipe.FromJson(new JsonObject
        {
            ["kind"] = "sft", ["output"] = sftOut, ["seed"] = 1,
            ["model"] = new JsonObject { ["init"] = new JsonObject { ["hidden_size"] = 128, ["intermediate_size"] = 336, ["num_hidden_layers"] = 3, ["num_attention_heads"] = 4, ["max_position_embeddings"] = 128 } },
            ["task"] = new JsonObject { ["name"] = "game24" },
            ["data"] = new JsonObject { ["train_problems"] = q ? 100 : 20000, ["test_problems"] = 100 },
            ["sft"] = new JsonObject
            {
                ["max_steps"] = sftSteps, ["batch_size"] = 64, ["learning_rate"] = 0.002, ["warmup_steps"] = Math.Min(30, sftSteps / 4), ["min_lr_ratio"] = 0.05,
                ["weight_decay"] = 0.01, ["max_sequence_length"] = 96, ["log_every"] = 20, ["eval_every"] = sftSteps, ["eval_problems"] = 20,
                ["eval_max_new_tokens"] = MaxNewTokens, ["checkpoint_every"] = 0, ["seed"] = 1,
            },
            ["eval"] = new JsonObject { ["problems"] = 50, ["samples"] = 1, ["max_new_tokens"] = MaxNewTokens },
        }, "game24-sft");
        var sftFinal = Path.Combine(sftOut, "final");
        double sftSeconds = 0;
        if (!File.Exists(Path.Combine(sftFinal, "model.safetensors")))
        {
            log($"training the Game24 SFT policy ({sftSteps} steps) into {sftOut}");
            var sw = Stopwatch.StartNew();
            SftPipeline.Run(sftRecipe, log);
            sftSeconds = sw.Elapsed.TotalSeconds;
        }

        var policies = new List<(string Name, string Dir, double Seconds)> { ("SFT (start)", sftFinal, sftSeconds) };
        foreach (var (name, algorithm) in new[] { ("GRPO", "grpo"), ("Flow of Reasoning (TB)", "flow_of_reasoning") })
        {
            var outDir = Path.Combine(s.WorkDir, algorithm);
            if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
            var rl = new JsonObject
            {
                ["algorithm"] = algorithm, ["iterations"] = iterations, ["prompts_per_iteration"] = 8, ["samples_per_prompt"] = 8, ["max_new_tokens"] = MaxNewTokens,
                ["learning_rate"] = LearningRate, ["temperature"] = Temperature, ["micro_batch_size"] = 64, ["eval_every"] = 0, ["checkpoint_every"] = 0,
            };
            if (algorithm == "flow_of_reasoning") rl["beta"] = 0.2;
            var rlRecipe = Recipe.FromJson(new JsonObject
            {
                ["kind"] = "rl", ["output"] = outDir, ["seed"] = 2, ["model"] = new JsonObject { ["path"] = sftFinal },
                ["task"] = new JsonObject { ["name"] = "game24" }, ["data"] = new JsonObject { ["train_problems"] = 200, ["test_problems"] = 20 },
                ["rl"] = rl, ["eval"] = new JsonObject { ["problems"] = 20, ["samples"] = 1, ["max_new_tokens"] = MaxNewTokens },
            }, $"game24-{algorithm}");
            log($"{name}: {iterations} iterations of 8 prompts × 8 samples from the SFT policy");
            var sw = Stopwatch.StartNew();
            RlPipeline.Run(rlRecipe, log);
            policies.Add((name, Path.Combine(outDir, "final"), sw.Elapsed.TotalSeconds));
        }

        // Held out: the SFT data's test split (never an RL prompt: the RL runs draw their own problems with seed 2, checked below).
        var task = new Game24Task();
        var (_, testFile) = DatasetWriter.SplitPaths(Path.Combine(sftOut, "data", "game24.jsonl"));
        var rlIds = JsonlDataset.LoadSft(DatasetWriter.SplitPaths(Path.Combine(s.WorkDir, "grpo", "data", "game24.jsonl")).Train).Items
            .Select(e => e.Fields.GetValueOrDefault("id") ?? e.Prompt).ToHashSet(StringComparer.Ordinal);
        var heldOut = JsonlDataset.LoadSft(testFile).Items.Select(SftPipeline.ToProblem).Where(p => !rlIds.Contains(p.Id)).Take(problems).ToList();
        log($"held out: {heldOut.Count} Game24 problems from {testFile} (none among the RL prompts), {samples} samples each at temperature {Temperature}");

        var rows = new JsonArray();
        foreach (var (name, dir, seconds) in policies)
        {
            var loaded = HfCheckpoint.Load(dir, requireTokenizer: true);
            using var model = loaded.Model;
            var outs = new RolloutEngine(model, loaded.Tokenizer!).Generate(heldOut.Select(p => p.Prompt).ToList(),
                new SamplingOptions { Temperature = Temperature, MaxNewTokens = MaxNewTokens, SamplesPerPrompt = samples, Seed = 31 });
            var byProblem = heldOut.Select(_ => new List<Verdict>()).ToList();
            foreach (var r in outs) byProblem[r.PromptIndex].Add(task.Verify(heldOut[r.PromptIndex], r.CompletionText));
            double acc = byProblem.Average(v => v.Average(x => x.Correct ? 1.0 : 0.0));
            var distinct = byProblem.Select(DistinctCorrect).ToList();
            int solved = distinct.Count(d => d > 0);
            rows.Add(new JsonObject
            {
                ["method"] = name, ["sample_accuracy"] = Math.Round(acc, 4), ["problems_solved"] = solved,
                ["distinct_correct_per_problem"] = Math.Round(distinct.Average(), 3),
                ["distinct_correct_per_solved_problem"] = solved == 0 ? null : Math.Round(distinct.Where(d => d > 0).Average(), 3),
                ["train_seconds"] = Math.Round(seconds, 1),
            });
            log($"{name}: sample accuracy {acc:P1}, solved {solved}/{heldOut.Count}, distinct correct per problem {distinct.Average():F2}");
        }
        return new JsonObject
        {
            ["benchmark"] = "diversity-game24",
            ["quick"] = q,
            ["settings"] = new JsonObject
            {
                ["sft"] = $"hidden 128, 3 layers, {sftSteps} steps of 64 Game24 worked solutions, lr 2e-3",
                ["rl"] = $"{iterations} iterations × 8 prompts × 8 samples, lr {LearningRate}, temperature {Temperature}, max {MaxNewTokens} new tokens; flow_of_reasoning beta 0.2; grpo preset otherwise",
                ["held_out_problems"] = heldOut.Count, ["samples_per_problem"] = samples,
                ["distinct"] = "distinct final expressions (spaces removed) among the verifier-accepted samples",
            },
            ["rows"] = rows,
            ["seconds"] = Math.Round(total.Elapsed.TotalSeconds, 1),
        };
    }
}
