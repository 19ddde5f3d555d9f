using Sharpen.Algorithms;
using Sharpen.Data;
using Sharpen.Environments;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Recipes;
using Sharpen.Rewards;
using Sharpen.Tests.Models;
using Sharpen.Training.Rl;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>
/// SCoRe's two stages (per-attempt rewards and KL weights) and REFUEL (prefix replay, the pairwise regression loss and a
/// tiny model fitting it), worked by hand; and each algorithm run from a recipe on its environment.
/// </summary>
public class ScoreRefuelTests
{
    static float[] Row(Tensor t, int i) => t[i].data<float>().ToArray();

    static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-6, $"[{i}] expected {expected[i]}, got {actual[i]}");
    }

    // ------------------------------------------------------------------ SCoRe

    [Theory]
    //          env rewards  r₁   stage α    expected turn rewards
    [InlineData(new[] { 0.0, 1.0 }, 0.0, 1, 10.0, new[] { 0.0, 1.0 })]     // stage I: the second attempt's reward only
    [InlineData(new[] { 0.0, 0.0 }, 1.0, 1, 10.0, new[] { 0.0, 0.0 })]     // stage I ignores r₁ (right → wrong earns 0, not a penalty)
    [InlineData(new[] { 0.0, 1.0 }, 0.0, 2, 10.0, new[] { 0.0, 11.0 })]    // stage II wrong → right: r₁ = 0; 1 + 10·(1 − 0)
    [InlineData(new[] { 0.0, 0.0 }, 1.0, 2, 10.0, new[] { 1.0, -10.0 })]   // stage II right → wrong: r₁ = 1; 0 + 10·(0 − 1)
    [InlineData(new[] { 0.0, 1.0 }, 1.0, 2, 10.0, new[] { 1.0, 1.0 })]     // right → right: no bonus
    [InlineData(new[] { 0.0, 0.5 }, 0.25, 2, 2.0, new[] { 0.25, 1.0 })]    // partial rewards: 0.5 + 2·(0.5 − 0.25) = 1
    [InlineData(new[] { 0.0 }, 1.0, 2, 10.0, new[] { -9.0 })]              // cut before the second attempt (r₂ = 0): 1 + 10·(0 − 1)
    [InlineData(new[] { 0.0 }, 1.0, 1, 10.0, new[] { 0.0 })]
    public void Score_turn_rewards_by_hand(double[] env, double r1, int stage, double alpha, double[] expected) =>
        Assert.Equal(expected, MultiTurnReturns.ScoreTurnRewards(env, r1, stage, alpha));

    [Fact]
    public void Score_reads_the_first_reward_from_the_first_turns_info()
    {
        var t = new Trajectory
        {
            Environment = "self-correction", End = TrajectoryEnd.Done, Messages = [],
            Turns =
            [
                new TrajectoryTurn(1, 0, new Dictionary<string, string> { ["first_reward"] = "1" }),
                new TrajectoryTurn(3, 0, new Dictionary<string, string>()),
            ],
        };
        var o = RlOptions.For("score_stage2") with { ShapingAlpha = 3 };
        Assert.Equal([1.0, -3.0], RlAlgorithms.Get("score_stage2").ShapeTurnRewards!(t, o));   // right → wrong: 0 + 3·(0 − 1)
        Assert.Equal([0.0, 0.0], RlAlgorithms.Get("score_stage1").ShapeTurnRewards!(t, o));
        var bad = t with { Turns = [new TrajectoryTurn(1, 0, new Dictionary<string, string> { ["first_reward"] = "yes" }), t.Turns[1]] };
        var e = Assert.Throws<ArgumentException>(() => RlAlgorithms.Get("score_stage2").ShapeTurnRewards!(bad, o));
        Assert.Contains("'first_reward' is 'yes'", e.Message);
    }

    [Fact]
    public void Score_kl_weights_give_the_first_attempt_beta2_and_later_attempts_beta1()
    {
        using var scope = NewDisposeScope();
        // A: completion [turn 1: 3, 4 | env: 5, 6 | turn 2: 7]; B: [turn 1: 8 | pad × 4] (as in MultiTurnRlTests).
        var a = new Trajectory
        {
            Environment = "hand", End = TrajectoryEnd.Done, Messages = [],
            Turns =
            [
                new TrajectoryTurn(1, 0, new Dictionary<string, string>()) { ContextIds = [1, 2], TokenIds = [3, 4], LogProbs = [-0.5f, -0.25f] },
                new TrajectoryTurn(3, 1, new Dictionary<string, string>()) { ContextIds = [5, 6], TokenIds = [7], LogProbs = [-1f] },
            ],
        };
        var b = a with { Turns = [new TrajectoryTurn(1, 0, new Dictionary<string, string>()) { ContextIds = [1, 2, 9], TokenIds = [8], LogProbs = [-2f] }] };
        var batch = MultiTurnBatch.Build([a, b], padId: 0);
        Assert.Equal(new long[] { 0, 0, 1, 1, 1 }, batch.TurnIds[0].data<long>().ToArray());   // env text [5, 6] belongs to the turn it precedes
        Assert.Equal(new long[] { 0, 0, 0, 0, 0 }, batch.TurnIds[1].data<long>().ToArray());
        var w = MultiTurnReturns.TurnKlWeights(batch.TurnIds, batch.Seq.CompletionMask, firstBeta: 0.1, laterBeta: 0.01);
        AssertClose([0.1f, 0.1f, 0, 0, 0.01f], Row(w, 0));                                 // β₂ on turn 1, β₁ on turn 2, 0 on env text
        AssertClose([0.1f, 0, 0, 0, 0], Row(w, 1));
        // The weighted KL term of the loss, k1 = log π − log π_ref, aggregated seq-mean-token-sum over the 2 rows:
        // row A: 0.1·(0.2 + 0.4) + 0.01·1.0 = 0.07; row B: 0.1·(−0.3) = −0.03; mean 0.02.
        var kl = tensor(new float[] { 0.2f, 0.4f, 9, 9, 1.0f, -0.3f, 9, 9, 9, 9 }).view(2, 5);
        var agg = new Aggregation(LossAggregation.SeqMeanTokenSum, batch.Seq.CompletionMask.sum().item<float>(), 2);
        Assert.Equal(0.02, LossAggregator.Aggregate(kl * w, batch.Seq.CompletionMask, agg).item<float>(), 6);
    }

    [Fact]
    public void Score_presets_follow_the_paper_and_need_an_environment()
    {
        var s1 = RlOptions.For("score_stage1");
        Assert.Equal((0.01, 0.1), (s1.Beta, s1.FirstTurnBeta));                     // β₂ = 10·β₁ in stage I
        var s2 = RlOptions.For("score_stage2");
        Assert.Equal((0.01, (double?)null, 10.0), (s2.Beta, s2.FirstTurnBeta, s2.ShapingAlpha));   // β₁ on both attempts, α = 10
        Assert.Contains("rl.target_kl", Assert.Throws<ArgumentException>(() => (s1 with { TargetKl = 1 }).Validate()).Message);
        Assert.Contains("rl.shaping_alpha", Assert.Throws<ArgumentException>(() => (s2 with { ShapingAlpha = -1 }).Validate()).Message);
        Assert.Contains("rl.eta", Assert.Throws<ArgumentException>(() => (RlOptions.For("refuel") with { Eta = 0 }).Validate()).Message);
        using var model = new CausalLM(CausalLMTests.Tiny(), seed: 1);
        var trainer = new RlTrainer(model, Sharpen.Tokenizers.CharTokenizer.Create("abc"), s1, []);
        var e = Assert.Throws<ArgumentException>(() => trainer.Run([new RlPrompt("a", new Dictionary<string, string>())], Path.GetTempPath()));
        Assert.Contains("'score_stage1' trains on multi-turn episodes", e.Message);
    }

    // ------------------------------------------------------------------ REFUEL

    [Fact]
    public void Refuel_policy_loss_by_hand_over_token_sums_with_padding_ignored()
    {
        using var scope = NewDisposeScope();
        // Pair 1: y has 2 tokens, Σ ln π/π_t = (−1 + 1.5) + (−0.5 + 1) = 1; y′ has 1 token (then padding, whose 9 must not count),
        //         Σ = −2 + 1.5 = −0.5. η = 2: (1 − (−0.5))/2 = 0.75; Q̂ diff = 1 − 0 = 1 → (0.75 − 1)² = 0.0625.
        // Pair 2: y: Σ = 0.25, y′: Σ = 0; η = 2 → 0.125; Q̂ diff = 0.5 − 1 = −0.5 → (0.125 + 0.5)² = 0.390625.
        // Sum over pairs / 2 pairs in the step = 0.2265625.
        var logp = tensor(new float[] { -1, -0.5f, -2, 9, -1, 0, -3, 0 }).view(4, 2);
        var old = tensor(new float[] { -1.5f, -1, -1.5f, 0, -1.25f, 0, -3, 0 }).view(4, 2);
        var mask = tensor(new float[] { 1, 1, 1, 0, 1, 0, 1, 0 }).view(4, 2);
        var q = tensor(new float[] { 1, 0, 0.5f, 1 });
        var input = new PolicyLossInput(logp, old, zeros_like(logp), mask);
        var ctx = new PolicyLossContext(new ClipOptions(), new Aggregation(LossAggregation.SeqMeanTokenSum, 5, 4), q, MinibatchPairs: 2, Eta: 2);
        var (loss, metrics) = PolicyLosses.Registry.Get("refuel").Compute(input, ctx);
        Assert.Equal(0.2265625, loss.item<float>(), 6);
        Assert.Equal(0, metrics.ClipFraction);
        // Micro-batches of one pair each, with the step's 2 pairs, add up to the same loss.
        var first = PairwisePolicyLosses.Refuel(new PolicyLossInput(logp[..2], old[..2], zeros_like(logp[..2]), mask[..2]), q[..2], 2, 2).Loss;
        var second = PairwisePolicyLosses.Refuel(new PolicyLossInput(logp[2..], old[2..], zeros_like(logp[2..]), mask[2..]), q[2..], 2, 2).Loss;
        Assert.Equal(0.03125, first.item<float>(), 6);
        Assert.Equal(0.1953125, second.item<float>(), 6);
        Assert.Throws<ArgumentException>(() => PairwisePolicyLosses.Refuel(new PolicyLossInput(logp[..3], old[..3], logp[..3], mask[..3]), q[..3], 1, 2));
    }

    [Fact]
    public void Refuel_regression_on_a_tiny_model_drives_its_loss_down_toward_the_relative_returns()
    {
        // Two prefixes, two responses each; the returns say y beats y′ by 1 in the first pair and loses by 0.5 in the second.
        // Adam steps on the REFUEL loss (η = 1, π_t = the model before the first step) fit the relative log-ratios to them.
        using var scope = NewDisposeScope();
        using var model = new CausalLM(CausalLMTests.Tiny(), seed: 3);
        var prompts = new List<IReadOnlyList<int>> { new[] { 1, 5, 6 }, new[] { 1, 5, 6 }, new[] { 1, 7 }, new[] { 1, 7 } };
        var completions = new List<IReadOnlyList<int>> { new[] { 8, 9, 2 }, new[] { 10, 2 }, new[] { 11, 2 }, new[] { 12, 3, 2 } };
        var seq = SequenceBatch.Build(prompts, completions, padId: 0);
        var q = tensor(new float[] { 1, 0, 0, 0.5f });
        Tensor LogProbs() => Scoring.CompletionLogProbs(model, seq) * seq.CompletionMask;
        Tensor old;
        using (no_grad()) old = LogProbs().detach();
        var opt = optim.Adam(model.parameters(), lr: 0.01);
        var losses = new List<double>();
        for (int step = 0; step < 40; step++)
        {
            opt.zero_grad();
            var (loss, _) = PairwisePolicyLosses.Refuel(new PolicyLossInput(LogProbs(), old, zeros_like(old), seq.CompletionMask), q, eta: 1, totalPairs: 2);
            loss.backward();
            opt.step();
            losses.Add(loss.item<float>());
        }
        // At θ = π_t both log-ratios are 0: the first loss is the mean squared return difference, (1² + 0.5²)/2 = 0.625.
        Assert.Equal(0.625, losses[0], 5);
        Assert.True(losses[^1] < 0.01 * losses[0], $"the regression did not fit: loss {losses[0]:F4} → {losses[^1]:F4}");
        using (no_grad())
        {
            var ratio = ((LogProbs() - old) * seq.CompletionMask).sum(1).data<float>().ToArray();
            Assert.InRange(ratio[0] - ratio[1], 0.9, 1.1);      // → Q̂(y) − Q̂(y′) = 1
            Assert.InRange(ratio[2] - ratio[3], -0.6, -0.4);    // → −0.5
        }
    }

    [Fact]
    public async Task Prefix_replay_starts_the_episode_after_the_given_actions()
    {
        static GuessNumberEnvironment Game() => new(new GuessNumberOptions { Low = 1, High = 16, MaxTurns = 5 });
        static string S(int x) => x.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var direct = Game();
        var first = await direct.ResetAsync(7);
        int secret = direct.Secret;
        string guess = S(secret == 8 ? 9 : 8), next = S(secret == 12 ? 13 : 12);   // two wrong guesses
        var afterGuess = await direct.StepAsync(guess);
        var afterNext = await direct.StepAsync(next);

        using var replay = new PrefixReplayEnvironment(Game(), [guess]);
        var obs = await replay.ResetAsync(7);
        Assert.Equal([.. first, new ChatMessage("assistant", guess), .. afterGuess.Observation], obs);   // the transcript so far is the context
        Assert.Equal([afterGuess.Reward], replay.PrefixRewards);
        var step = await replay.StepAsync(next);                                                // play goes on from turn 2
        Assert.Equal((afterNext.Reward, afterNext.Done), (step.Reward, step.Done));
        Assert.Equal(afterNext.Observation, step.Observation);

        // A prefix that ends the episode cannot be branched from.
        using var over = new PrefixReplayEnvironment(Game(), [S(secret), "1"]);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => over.ResetAsync(7).AsTask());
        Assert.Contains("ended at replayed turn 1 of 2", e.Message);
    }

    // ------------------------------------------------------------------ runs from recipes

    static string Recipe(string output, string env, string rl) => $$"""
        kind: rl
        output: {{output}}
        seed: 3
        model: { init: { hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 128 } }
        env: {{env}}
        rl: { iterations: 2, max_new_tokens: 6, learning_rate: 0.001, temperature: 1.0, eval_every: 0, {{rl}} }
        eval: { problems: 4 }
        """;

    [Theory]
    [InlineData("score_stage1")]
    [InlineData("score_stage2")]
    public void Score_stages_train_on_self_correction_and_log_both_attempts(string algorithm)
    {
        using var dir = new TempDir();
        var recipe = Sharpen.Recipes.Recipe.Parse(Recipe(dir.File("run"), "{ name: self-correction, task: arithmetic, token_budget: 96 }",
            $"algorithm: {algorithm}, prompts_per_iteration: 2, samples_per_prompt: 3"), "test.yaml");
        var result = RlPipeline.Run(recipe);
        Assert.Equal(2, result.Rl.Iterations);
        var rows = new RunLog(dir.File("run"), append: true).ReadMetrics();
        Assert.Equal(2, rows.Count);
        foreach (var row in rows)
        {
            Assert.Equal(6, row["trained_sequences"]!.GetValue<int>());     // 2 problems × 3 two-attempt episodes
            double first = row["first_attempt_accuracy"]!.GetValue<double>(), second = row["second_attempt_accuracy"]!.GetValue<double>();
            Assert.Equal(second - first, row["self_correction_delta"]!.GetValue<double>(), 9);
            Assert.True(double.IsFinite(row["kl"]!.GetValue<double>()));    // the reference model is there for the per-attempt KL
            Assert.True(double.IsFinite(row["loss"]!.GetValue<double>()));
        }
    }

    [Fact]
    public void Refuel_on_guess_number_trains_on_branched_pairs()
    {
        using var dir = new TempDir();
        var recipe = Sharpen.Recipes.Recipe.Parse(Recipe(dir.File("run"), "{ name: guess-number, low: 1, high: 8, max_turns: 3, token_budget: 96 }",
            "algorithm: refuel, prompts_per_iteration: 3"), "test.yaml");
        RlPipeline.Run(recipe);
        var rows = new RunLog(dir.File("run"), append: true).ReadMetrics();
        Assert.Equal(2, rows.Count);
        foreach (var row in rows)
        {
            Assert.Equal(6, row["trained_sequences"]!.GetValue<int>());     // 3 prefixes × 2 branched responses
            Assert.InRange(row["success_rate"]!.GetValue<double>(), 0, 1);  // of the 3 on-policy episodes
            Assert.True(double.IsFinite(row["loss"]!.GetValue<double>()) && row["loss"]!.GetValue<double>() >= 0);
            Assert.Null(row["kl"]);                                         // REFUEL has no reference model
        }
    }

    [Theory]
    [InlineData("score-stage1.yaml", "score_stage1")]
    [InlineData("score-stage2.yaml", "score_stage2")]
    [InlineData("refuel-guess-number.yaml", "refuel")]
    public void The_shipped_recipes_name_their_algorithm(string file, string algorithm)
    {
        var r = Sharpen.Recipes.Recipe.Load(RepoPaths.Of("recipes", file));
        Assert.Equal(algorithm, r.RlOptions().Algorithm);
        Assert.NotNull(r.Env);
    }
}
