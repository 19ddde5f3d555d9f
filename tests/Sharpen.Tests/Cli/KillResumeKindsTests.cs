using System.Text.Json.Nodes;

namespace Sharpen.Tests.Cli;

/// <summary>
/// The real-process kill/resume check of <see cref="KillResumeTests"/> (SIGKILL of `sharpen train` at seeded random
/// progress points, then --resume, three times) for the other trainers: offline preference (DPO), reward model, PRM,
/// expert iteration (ReST-EM), DNO, and RL with a critic (PPO) and with a leave-one-out baseline (RLOO). Every
/// safetensors file of the killed run's final/ must equal the uninterrupted run's byte for byte, and metrics.jsonl must
/// hold every step (iteration, for expert iteration) exactly once.
/// </summary>
public class KillResumeKindsTests
{
    const string Tiny = "init: { hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 64 }";

    /// <summary>
    /// The SFT recipe of the starting policy for the sampling trainers: long enough that 1-digit sums are often right with
    /// 24 new tokens, so rewards vary and the online updates move the weights (a run whose rewards are all equal would
    /// pass trivially).
    /// </summary>
    const string Base = "kind: sft\nseed: 1\nmodel:\n  init: { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 128 }\n" +
        "  tokenizer: task\ntask: { name: arithmetic, digits: 1 }\ndata: { train_problems: 200, test_problems: 4 }\n" +
        "sft: { max_steps: 150, batch_size: 16, learning_rate: 0.01, warmup_steps: 2, max_sequence_length: 40, log_every: 10, eval_every: 0, eval_max_new_tokens: 24 }\n" +
        "eval: { problems: 4, samples: 1, max_new_tokens: 24 }\n";

    const string Arithmetic = "task: { name: arithmetic, digits: 1 }\ndata: { train_problems: 64, test_problems: 4 }\neval: { problems: 4, samples: 1, max_new_tokens: 24 }\n";

    static string Pairs(string kind, string data, string section) => $"kind: {kind}\nseed: 1\nmodel:\n  {Tiny}\n  tokenizer: \"chars:abcd \"\n" +
        $"data: {{ train: {data} }}\n{kind}: {{ {section}max_steps: 120, batch_size: 2, learning_rate: 0.002, log_every: 1, warmup_steps: 0, checkpoint_every: 3, keep_checkpoints: 2 }}\n";

    [Fact]
    public void Offline_trainers_killed_at_random_moments_resume_to_the_uninterrupted_result()
    {
        using var dir = new TempDir();
        var pairs = Path.Combine(dir.Path, "pairs.jsonl");
        CliHarness.WritePairs(pairs);
        File.AppendAllLines(pairs, ["""{"prompt": "dd", "chosen": "ab", "rejected": "ba"}"""]);
        var steps = Path.Combine(dir.Path, "steps.jsonl");
        string Row(string s1, string s2, string l1, string l2) => $$"""{"prompt": "ab", "steps": ["{{s1}}", "{{s2}}"], "labels": [{{l1}}, {{l2}}]}""";
        File.WriteAllLines(steps, [Row("ab ", "cd", "true", "true"), Row("dd ", "ab", "false", "false"), Row("ab ", "dd", "1", "0.25"), Row("cc ", "ad", "true", "false")]);

        var rng = new Random(20261203);
        Check(dir, rng, "dpo", Pairs("preference", pairs, "loss: dpo, beta: 0.1, ") .Replace("data: {", "data: { skip_bad_lines: true,"));
        Check(dir, rng, "reward-model", Pairs("reward_model", pairs, "").Replace("data: {", "data: { skip_bad_lines: true,"));
        Check(dir, rng, "prm", Pairs("prm", steps, "step_splitter: \"delimiter: \", "));
    }

    [Fact]
    public void Sampling_trainers_killed_at_random_moments_resume_to_the_uninterrupted_result()
    {
        using var dir = new TempDir();
        var start = Path.Combine(KillResumeTests.Train(dir, "base", Base), "final");
        string Rl(string algorithm, string extra) => $"kind: rl\nseed: 2\nmodel: {{ path: {start} }}\n" + Arithmetic +
            $"rl: {{ algorithm: {algorithm}, {extra}iterations: 16, prompts_per_iteration: 4, beta: 0.02, max_new_tokens: 24, learning_rate: 0.001, temperature: 1.0, eval_every: 0, eval_problems: 4, checkpoint_every: 2 }}\n";

        var rng = new Random(20261204);
        Check(dir, rng, "ppo", Rl("ppo", "samples_per_prompt: 1, critic_learning_rate: 0.001, "), start: start);
        Check(dir, rng, "rloo", Rl("rloo", "samples_per_prompt: 4, "), start: start);
        Check(dir, rng, "dno", $"kind: dno\nseed: 2\nmodel: {{ path: {start} }}\n" + Arithmetic +
            "dno: { iterations: 16, include_data_completion: true, prompts_per_iteration: 4, samples_per_prompt: 3, max_new_tokens: 24, learning_rate: 0.001, checkpoint_every: 2, seed: 1 }\n", start: start);
        Check(dir, rng, "rest-em", $"kind: expert_iteration\nseed: 2\nmodel: {{ path: {start} }}\n" + Arithmetic +
            "expert_iteration: { method: rest_em, iterations: 8, samples_per_problem: 2, max_new_tokens: 24, eval_problems: 4 }\n" +
            "sft: { max_steps: 10, batch_size: 4, warmup_steps: 0, learning_rate: 0.001 }\n", stepKey: "iteration", start: start);
    }

    static void Check(TempDir dir, Random rng, string name, string recipe, string stepKey = "step", string? start = null)
    {
        var straight = KillResumeTests.Train(dir, name + "-straight", recipe);
        if (start is not null)   // the run trained: equal results are not the starting weights left alone
            Assert.False(File.ReadAllBytes(Path.Combine(start, "model.safetensors")).AsSpan()
                .SequenceEqual(File.ReadAllBytes(Path.Combine(straight, "final", "model.safetensors"))), $"{name}: the weights never moved");
        var killed = KillResumeTests.TrainWithKills(dir, name + "-killed", recipe, rng, out int kills);
        Assert.True(kills >= 1, $"{name}: the run was never killed (it finished before the first kill)");

        var weights = Directory.GetFiles(Path.Combine(straight, "final"), "*.safetensors", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(straight, f)).Order().ToList();
        Assert.NotEmpty(weights);
        Assert.Equal(weights, Directory.GetFiles(Path.Combine(killed, "final"), "*.safetensors", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(killed, f)).Order().ToList());
        foreach (var f in weights)
            Assert.True(File.ReadAllBytes(Path.Combine(straight, f)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(killed, f))),
                $"{name}: {f} differs from the uninterrupted run's after {kills} kills");

        var logged = File.ReadAllLines(Path.Combine(killed, "metrics.jsonl")).Where(l => l.Length > 0)
            .Select(l => JsonNode.Parse(l)![stepKey]!.GetValue<int>()).ToList();
        Assert.Equal(Enumerable.Range(1, logged.Count), logged);
        Assert.Equal(File.ReadAllLines(Path.Combine(straight, "metrics.jsonl")).Count(l => l.Length > 0), logged.Count);
        Assert.Equal("completed", JsonNode.Parse(File.ReadAllText(Path.Combine(killed, "summary.json")))!["status"]!.GetValue<string>());
    }
}
