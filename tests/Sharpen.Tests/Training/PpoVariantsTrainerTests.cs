using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tasks;
using Sharpen.Training;
using Sharpen.Training.Rl;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>PPO-max's switches, LoRA-PPO's shared-base critic, PF-PPO's filter and NLPO's masked action space, run through
/// <see cref="RlTrainer"/> on the one-token bandit (prompt "a", reward for "c").</summary>
public class PpoVariantsTrainerTests
{
    static readonly RlPrompt A = new("a", new Dictionary<string, string>());
    static int Id(string s) => Bandit.Tok.Encode(s, addSpecialTokens: false)[0];

    static IReadOnlyList<JsonObject> Rows(string dir) => new RunLog(dir, append: true).ReadMetrics();
    static JsonNode Summary(string dir) => JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")))!;
    static double D(JsonObject row, string key) => row[key]!.GetValue<double>();

    // ---------------------------------------------------------------- PPO-max

    [Fact]
    public void The_ppo_max_preset_turns_on_the_papers_switches()
    {
        var o = RlOptions.For("ppo_max");
        Assert.True(o.NormalizeRewards);
        Assert.Equal(5.0, o.RewardClip);
        Assert.True(o.WhitenAdvantages);
        Assert.Equal(CriticInit.RewardModel, o.Critic.Init);
        Assert.Equal("k1", o.KlEstimator);                                  // per-token KL, in the reward
        Assert.Equal(KlPlacement.InReward, RlAlgorithms.Get("ppo_max").Kl);
        Assert.True(RlAlgorithms.Get("ppo_max").UsesCritic);
    }

    [Fact]
    public void A_critic_from_the_reward_model_starts_at_the_reward_models_value()
    {
        using var rmDir = new TempDir();
        float expected;
        using (var rm = Bandit.Model(seed: 7))
        using (var head = new ScalarHead(rm.Config.HiddenSize, initStd: 0.5))
        {
            HfCheckpoint.Save(rmDir.Path, rm, Bandit.Tok, head);
            // The completion's one token is predicted from the prompt's last hidden state: V = head(h_last("a")).
            using var _ = no_grad();
            var ids = tensor(Bandit.Tok.Encode("a").Select(i => (long)i).ToArray()).view(1, -1);
            var hidden = rm.Forward(ids, returnHidden: true).Hidden!;
            expected = head.forward(hidden)[0, -1].item<float>();
        }
        Assert.True(Math.Abs(expected) > 1e-3);
        var o = RlOptions.For("ppo_max") with { Iterations = 1, PromptsPerIteration = 4, MaxNewTokens = 1, EvalEvery = 0, Beta = 0 };
        using (var dir = new TempDir())
        using (var policy = Bandit.Model())
        {
            new RlTrainer(policy, Bandit.Tok, o, Bandit.RewardC) { RewardModelDirectory = rmDir.Path }.Run([A], dir.Path);
            Assert.Equal(expected, D(Rows(dir.Path)[0], "value_mean"), 4);
            Assert.Equal("reward_model", Summary(dir.Path)["critic_init"]!.GetValue<string>());
        }
        // The ppo default copies the policy with a zero head: V = 0 before the first update.
        using (var dir = new TempDir())
        using (var policy = Bandit.Model())
        {
            new RlTrainer(policy, Bandit.Tok, RlOptions.Ppo() with { Iterations = 1, PromptsPerIteration = 4, MaxNewTokens = 1, EvalEvery = 0 }, Bandit.RewardC).Run([A], dir.Path);
            Assert.Equal(0.0, D(Rows(dir.Path)[0], "value_mean"));
        }
        using (var dir = new TempDir())
        using (var policy = Bandit.Model())
        {
            var e = Assert.Throws<ArgumentException>(() => new RlTrainer(policy, Bandit.Tok, o, Bandit.RewardC).Run([A], dir.Path));
            Assert.Contains("rl.critic.init", e.Message);
        }
    }

    [Fact]
    public void Ppo_ptx_adds_the_sft_rows_nll_and_trains_the_policy_toward_them()
    {
        using var data = new TempDir();
        var ptx = Path.Combine(data.Path, "sft.jsonl");
        File.WriteAllLines(ptx, Enumerable.Repeat("{\"prompt\": \"a\", \"completion\": \"c\"}", 3));
        IReadOnlyList<WeightedReward> zero = [new(new DelegateReward("zero", _ => 0.0))];   // no policy-gradient signal at all
        var o = RlOptions.Ppo() with
        {
            Iterations = 1, PromptsPerIteration = 4, MaxNewTokens = 1, EvalEvery = 0, Beta = 0, Epochs = 1, LearningRate = 1e-2,
            PtxCoefficient = 1.0, PtxData = ptx, PtxBatchSize = 2,
        };
        using (var dir = new TempDir())
        using (var policy = Bandit.Model())
        {
            // The first step's NLL is the starting model's: −(log π(c | a) + log π(EOS | a c)) / 2.
            double expected;
            using (no_grad())
            {
                var ids = Bandit.Tok.Encode("a").Select(i => (long)i).Append(Id("c")).ToArray();
                var logp = policy.Forward(tensor(ids).view(1, -1)).Logits[0].log_softmax(-1);
                int p = ids.Length - 1;
                expected = -(logp[p - 1, Id("c")].item<float>() + logp[p, Bandit.Tok.EosTokenId!.Value].item<float>()) / 2;
            }
            new RlTrainer(policy, Bandit.Tok, o, zero).Run([A], dir.Path);
            Assert.Equal(expected, D(Rows(dir.Path)[0], "ptx_loss"), 4);
        }
        using (var dir = new TempDir())
        using (var policy = Bandit.Model())
        {
            double before = Bandit.ProbabilityOfC(policy);
            new RlTrainer(policy, Bandit.Tok, o with { Iterations = 30 }, zero).Run([A], dir.Path);
            double after = Bandit.ProbabilityOfC(policy);
            Assert.True(after > 0.9, $"p(c) went from {before:F3} to {after:F3} with only the ptx term");
        }
        Assert.Throws<ArgumentException>(() => (RlOptions.Ppo() with { PtxCoefficient = 0.5 }).Validate());   // no ptx_data
    }

    [Fact]
    public void Recipe_keys_of_the_variants_bind_and_bad_values_name_their_key()
    {
        const string head = "kind: rl\noutput: runs/x\nmodel: {path: m}\ntask: {name: sentiment}\nrl:\n";
        var o = Sharpen.Recipes.Recipe.Parse(head + "  algorithm: ppo_max\n  critic: {init: reward_model, path: rm}\n  ptx_coefficient: 0.5\n" +
            "  ptx_data: sft.jsonl\n  filter: best_worst\n  samples_per_prompt: 4\n  action_mask_top_p: 0.8\n").RlOptions();
        Assert.Equal((CriticInit.RewardModel, "rm"), (o.Critic.Init, o.Critic.Path));
        Assert.Equal((0.5, "sft.jsonl", Sharpen.Algorithms.PolicyFilter.BestWorst, 0.8), (o.PtxCoefficient, o.PtxData, o.Filter, o.ActionMaskTopP));
        Assert.True(o.NormalizeRewards);                                                     // the rest from the ppo_max preset
        Assert.Contains("critic", Assert.Throws<Sharpen.Recipes.RecipeException>(() => Sharpen.Recipes.Recipe.Parse(head + "  algorithm: ppo\n  critic: {init: nope}\n")).Message);
        Assert.Contains("rl.ptx_data", Assert.Throws<Sharpen.Recipes.RecipeException>(() => Sharpen.Recipes.Recipe.Parse(head + "  algorithm: ppo\n  ptx_coefficient: 1\n")).Message);
        Assert.Contains("rl.action_mask_top_p", Assert.Throws<Sharpen.Recipes.RecipeException>(() => Sharpen.Recipes.Recipe.Parse(head + "  algorithm: nlpo\n  action_mask_top_p: 0\n")).Message);
        Assert.Contains("rl.filter", Assert.Throws<Sharpen.Recipes.RecipeException>(() => Sharpen.Recipes.Recipe.Parse(head + "  algorithm: grpo\n  filter: best_random\n")).Message);
    }

    // ---------------------------------------------------------------- LoRA-PPO (PPO for NLU)

    /// <summary>The LoRA tests' bandit model: hidden 32 at the default initialiser range, where adapters can move π(c) far
    /// (on <see cref="Bandit.Model"/>'s 0.02-initialised weights they cannot; see LoraTrainingTests).</summary>
    static CausalLM LoraBandit() => new(Sharpen.Tests.Models.CausalLMTests.Tiny() with
        { VocabSize = Bandit.Tok.VocabSize, MaxPositionEmbeddings = 32, HiddenSize = 32, IntermediateSize = 48 }, seed: 1);

    [Fact]
    public void With_lora_the_critic_is_a_value_head_on_the_frozen_base_and_it_learns()
    {
        var o = RlOptions.Ppo() with
        {
            Iterations = 40, PromptsPerIteration = 16, MaxNewTokens = 1, LearningRate = 3e-2, CriticLearningRate = 5e-2, Beta = 0, EvalEvery = 0,
        };
        long hidden;
        using (var dir = new TempDir())
        using (var full = LoraBandit())
        {
            hidden = full.Config.HiddenSize;
            new RlTrainer(full, Bandit.Tok, o with { Iterations = 1 }, Bandit.RewardC).Run([A], dir.Path);
            // Without LoRA the critic is a full copy: the policy's parameters again, plus the head's C + 1.
            Assert.Equal(full.ParameterCount() + hidden + 1, Summary(dir.Path)["critic_parameters"]!.GetValue<long>());
        }
        using (var dir = new TempDir())
        using (var policy = LoraBandit())
        {
            var frozen = policy.named_parameters().ToDictionary(x => x.name, x => x.parameter.detach().contiguous().data<float>().ToArray());
            policy.AddLora(new LoraOptions { R = 4, Alpha = 8 }, seed: 2);
            double before = Bandit.ProbabilityOfC(policy);
            new RlTrainer(policy, Bandit.Tok, o, Bandit.RewardC).Run([A], dir.Path);
            var summary = Summary(dir.Path);
            Assert.Equal(hidden + 1, summary["critic_parameters"]!.GetValue<long>());   // the head alone: no second base model
            Assert.Equal("policy_base", summary["critic_init"]!.GetValue<string>());
            var rows = Rows(dir.Path);
            Assert.Equal(0.0, D(rows[0], "value_mean"));                                 // zero head at the start
            Assert.True(D(rows[^1], "value_mean") > 0.3, $"the value head did not learn: V = {D(rows[^1], "value_mean")}");
            double after = Bandit.ProbabilityOfC(policy);
            Assert.True(after > 0.9, $"p(c) went from {before:F3} to {after:F3}");
            var now = policy.named_parameters().Where(x => !x.name.Contains(".lora_")).ToDictionary(x => x.name, x => x.parameter.detach().contiguous().data<float>().ToArray());
            foreach (var (name, w) in frozen) Assert.Equal(w, now[name]);                // the shared base did not move
        }
    }

    // ---------------------------------------------------------------- PF-PPO

    /// <summary>The bandit as a verifiable task: "c" is right.</summary>
    sealed class BanditTask : IVerifiableTask
    {
        public string Name => "bandit";
        public string Alphabet => "abcd";
        public IReadOnlyList<Problem> Generate(int count, int seed) => [.. Enumerable.Range(0, count).Select(i => new Problem($"{i}", "a", "c", new Dictionary<string, string>()))];
        public string Solve(Problem problem) => "c";
        public Verdict Verify(Problem problem, string completion) =>
            completion == "c" ? new Verdict(1, true, VerdictReasons.Correct, 0, "c") : new Verdict(0, false, VerdictReasons.WrongValue, 0, completion);
        public string? ExtractFinalAnswer(string completion) => completion;
    }

    [Fact]
    public void Pf_ppo_trains_on_the_filtered_samples_and_logs_r2_per_filter()
    {
        using var dir = new TempDir();
        using var policy = Bandit.Model();
        double before = Bandit.ProbabilityOfC(policy);
        var o = RlOptions.For("pf_ppo") with { Iterations = 30, PromptsPerIteration = 8, MaxNewTokens = 1, LearningRate = 1e-2, CriticLearningRate = 1e-2, Beta = 0, EvalEvery = 0 };
        new RlTrainer(policy, Bandit.Tok, o, Bandit.RewardC) { Task = new BanditTask() }.Run([A], dir.Path);
        var rows = Rows(dir.Path);
        foreach (var row in rows)
        {
            // G = 4, best ⌈0.25·4⌉ = 1 and one random other: 2 of 4 samples per prompt, 16 of 32.
            Assert.Equal(0.5, D(row, "pf/kept_fraction"));
            Assert.Equal(16, row["trained_sequences"]!.GetValue<int>());
            // The reward is the verifier's outcome itself: wherever both outcomes occur the fit is exact, R² = 1.
            foreach (var key in new[] { "pf/r2_all", "pf/r2_best_worst", "pf/r2_best_random", "pf/r2_best" })
                if (row[key] is { } v) Assert.Equal(1.0, v.GetValue<double>(), 9);
        }
        Assert.Contains(rows, r => r["pf/r2_all"] is not null);
        double after = Bandit.ProbabilityOfC(policy);
        Assert.True(after > 0.9, $"p(c) went from {before:F3} to {after:F3}");
        Assert.Throws<ArgumentException>(() => (RlOptions.Grpo() with { Filter = Sharpen.Algorithms.PolicyFilter.BestWorst }).Validate());
    }

    // ---------------------------------------------------------------- NLPO

    [Fact]
    public void The_action_mask_engine_samples_only_the_masking_policys_top_p_set()
    {
        using var policy = Bandit.Model(seed: 1);
        using var masking = Bandit.Model(seed: 5);
        // A top-p this small keeps one token per position: the masking policy's argmax. The masked policy then puts all its
        // mass there, so the rollouts are the masking policy's greedy completions and every log-prob is log 1 = 0.
        IRolloutEngine engine = new ActionMaskEngine(policy, () => masking, Bandit.Tok, 1e-6);
        IRolloutEngine greedyEngine = new RolloutEngine(masking, Bandit.Tok);
        var sampled = engine.Generate(new List<string> { "a", "ab" }, new SamplingOptions { SamplesPerPrompt = 3, MaxNewTokens = 4, Temperature = 1.0, Seed = 3 });
        var greedy = greedyEngine.Generate(new List<string> { "a", "ab" }, new SamplingOptions { MaxNewTokens = 4, Temperature = 0 });
        Assert.Equal(6, sampled.Count);
        for (int i = 0; i < sampled.Count; i++)
        {
            Assert.Equal(greedy[i / 3].CompletionIds, sampled[i].CompletionIds);
            Assert.All(sampled[i].LogProbs, lp => Assert.Equal(0.0, lp, 6));
        }
    }

    [Fact]
    public void Nlpo_computes_the_same_masked_log_probs_it_sampled_with_and_learns()
    {
        using (var dir = new TempDir())
        using (var policy = Bandit.Model())
        {
            // One step on fresh rollouts: if the loss's log-probs were not masked like the engine's, the ratio would not be 1.
            var o = RlOptions.For("nlpo") with { ActionMaskTopP = 0.5, Iterations = 1, PromptsPerIteration = 8, MaxNewTokens = 3, Epochs = 1, EvalEvery = 0, Beta = 0 };
            new RlTrainer(policy, Bandit.Tok, o, Bandit.RewardC).Run([A], dir.Path);
            var row = Rows(dir.Path)[0];
            Assert.Equal(1.0, D(row, "ratio_max"), 4);
            Assert.True(Math.Abs(D(row, "approx_kl")) < 1e-6, $"approx_kl {D(row, "approx_kl")}");
            Assert.True(Directory.Exists(Path.Combine(dir.Path, "final")));
        }
        using (var dir = new TempDir())
        using (var policy = Bandit.Model())
        {
            double before = Bandit.ProbabilityOfC(policy);
            var o = RlOptions.For("nlpo") with
            {
                ActionMaskTopP = 0.95, ActionMaskUpdateEvery = 2, Iterations = 40, PromptsPerIteration = 16, MaxNewTokens = 1, LearningRate = 1e-2,
                CriticLearningRate = 1e-2, Beta = 0, EvalEvery = 0,
            };
            new RlTrainer(policy, Bandit.Tok, o, Bandit.RewardC).Run([A], dir.Path);
            double after = Bandit.ProbabilityOfC(policy);
            Assert.True(after > 0.9, $"p(c) went from {before:F3} to {after:F3}");
        }
    }
}
