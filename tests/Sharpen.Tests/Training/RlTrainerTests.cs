using Sharpen.Generation;
using System.Text.Json.Nodes;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using static TorchSharp.torch;
using Sharpen.Training.Rl;
using Sharpen.Data;

namespace Sharpen.Tests.Training;

public class RlTrainerTests
{
    // Vocabulary: 4 specials + "abcd" = 8 tokens; the bandit rewards the single token "c".
    static CharTokenizer Tok => Bandit.Tok;
    static CausalLM Model(long seed = 1) => Bandit.Model(seed);
    static IReadOnlyList<WeightedReward> RewardC => Bandit.RewardC;
    static double ProbabilityOfC(CausalLM m) => Bandit.ProbabilityOfC(m);

    [Theory]
    [InlineData("grpo")]
    [InlineData("dr_grpo")]
    [InlineData("rloo")]
    [InlineData("remax")]
    [InlineData("reinforce")]
    [InlineData("topr")]
    [InlineData("ppo")]
    [InlineData("oreal")]
    public void Every_algorithm_learns_a_one_token_bandit(string algorithm)
    {
        using var dir = new TempDir();
        using var model = Model();
        double before = ProbabilityOfC(model);
        Assert.InRange(before, 0.08, 0.17);   // ≈ 1/8 at initialisation
        var o = RlOptions.For(algorithm) with
        {
            Iterations = 40, PromptsPerIteration = 16, MaxNewTokens = 1, LearningRate = 1e-2, Beta = 0.0, EvalEvery = 0,
            CriticLearningRate = 1e-2, SamplesPerPrompt = RlOptions.For(algorithm).SamplesPerPrompt == 1 ? 1 : 4,
        };
        var prompts = Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string>()), 16).ToList();
        new RlTrainer(model, Tok, o, RewardC).Run(prompts, dir.Path);
        double after = ProbabilityOfC(model);
        Assert.True(after > 0.9, $"{algorithm}: p(c) went from {before:F3} to {after:F3}");
    }

    [Fact]
    public void An_iteration_logs_the_metrics_the_loop_promises()
    {
        using var dir = new TempDir();
        using var model = Model();
        var o = RlOptions.Grpo() with { Iterations = 2, PromptsPerIteration = 4, SamplesPerPrompt = 4, MaxNewTokens = 3, LearningRate = 1e-3, Beta = 0.05, EvalEvery = 0 };
        new RlTrainer(model, Tok, o, RewardC).Run([new RlPrompt("a", new Dictionary<string, string>())], dir.Path);
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal(2, rows.Count);
        foreach (var key in new[] { "reward_mean", "reward_std", "reward/is_c", "kl", "entropy", "clip_fraction", "approx_kl", "advantage_mean",
                     "advantage_std", "zero_advantage_group_fraction", "completion_length", "generation_tokens_per_s", "train_tokens_per_s",
                     "timing/generate", "timing/score", "timing/reference", "timing/advantage", "timing/update_actor" })
            Assert.True(rows[0].ContainsKey(key), key);
        // At the first iteration the policy equals the reference: KL is 0 up to float noise.
        Assert.True(Math.Abs(rows[0]["kl"]!.GetValue<double>()) < 1e-4);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal("grpo", summary["algorithm"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(dir.Path, "final", "model.safetensors")));
    }

    [Theory]
    [InlineData("grpo")]
    [InlineData("ppo")]
    public void A_stopped_and_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(string algorithm)
    {
        var prompts = "a b c d ab cd".Split(' ').Select(p => new RlPrompt(p, new Dictionary<string, string>())).ToList();
        IReadOnlyList<WeightedReward> rewards = [new(new DelegateReward("len", c => c.Completion.Length / 4.0))];
        var o = RlOptions.For(algorithm) with
        {
            Iterations = 6, PromptsPerIteration = 4, SamplesPerPrompt = algorithm == "ppo" ? 1 : 3, MaxNewTokens = 4, LearningRate = 5e-3,
            Beta = 0.1, TargetKl = 0.05, CheckpointEvery = 2, KeepCheckpoints = 1, EvalEvery = 0, Epochs = 2, MiniBatchSize = 6, MicroBatchSize = 4,
        };
        using var straightDir = new TempDir();
        using var straight = Model(seed: 3);
        new RlTrainer(straight, Tok, o, rewards).Run(prompts, straightDir.Path);

        using var stoppedDir = new TempDir();
        using (var first = Model(seed: 3))
        {
            using var cts = new CancellationTokenSource();
            var t = new RlTrainer(first, Tok, o, rewards) { Log = l => { if (l.StartsWith("iter 5/")) cts.Cancel(); } };
            Assert.Throws<OperationCanceledException>(() => t.Run(prompts, stoppedDir.Path, cancel: cts.Token));
        }
        Assert.Equal(["checkpoint-4"], Directory.GetDirectories(Path.Combine(stoppedDir.Path, "checkpoints")).Select(Path.GetFileName));
        using var resumed = Model(seed: 77);
        new RlTrainer(resumed, Tok, o, rewards).Run(prompts, stoppedDir.Path, resume: true);
        var a = resumed.Weights().ToDictionary(w => w.Name, w => w.Tensor.detach().contiguous().data<float>().ToArray());
        foreach (var (name, w) in straight.Weights())
        {
            var x = w.detach().contiguous().data<float>().ToArray();
            for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(x[i] - a[name][i]) < 1e-6, $"{name}[{i}]: {x[i]} vs {a[name][i]}");
        }
        Assert.Equal([1, 2, 3, 4, 5, 6], new RunLog(stoppedDir.Path, append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>()));
    }

    [Fact]
    public void Zero_advantage_groups_can_be_left_out_of_the_update()
    {
        // Groups of 3: [1,1,1] carries no signal, [0,1,0] does, [0,0,0] does not, [0.5,0.5,1] does.
        double[] r = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0.5, 0.5, 1];
        Assert.Equal([3L, 4, 5, 9, 10, 11], RlTrainer.RowsOfGroupsWithSignal(r, 3));

        using var dir = new TempDir();
        using var model = Model();
        var o = RlOptions.Grpo() with { Iterations = 30, PromptsPerIteration = 16, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2, Beta = 0.0, EvalEvery = 0, SkipZeroAdvantageGroups = true };
        new RlTrainer(model, Tok, o, RewardC).Run([new RlPrompt("a", new Dictionary<string, string>())], dir.Path);
        Assert.True(ProbabilityOfC(model) > 0.9);
        var trained = new RunLog(dir.Path, append: true).ReadMetrics().Select(x => x["trained_sequences"]!.GetValue<int>()).ToList();
        Assert.All(trained, t => Assert.Equal(0, t % 4));   // whole groups only
        Assert.Contains(trained, t => t < 64);               // some groups were all-equal and skipped
    }

    [Fact]
    public void Overlong_punishment_follows_dapo_and_joins_the_reward()
    {
        // L_max = 48, L_cache = 8: nothing up to 40 tokens, then (40 − L)/8, −1 at 48.
        var p = new OverlongPenalty(48, 8);
        Assert.Equal([0.0, 0.0, -0.125, -0.5, -1.0], new[] { 10, 40, 41, 44, 48 }.Select(p.Score));
        Assert.Throws<ArgumentOutOfRangeException>(() => new OverlongPenalty(4, 8));

        // In the trainer: reward = 0 from the task, plus 0.5 × the punishment with L_max = 4, L_cache = 2. A spy reward
        // records the lengths the trainer scored, so the expected mean is worked out from them, not from the trainer.
        var lengths = new List<int>();
        var spy = new DelegateReward("spy", c => { lock (lengths) lengths.Add(c.CompletionTokens); return 0.0; });
        using var dir = new TempDir();
        using var model = Model();
        var o = RlOptions.Grpo() with { Iterations = 1, PromptsPerIteration = 8, SamplesPerPrompt = 4, MaxNewTokens = 4, LearningRate = 1e-3, Beta = 0.0, EvalEvery = 0, OverlongBuffer = 2, OverlongPenalty = 0.5 };
        new RlTrainer(model, Tok, o, [new(spy)]).Run([new RlPrompt("a", new Dictionary<string, string>())], dir.Path);
        var row = Assert.Single(new RunLog(dir.Path, append: true).ReadMetrics());
        Assert.Equal(32, lengths.Count);
        double expected = lengths.Average(l => Math.Min(0.0, (2.0 - l) / 2.0));
        Assert.Equal(expected, row["reward/overlong"]!.GetValue<double>(), 9);
        Assert.Equal(0.5 * expected, row["reward_mean"]!.GetValue<double>(), 9);
        Assert.Contains("rl.overlong_buffer (8) must not exceed rl.max_new_tokens (4)",
            Assert.Throws<ArgumentException>(() => (RlOptions.Grpo() with { MaxNewTokens = 4, OverlongBuffer = 8 }).Validate()).Message);
    }

    [Fact]
    public void Truncated_completions_can_be_left_out_of_the_loss()
    {
        // Groups of 2: [1,1] no signal, [0,1] signal, [0,0] none, [1,0] signal; rows 1, 3 and 6 hit the token limit.
        double[] r = [1, 1, 0, 1, 0, 0, 1, 0];
        var m = StopReason.MaxTokens;
        StopReason[] stops = [StopReason.Eos, m, StopReason.Eos, m, StopReason.Eos, StopReason.StopString, m, StopReason.Eos];
        Assert.Equal([0L, 2, 4, 5, 7], RlTrainer.TrainRows(r, 2, stops, skipZeroGroups: false, maskTruncated: true));
        Assert.Equal([2L, 7], RlTrainer.TrainRows(r, 2, stops, skipZeroGroups: true, maskTruncated: true));
        Assert.Equal([2L, 3, 6, 7], RlTrainer.TrainRows(r, 2, stops, skipZeroGroups: true, maskTruncated: false));
        Assert.Equal(8, RlTrainer.TrainRows(r, 2, stops, false, false).Length);

        // In a run with one new token at most, only completions whose token was EOS stay in the loss.
        using var dir = new TempDir();
        using var model = Model();
        var o = RlOptions.Grpo() with { Iterations = 1, PromptsPerIteration = 32, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2, Beta = 0.0, EvalEvery = 0, MaskTruncatedCompletions = true };
        new RlTrainer(model, Tok, o, RewardC).Run([new RlPrompt("a", new Dictionary<string, string>())], dir.Path);
        int trained = Assert.Single(new RunLog(dir.Path, append: true).ReadMetrics())["trained_sequences"]!.GetValue<int>();
        Assert.InRange(trained, 1, 127);   // p(EOS) ≈ 1/8 at initialisation: some kept, most dropped
        Assert.Contains("p3o", Assert.Throws<ArgumentException>(() => (RlOptions.P3o() with { MaskTruncatedCompletions = true }).Validate()).Message);
    }

    /// <summary>
    /// A reward that makes every third group (in scoring order, counted across rounds and iterations) mixed:
    /// its first sample gets 1, the others 0; every other group gets 0 throughout.
    /// </summary>
    static IReadOnlyList<WeightedReward> EveryThirdGroupMixed(int g)
    {
        int call = 0;
        return [new(new DelegateReward("third", _ => { int c = call++, group = c / g; return group % 3 == 0 && c % g == 0 ? 1.0 : 0.0; }))];
    }

    /// <summary>GRPO, 2 iterations of 4 prompts × G = 2 one-token samples, no KL, with dynamic sampling.</summary>
    static RlOptions DynamicSampling(int maxRounds) => RlOptions.Grpo() with
    {
        Iterations = 2, PromptsPerIteration = 4, SamplesPerPrompt = 2, MaxNewTokens = 1, LearningRate = 1e-3, Beta = 0.0, EvalEvery = 0,
        DynamicSampling = true, MaxSamplingRounds = maxRounds,
    };

    [Fact]
    public void Dynamic_sampling_draws_more_prompts_until_the_batch_holds_only_groups_with_signal()
    {
        // 4 prompts per round, G = 2. Groups 0,3 | 6 | 9 of rounds 1–3 are mixed: the batch is full after 3 rounds,
        // and the pattern repeats every 12 groups, so every iteration takes exactly 3 rounds.
        using var dir = new TempDir();
        using var model = Model();
        var o = DynamicSampling(maxRounds: 5);
        new RlTrainer(model, Tok, o, EveryThirdGroupMixed(2)).Run([new RlPrompt("a", new Dictionary<string, string>())], dir.Path);
        foreach (var row in new RunLog(dir.Path, append: true).ReadMetrics())
        {
            Assert.Equal(3, row["sampling_rounds"]!.GetValue<int>());
            Assert.Equal(4, row["trained_groups"]!.GetValue<int>());
            Assert.Equal(8, row["trained_sequences"]!.GetValue<int>());
            // Metrics cover all 12 generated groups: 4 mixed groups with rewards (1, 0), 8 groups of zeros.
            Assert.Equal(4.0 / 24, row["reward_mean"]!.GetValue<double>(), 9);
            Assert.Equal(8.0 / 12, row["zero_advantage_group_fraction"]!.GetValue<double>(), 9);
            // Only mixed groups were trained on: every advantage is ±(1 − 0.5)/std(1, 0) = ±0.5/√0.5 = ±0.7071.
            Assert.Equal(0.0, row["advantage_mean"]!.GetValue<double>(), 5);
            Assert.Equal(0.5 / Math.Sqrt(0.5), row["advantage_std"]!.GetValue<double>(), 4);
        }
    }

    [Fact]
    public void Dynamic_sampling_stops_at_its_round_limit_and_trains_on_what_it_found()
    {
        // MaxSamplingRounds = 2: iteration 1 finds groups 0, 3 (round 1) and 6 (round 2); iteration 2 finds 9 (round 1)
        // and 12, 15 (round 2). Three groups each time.
        using var dir = new TempDir();
        using var model = Model();
        var o = DynamicSampling(maxRounds: 2);
        new RlTrainer(model, Tok, o, EveryThirdGroupMixed(2)).Run([new RlPrompt("a", new Dictionary<string, string>())], dir.Path);
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal([2, 2], rows.Select(r => r["sampling_rounds"]!.GetValue<int>()));
        Assert.Equal([3, 3], rows.Select(r => r["trained_groups"]!.GetValue<int>()));
        Assert.Equal([3.0 / 16, 3.0 / 16], rows.Select(r => r["reward_mean"]!.GetValue<double>()));

        // No group with signal at all: the last round's groups are trained on (zero advantages), and the run goes on.
        using var flatDir = new TempDir();
        using var flatModel = Model();
        IReadOnlyList<WeightedReward> flat = [new(new DelegateReward("zero", _ => 0.0))];
        new RlTrainer(flatModel, Tok, o, flat).Run([new RlPrompt("a", new Dictionary<string, string>())], flatDir.Path);
        var flatRows = new RunLog(flatDir.Path, append: true).ReadMetrics();
        Assert.All(flatRows, r => { Assert.Equal(2, r["sampling_rounds"]!.GetValue<int>()); Assert.Equal(4, r["trained_groups"]!.GetValue<int>()); });
        Assert.All(flatRows, r => Assert.Equal(1.0, r["zero_advantage_group_fraction"]!.GetValue<double>()));
    }

    [Fact]
    public void An_entropy_bonus_spreads_a_peaked_policy_when_rewards_carry_no_signal()
    {
        // First make the policy peaked on "c" (the bandit), then train with a constant reward: every advantage is 0 and
        // β = 0, so the entropy bonus is the only gradient. It must move probability off "c"; without it nothing moves.
        using var dir = new TempDir();
        using var model = Model();
        var o = RlOptions.Grpo() with { Iterations = 40, PromptsPerIteration = 16, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2, Beta = 0.0, EvalEvery = 0 };
        var prompts = new[] { new RlPrompt("a", new Dictionary<string, string>()) };
        new RlTrainer(model, Tok, o, RewardC).Run(prompts, Path.Combine(dir.Path, "peak"));
        double peaked = ProbabilityOfC(model);
        Assert.True(peaked > 0.9, $"p(c) = {peaked}");

        IReadOnlyList<WeightedReward> constant = [new(new DelegateReward("one", _ => 1.0))];
        new RlTrainer(model, Tok, o with { Iterations = 10 }, constant).Run(prompts, Path.Combine(dir.Path, "flat"));
        Assert.Equal(peaked, ProbabilityOfC(model), 4);
        new RlTrainer(model, Tok, o with { Iterations = 10, EntropyCoefficient = 0.5 }, constant).Run(prompts, Path.Combine(dir.Path, "entropy"));
        double spread = ProbabilityOfC(model);
        Assert.True(spread < peaked - 0.1, $"p(c) went from {peaked:F3} to {spread:F3}");
        var entropies = new RunLog(Path.Combine(dir.Path, "entropy"), append: true).ReadMetrics().Select(r => r["entropy"]!.GetValue<double>()).ToList();
        Assert.True(entropies[^1] > entropies[0], string.Join(", ", entropies));
    }

    [Fact]
    public void Unknown_algorithms_fail_at_once_listing_the_known_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => RlOptions.For("a2c"));
        foreach (var name in new[] { "ppo", "grpo", "dr_grpo", "remax", "rloo", "reinforce", "topr" }) Assert.Contains(name, e.Message);
        Assert.Throws<ArgumentException>(() => (RlOptions.Grpo() with { Algorithm = "nope" }).Validate());
        Assert.Contains("samples_per_prompt", Assert.Throws<ArgumentException>(() => (RlOptions.Grpo() with { SamplesPerPrompt = 1 }).Validate()).Message);
    }
}

public class OfflineToprTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcd");

    [Fact]
    public void Offline_topr_learns_from_scored_completions_and_their_behaviour_log_probs()
    {
        using var dir = new TempDir();
        using var model = new CausalLM(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, InitializerRange = 0.02, MaxPositionEmbeddings = 32 }, seed: 4);
        // The behaviour policy: the model's own log-probs of each one-letter completion (plus EOS).
        var rows = new List<string>();
        var prompt = Tok.Encode("a").ToList();
        foreach (var letter in "abcd")
        {
            var lp = Sharpen.Generation.Scoring.Score(model, [prompt], [[Tok.Encode(letter.ToString(), addSpecialTokens: false)[0], Tok.EosTokenId!.Value]], padId: 0)[0];
            var json = new JsonObject { ["prompt"] = "a", ["completion"] = letter.ToString(), ["reward"] = letter == 'c' ? 1.0 : 0.0,
                ["logprobs"] = new JsonArray(lp.Select(x => (JsonNode)(double)x).ToArray()) };
            for (int k = 0; k < 4; k++) rows.Add(json.ToJsonString());
        }
        File.WriteAllLines(dir.File("scored.jsonl"), rows);
        var data = Sharpen.Data.ScoredCompletion.Load(dir.File("scored.jsonl")).Items;
        var o = RlOptions.Topr() with { Iterations = 40, PromptsPerIteration = 4, SamplesPerPrompt = 4, LearningRate = 1e-2, MaxNewTokens = 2, EvalEvery = 0 };
        new RlTrainer(model, Tok, o, []).RunOffline(data, dir.File("run"));
        using var _ = no_grad();
        var probs = model.Forward(tensor(prompt.Select(i => (long)i).ToArray()).view(1, -1)).Logits[0, -1].softmax(-1);
        Assert.True(probs[Tok.Encode("c", addSpecialTokens: false)[0]].item<float>() > 0.9);
        Assert.True(File.Exists(dir.File("run/summary.json")));
    }

    [Fact]
    public void Scored_completion_files_are_validated_line_by_line()
    {
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("s.jsonl"), [
            """{"prompt":"a","completion":"b","reward":1,"logprobs":[-0.5]}""",
            """{"prompt":"a","completion":"b","reward":1,"logprobs":[0.5]}""",
        ]);
        var e = Assert.Throws<Sharpen.Data.DatasetFormatException>(() => Sharpen.Data.ScoredCompletion.Load(dir.File("s.jsonl")));
        Assert.Contains("s.jsonl:2:", e.Message);
        Assert.Contains("logprobs", e.Message);
        // A reward beyond ±1e6 (1e39 is a finite double but overflows float32 in the update) is a bad line naming file:line.
        File.WriteAllLines(dir.File("big.jsonl"), [
            """{"prompt":"a","completion":"b","reward":1000000}""",
            """{"prompt":"a","completion":"b","reward":1e39}""",
            """{"prompt":"a","completion":"b","reward":-1000001}""",
        ]);
        var big = Assert.Throws<Sharpen.Data.DatasetFormatException>(() => Sharpen.Data.ScoredCompletion.Load(dir.File("big.jsonl")));
        Assert.Contains("big.jsonl:2:", big.Message);
        Assert.Contains("\"reward\" is 1e39, beyond ±1e6", big.Message);
        var kept = Sharpen.Data.ScoredCompletion.Load(dir.File("big.jsonl"), skipBadLines: true);
        Assert.Equal([1e6], kept.Items.Select(x => x.Reward));
        Assert.Equal(2, kept.SkippedLines);
        var skipped = Sharpen.Data.ScoredCompletion.Load(dir.File("s.jsonl"), skipBadLines: true);
        Assert.Single(skipped.Items);
        Assert.Equal(1, skipped.SkippedLines);
        using var model = new CausalLM(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize }, seed: 1);
        Assert.Contains("on-policy", Assert.Throws<ArgumentException>(() => new RlTrainer(model, Tok, RlOptions.Grpo(), []).RunOffline(skipped.Items, dir.Path)).Message);
    }
}
