using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Data;
using Sharpen.Export;
using Sharpen.Generation;
using Sharpen.LlamaCpp;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tests.Export;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Training.Preference;
using Sharpen.Training.Rl;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>
/// Rollouts from another engine than the trainer's own: the RL trainer keeps the engine's log-probs, recomputes its own,
/// logs the gap, and corrects the policy gradient with truncated importance sampling (Yao et al. 2025).
/// </summary>
public class EngineMismatchTests
{
    static CharTokenizer Tok => Bandit.Tok;
    static readonly List<RlPrompt> APrompts = Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string>()), 16).ToList();

    /// <summary>A bandit policy llama.cpp can run (head size 16), near uniform at the start like <see cref="Bandit.Model"/>.</summary>
    static CausalLM BanditModel(long seed = 1) => new(new ModelConfig
    {
        ModelType = "llama", VocabSize = Tok.VocabSize, HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2,
        NumKeyValueHeads = 2, MaxPositionEmbeddings = 32, EosTokenIds = [CharTokenizer.EosId], InitializerRange = 0.02,
    }, seed);

    static IReadOnlyList<JsonObject> Metrics(string dir) => new RunLog(dir, append: true).ReadMetrics();

    [Fact]
    public void A_grpo_bandit_learns_with_the_llamacpp_engine_and_with_the_torch_engine_on_the_same_seed()
    {
        var o = RlOptions.Grpo() with { Iterations = 30, PromptsPerIteration = 16, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2, Beta = 0.0, EvalEvery = 0 };
        using var torchModel = BanditModel();
        using var torchDir = new TempDir();
        double before = Bandit.ProbabilityOfC(torchModel);
        Assert.InRange(before, 0.08, 0.17);
        new RlTrainer(torchModel, Tok, o, Bandit.RewardC).Run(APrompts, torchDir.Path);

        using var llamaModel = BanditModel();
        using var llamaDir = new TempDir();
        using (var engine = new LlamaCppEngine(llamaModel, Tok, new LlamaCppOptions { Threads = 2, WorkDirectory = llamaDir.File("gguf") }))
            new RlTrainer(llamaModel, Tok, o, Bandit.RewardC) { Engine = engine }.Run(APrompts, llamaDir.Path);

        double viaTorch = Bandit.ProbabilityOfC(torchModel), viaLlama = Bandit.ProbabilityOfC(llamaModel);
        Assert.True(viaTorch > 0.9, $"torch engine: p(c) {before:F3} → {viaTorch:F3}");
        Assert.True(viaLlama > 0.9, $"llamacpp engine: p(c) {before:F3} → {viaLlama:F3}");
        // The torch engine samples the trainer's policy: no recomputation, no mismatch metrics, no TIS.
        Assert.All(Metrics(torchDir.Path), r => Assert.False(r.ContainsKey("rollout/logprob_abs_diff")));
        // llama.cpp on f32 weights with an f32 cache: the engine's log-probs are the trainer's up to float rounding (bound 1e-4),
        // so the truncated IS weights (on by default for this engine) are 1.
        var rows = Metrics(llamaDir.Path);
        Assert.Equal(30, rows.Count);
        foreach (var r in rows)
        {
            Assert.True(r["rollout/logprob_abs_diff"]!.GetValue<double>() < 1e-4, r.ToJsonString());
            Assert.True(r["rollout/kl_engine_trainer"]!.GetValue<double>() < 1e-6, r.ToJsonString());
            Assert.True(Math.Abs(r["rollout/tis_weight_mean"]!.GetValue<double>() - 1) < 1e-3, r.ToJsonString());
            Assert.Equal(0, r["rollout/tis_capped_fraction"]!.GetValue<double>());
        }
    }

    [Fact]
    public void The_logged_mismatch_is_near_zero_for_f32_gguf_and_larger_for_f16()
    {
        var tok = CharTokenizer.Create("abcdefghijk +=0123456789");
        double Gap(GgufDType dtype)
        {
            using var model = LlamaCppOracle.Randomize(new CausalLM(new ModelConfig
            {
                ModelType = "llama", VocabSize = tok.VocabSize, HiddenSize = 64, IntermediateSize = 96, NumHiddenLayers = 2,
                NumAttentionHeads = 4, NumKeyValueHeads = 2, MaxPositionEmbeddings = 64, EosTokenIds = [CharTokenizer.EosId],
            }, 5), 105, scale: 0.15);
            using var dir = new TempDir();
            using var engine = new LlamaCppEngine(model, tok, new LlamaCppOptions { Threads = 2, DType = dtype, WorkDirectory = dir.File("gguf") });
            var o = RlOptions.Grpo() with { Iterations = 1, PromptsPerIteration = 4, SamplesPerPrompt = 4, MaxNewTokens = 12, LearningRate = 1e-3, Beta = 0, EvalEvery = 0 };
            var prompts = new[] { "abc", "hello", "12+3=", "k" }.Select(p => new RlPrompt(p, new Dictionary<string, string>())).ToList();
            IReadOnlyList<WeightedReward> rewards = [new(new DelegateReward("len", c => c.Completion.Length))];
            new RlTrainer(model, tok, o, rewards) { Engine = engine }.Run(prompts, dir.Path);
            return Metrics(dir.Path)[0]["rollout/logprob_abs_diff"]!.GetValue<double>();
        }
        double f32 = Gap(GgufDType.F32), f16 = Gap(GgufDType.F16);
        Assert.True(f32 < 1e-4, $"f32: mean |Δ log-prob| {f32:E2}");
        Assert.True(f16 > 5 * f32 && f16 > 1e-4, $"f16 {f16:E2} should exceed f32 {f32:E2} clearly");
    }

    /// <summary>
    /// A deliberately wrong engine: samples from the policy at temperature <paramref name="temperature"/> and reports the log-probs
    /// of that tempered distribution (its own), as a server that applies its sampling settings to the reported log-probs would.
    /// </summary>
    sealed class TemperedEngine(CausalLM model, ITokenizer tokenizer, double temperature) : IRolloutEngine
    {
        readonly RolloutEngine _inner = new(model, tokenizer);
        public ITokenizer Tokenizer => tokenizer;
        public IReadOnlySet<int> EosIds => _inner.EosIds;
        public int Syncs { get; private set; }
        public void SyncWeights(CausalLM policy) => Syncs++;

        public IReadOnlyList<Rollout> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingOptions options)
        {
            var ro = _inner.Generate(prompts, options with { Temperature = temperature * options.Temperature });
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            var b = SequenceBatch.Build(ro.Select(r => (IReadOnlyList<int>)r.PromptIds).ToList(), ro.Select(r => (IReadOnlyList<int>)r.CompletionIds).ToList(), CharTokenizer.PadId);
            var logits = model.Forward(b.InputIds, b.AttentionMask).Logits.narrow(1, b.PromptLength - 1, b.CompletionIds.shape[1]);   // (B, A, V)
            var lp = Scoring.TokenLogProbs(logits / (temperature * options.Temperature), b.CompletionIds);                          // (B, A) tempered
            var rows = lp.to_type(ScalarType.Float32).contiguous().data<float>().ToArray();
            long a = b.CompletionIds.shape[1];
            return ro.Select((r, i) => r with { LogProbs = rows.Skip((int)(i * a)).Take(r.CompletionIds.Length).ToArray() }).ToList();
        }
    }

    /// <summary>
    /// The expected policy gradient of a one-token bandit is known exactly: ∇_θ E_π[r] = ∇_θ π(best). Estimated from samples of the
    /// tempered engine, the plain estimator (1/N) Σ (r − b) ∇log π(a) is biased (it averages over μ, not π); weighting each
    /// sample by min(π/μ, C) removes most of the bias. On-policy samples of the same size show the noise level.
    /// </summary>
    [Fact]
    public void With_a_perturbed_engine_the_uncorrected_gradient_is_biased_and_truncated_is_removes_most_of_it()
    {
        using var model = LlamaCppOracle.Randomize(Bandit.Model(seed: 4), 44, scale: 0.5);
        var aIds = Tok.Encode("a");
        // π(· | "a") and the rewarded token: the policy's most likely one.
        float[] probs;
        using (no_grad())
            probs = model.Forward(tensor(aIds.Select(i => (long)i).ToArray()).view(1, -1)).Logits[0, -1].softmax(-1).data<float>().ToArray();
        int best = Array.IndexOf(probs, probs.Max());
        double baseline = probs[best];   // b = E_π[r]: the plain estimator is then unbiased on-policy

        float[] Flat() => model.parameters().Where(p => p.grad is not null).SelectMany(p => p.grad!.contiguous().data<float>().ToArray()).ToArray();
        model.zero_grad();
        model.Forward(tensor(aIds.Select(i => (long)i).ToArray()).view(1, -1)).Logits[0, -1].softmax(-1)[best].backward();
        var exact = Flat();                                                                          // ∇π(best)

        float[] Estimate(IRolloutEngine engine, double? cap)
        {
            var ro = engine.Generate(Enumerable.Repeat((IReadOnlyList<int>)aIds, 64).ToList(),
                new SamplingOptions { SamplesPerPrompt = 64, MaxNewTokens = 1, StopAtEos = false, Seed = 7 });
            using var scope = NewDisposeScope();
            var b = SequenceBatch.Build(ro.Select(r => (IReadOnlyList<int>)r.PromptIds).ToList(), ro.Select(r => (IReadOnlyList<int>)r.CompletionIds).ToList(), CharTokenizer.PadId);
            model.zero_grad();
            var logp = Scoring.TokenLogProbs(model.Forward(b.InputIds, b.AttentionMask).Logits.narrow(1, b.PromptLength - 1, 1), b.CompletionIds);   // (N, 1)
            var engineLp = tensor(ro.Select(r => r.LogProbs[0]).ToArray()).view(-1, 1);
            var adv = tensor(ro.Select(r => (r.CompletionIds[0] == best ? 1f : 0f) - (float)baseline).ToArray()).view(-1, 1);
            var mask = ones_like(adv);
            if (cap is { } c) adv = adv * TruncatedImportance.Weights(logp.detach(), engineLp, mask, c);
            var (loss, _) = PolicyLosses.Vanilla(new PolicyLossInput(logp, logp.detach(), adv, mask), new Aggregation(LossAggregation.TokenMean));
            loss.backward();
            return Flat().Select(g => -g).ToArray();                                                // the loss is −estimate
        }
        double Error(float[] g) => Math.Sqrt(g.Zip(exact, (x, y) => (double)(x - y) * (x - y)).Sum() / exact.Sum(y => (double)y * y));

        var tempered = new TemperedEngine(model, Tok, temperature: 1.6);
        double onPolicy = Error(Estimate(new RolloutEngine(model, Tok), cap: null));
        double uncorrected = Error(Estimate(tempered, cap: null));
        double corrected = Error(Estimate(tempered, cap: 2.0));
        var msg = $"p(best) {baseline:F3}; relative error of the gradient: on-policy {onPolicy:F3}, tempered engine uncorrected {uncorrected:F3}, with TIS (C=2) {corrected:F3}";
        Assert.True(uncorrected > 2 * onPolicy, msg);
        Assert.True(corrected < 0.5 * uncorrected, msg);
    }

    [Fact]
    public void The_trainer_logs_the_mismatch_of_a_perturbed_engine_and_weights_only_with_tis_on()
    {
        foreach (var tis in new bool?[] { null, false })
        {
            using var model = LlamaCppOracle.Randomize(Bandit.Model(seed: 4), 44, scale: 0.5);
            using var dir = new TempDir();
            var engine = new TemperedEngine(model, Tok, temperature: 1.6);
            var o = RlOptions.Grpo() with { Iterations = 2, PromptsPerIteration = 8, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-3, Beta = 0, EvalEvery = 0 };
            new RlTrainer(model, Tok, o, Bandit.RewardC) { Engine = engine, Tis = tis }.Run(APrompts, dir.Path);
            Assert.Equal(2, engine.Syncs);
            foreach (var r in Metrics(dir.Path))
            {
                Assert.True(r["rollout/logprob_abs_diff"]!.GetValue<double>() > 0.05, r.ToJsonString());
                Assert.True(r["rollout/kl_engine_trainer"]!.GetValue<double>() > 0, r.ToJsonString());
                Assert.Equal(tis is null, r.ContainsKey("rollout/tis_weight_mean"));   // default: on for an engine that is not the trainer's
            }
        }
        // TIS weights token advantages; the sequence-level loss of TOPR cannot take them.
        using var m2 = Bandit.Model();
        var e = Assert.Throws<ArgumentException>(() => new RlTrainer(m2, Tok, RlOptions.For("topr") with { Iterations = 1, EvalEvery = 0 }, Bandit.RewardC) { Tis = true }
            .Run(APrompts, Path.Combine(Path.GetTempPath(), "unused-" + Guid.NewGuid())));
        Assert.Contains("topr", e.Message);
    }

    [Fact]
    public void Old_log_probs_folded_into_the_update_give_the_same_step_mismatch_and_tis_weights_as_a_separate_pass()
    {
        // The first minibatch of an iteration runs on the parameters the engine sampled from, so the old log-probs taken from
        // its forward (detached) must equal a separate no-grad pass: same parameters after 3 iterations (ratio 1 either way,
        // TIS weights from the same numbers), same logged mismatch and TIS weights. The tempered engine's log-probs are far
        // from the trainer's, so with C = 1.1 some TIS weights are capped: the weighting is exercised.
        (float[] Params, IReadOnlyList<JsonObject> Rows) Run(bool fold)
        {
            using var model = LlamaCppOracle.Randomize(Bandit.Model(seed: 4), 44, scale: 0.5);
            using var dir = new TempDir();
            var engine = new TemperedEngine(model, Tok, temperature: 1.6);
            var o = RlOptions.Grpo() with { Iterations = 3, PromptsPerIteration = 8, SamplesPerPrompt = 4, MaxNewTokens = 2, LearningRate = 1e-2, Beta = 0.05, EvalEvery = 0 };
            new RlTrainer(model, Tok, o, Bandit.RewardC) { Engine = engine, FoldOldLogProbs = fold, TisCap = 1.1 }.Run(APrompts, dir.Path);
            return (model.parameters().SelectMany(p => p.detach().contiguous().data<float>().ToArray()).ToArray(), Metrics(dir.Path));
        }
        var (separate, sepRows) = Run(fold: false);
        var (folded, foldRows) = Run(fold: true);
        double maxDiff = separate.Zip(folded, (x, y) => Math.Abs((double)x - y)).Max();
        Assert.True(maxDiff < 1e-5, $"parameters differ by {maxDiff:E2}");
        Assert.Equal(3, foldRows.Count);
        for (int i = 0; i < 3; i++)
            foreach (var key in new[] { "rollout/logprob_abs_diff", "rollout/kl_engine_trainer", "rollout/tis_weight_mean", "rollout/tis_capped_fraction", "kl", "loss" })
            {
                double a = sepRows[i][key]!.GetValue<double>(), b = foldRows[i][key]!.GetValue<double>();
                Assert.True(Math.Abs(a - b) <= 1e-5 * Math.Max(1, Math.Abs(a)), $"iteration {i + 1} {key}: separate {a}, folded {b}");
            }
        Assert.Contains(foldRows, r => r["rollout/tis_capped_fraction"]!.GetValue<double>() > 0);
        // β > 0: iteration 2 had reward signal (its update moved the policy), so iteration 3's KL to the reference, taken from
        // the folded log-probs, is positive.
        Assert.True(foldRows[1]["advantage_std"]!.GetValue<double>() > 0, foldRows[1].ToJsonString());
        Assert.True(foldRows[2]["kl"]!.GetValue<double>() > 1e-6, foldRows[2].ToJsonString());
    }

    [Fact]
    public void Online_dpo_samples_with_the_given_engine_and_syncs_it_after_each_update()
    {
        using var model = Bandit.Model();
        using var dir = new TempDir();
        var engine = new TemperedEngine(model, Tok, temperature: 1.0);
        var o = OnlineDpoOptions.For("online_dpo") with { Iterations = 2, PromptsPerIteration = 4, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-3 };
        new OnlineDpoTrainer(model, Tok, o, Bandit.RewardC) { Engine = engine }.Run(APrompts, dir.Path);
        var rows = Metrics(dir.Path);
        Assert.Equal(2, rows.Count);
        // One sync per iteration that updated the policy (an iteration without pairs changes nothing).
        Assert.Equal(rows.Count(r => r["pairs"]!.GetValue<int>() > 0), engine.Syncs);
        Assert.True(engine.Syncs > 0);
    }
}
