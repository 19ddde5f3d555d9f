using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.LlamaCpp;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tokenizers;
using Sharpen.Training.Rl;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>
/// <c>rollout.async</c>: the engine generates iteration k+1's rollouts while the trainer updates on iteration k's, with the
/// weights it was last synced to; the sync waits for that generation. So iteration k ≥ 1 trains on rollouts of the weights
/// after k − 1 updates, one update old, and no sync ever lands in the middle of a generation.
/// </summary>
public class AsyncRolloutTests
{
    static CharTokenizer Tok => Bandit.Tok;

    /// <summary>An engine that holds its own copy of the weights (as llama.cpp or a server does): it samples that copy, and a
    /// sync copies the policy's weights into it. It records how many syncs it had seen when each generation started, and
    /// whether a sync arrived while a generation was running (each generation sleeps a little to give one the chance).</summary>
    sealed class OwnCopyEngine : IRolloutEngine, IDisposable
    {
        readonly CausalLM _copy;
        readonly RolloutEngine _inner;
        int _busy;
        public OwnCopyEngine(CausalLM policy) { _copy = policy.Copy(trainable: false); _inner = new RolloutEngine(_copy, Tok); }
        public ITokenizer Tokenizer => Tok;
        public IReadOnlySet<int> EosIds => _inner.EosIds;
        public int Syncs { get; private set; }
        public List<int> VersionAtGenerate { get; } = [];
        public List<int> GenerateThreads { get; } = [];
        public int SyncsDuringGenerate { get; private set; }

        public IReadOnlyList<Rollout> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingOptions options)
        {
            Interlocked.Exchange(ref _busy, 1);
            try
            {
                lock (VersionAtGenerate) { VersionAtGenerate.Add(Syncs); GenerateThreads.Add(Environment.CurrentManagedThreadId); }
                Thread.Sleep(50);
                return _inner.Generate(prompts, options);
            }
            finally { Interlocked.Exchange(ref _busy, 0); }
        }

        public void SyncWeights(CausalLM policy)
        {
            if (Volatile.Read(ref _busy) == 1) SyncsDuringGenerate++;
            using var _ = no_grad();
            var src = policy.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in _copy.named_parameters()) p.copy_(src[name]);
            Syncs++;
        }

        public void Dispose() => _copy.Dispose();
    }

    static readonly List<RlPrompt> Prompts = Enumerable.Range(0, 40).Select(i => new RlPrompt("a", new Dictionary<string, string> { ["i"] = i.ToString() })).ToList();

    static RlOptions Options(int iterations) => RlOptions.Grpo() with
    {
        Iterations = iterations, PromptsPerIteration = 4, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2, Beta = 0.0, EvalEvery = 0,
    };

    [Fact]
    public void Iteration_k_trains_on_rollouts_of_the_weights_after_k_minus_1_updates_and_no_sync_lands_inside_a_generation()
    {
        foreach (bool overlap in new[] { false, true })
        {
            using var model = Bandit.Model(seed: 3);
            using var engine = new OwnCopyEngine(model);
            using var dir = new TempDir();
            new RlTrainer(model, Tok, Options(4), Bandit.RewardC) { Engine = engine, AsyncRollouts = overlap }.Run(Prompts, dir.Path);

            // One sync per update either way. Synchronous: generation k sees k syncs. Async: generation 0 sees none, generation
            // k ≥ 1 started during update k − 1, before its sync: k − 1 syncs.
            Assert.Equal(4, engine.Syncs);
            Assert.Equal(overlap ? new[] { 0, 0, 1, 2 } : new[] { 0, 1, 2, 3 }, engine.VersionAtGenerate);
            Assert.Equal(0, engine.SyncsDuringGenerate);
            var rows = new RunLog(dir.Path, append: true).ReadMetrics();
            Assert.Equal(4, rows.Count);
            if (overlap)
            {
                Assert.Equal(new[] { 0, 1, 1, 1 }, rows.Select(r => r["rollout/policy_lag"]!.GetValue<int>()));
                Assert.All(rows, r => Assert.True(r["rollout/wait_seconds"]!.GetValue<double>() >= 0));
                // Generations 1..3 ran on a worker thread, generation 0 on the caller's.
                Assert.All(engine.GenerateThreads.Skip(1), t => Assert.NotEqual(engine.GenerateThreads[0], t));
                // Rollouts one update old differ from the trained policy: the recomputed old log-probs show it.
                Assert.True(rows.Skip(1).Average(r => r["rollout/logprob_abs_diff"]!.GetValue<double>()) > 1e-4);
            }
            else
            {
                Assert.All(rows, r => Assert.False(r.ContainsKey("rollout/policy_lag")));
                Assert.All(rows, r => Assert.True(r["rollout/logprob_abs_diff"]!.GetValue<double>() < 1e-5, r.ToJsonString()));   // synced each time
            }
            Assert.Equal(0.0, rows[0]["rollout/logprob_abs_diff"]!.GetValue<double>(), 5);   // the copy starts equal to the policy
        }
    }

    [Fact]
    public void A_checkpoint_records_the_data_position_before_the_prefetched_draw_so_a_resume_draws_the_same_prompts()
    {
        using var model = Bandit.Model(seed: 3);
        using var engine = new OwnCopyEngine(model);
        using var dir = new TempDir();
        new RlTrainer(model, Tok, Options(3) with { CheckpointEvery = 1, KeepCheckpoints = 3 }, Bandit.RewardC) { Engine = engine, AsyncRollouts = true }
            .Run(Prompts, dir.Path);
        // 4 prompts per iteration out of 40: after iteration k the trainer has used 4k of them, although the prefetch of
        // iteration k + 1 had already drawn 4 more when checkpoint k was written.
        foreach (int k in new[] { 1, 2 })
        {
            var state = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "checkpoints", $"checkpoint-{k}", "trainer_state.json")))!;
            Assert.Equal(4 * k, state["position"]!.GetValue<int>());
            Assert.Equal(0, state["epoch"]!.GetValue<int>());
        }
    }

    [Fact]
    public void A_grpo_bandit_learns_with_async_llamacpp_rollouts()
    {
        using var model = Bandit.Model();
        using var dir = new TempDir();
        double before = Bandit.ProbabilityOfC(model);
        var o = RlOptions.Grpo() with { Iterations = 30, PromptsPerIteration = 16, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2, Beta = 0.0, EvalEvery = 0 };
        var prompts = Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string>()), 16).ToList();
        using (var engine = new LlamaCppEngine(model, Tok, new LlamaCppOptions { Threads = 1, WorkDirectory = dir.File("gguf") }))
            new RlTrainer(model, Tok, o, Bandit.RewardC) { Engine = engine, AsyncRollouts = true }.Run(prompts, dir.Path);
        double after = Bandit.ProbabilityOfC(model);
        Assert.True(after > 0.9, $"p(c) {before:F3} → {after:F3}");
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal(30, rows.Count);
        Assert.Equal(29, rows.Count(r => r["rollout/policy_lag"]!.GetValue<int>() == 1));
        Assert.All(rows, r => Assert.True(r.ContainsKey("rollout/tis_weight_mean")));   // on by default for llama.cpp
    }

    [Fact]
    public void Async_needs_an_engine_with_its_own_weights_and_prompt_rollouts()
    {
        LlamaCppEngines.Register();
        var e = Assert.Throws<ArgumentException>(() => RolloutSpec.Parse(new JsonObject { ["engine"] = "torch", ["async"] = true }));
        Assert.Contains("rollout.async", e.Message);
        Assert.Contains("llamacpp", e.Message);
        var spec = RolloutSpec.Parse(new JsonObject { ["engine"] = "llamacpp", ["async"] = true });
        Assert.True(spec.Async);
        Assert.False(RolloutSpec.Parse(new JsonObject { ["engine"] = "llamacpp" }).Async);
        var bad = Assert.Throws<ArgumentException>(() => RolloutSpec.Parse(new JsonObject { ["engine"] = "llamacpp", ["async"] = "yes" }));
        Assert.Contains("async", bad.Message);

        // The trainer refuses the torch engine (it samples the policy being updated) when asked directly.
        using var model = Bandit.Model();
        using var dir = new TempDir();
        var t = Assert.Throws<ArgumentException>(() => new RlTrainer(model, Tok, Options(1), Bandit.RewardC) { AsyncRollouts = true }.Run(Prompts, dir.Path));
        Assert.Contains("rollout.async", t.Message);
    }
}
