using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Recipes;
using Sharpen.Rewards;
using Sharpen.Training;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>
/// Step-level Direct Advantage Policy Optimization end to end (<c>offline_pg.loss: direct_advantage_po</c>) on a scripted
/// two-step example over the bandit vocabulary "abcd": prompt "a", first step "b" or "c", second step "a" or "d"; a solution
/// is correct when it ends in "d". Scripted Monte-Carlo rollouts: from the prefix a|b 1 of 4 rollouts is correct → 0.25;
/// from a|c 3 of 4 → 0.75; the whole solution's label is its verdict (0 or 1).
/// </summary>
public class DirectAdvantagePoTrainerTests
{
    static readonly string[] Rows =
    [
        """{"prompt": "a", "steps": ["b", "a"], "labels": [0.25, 0]}""",
        """{"prompt": "a", "steps": ["b", "d"], "labels": [0.25, 1]}""",
        """{"prompt": "a", "steps": ["c", "d"], "labels": [0.75, 1]}""",
        """{"prompt": "a", "steps": ["c", "a"], "labels": [0.75, 0]}""",
    ];

    static string WriteRun(TempDir dir, string offlinePg)
    {
        using (var model = Bandit.Model(seed: 3)) HfCheckpoint.Save(dir.File("start"), model, Bandit.Tok);
        File.WriteAllLines(dir.File("steps.jsonl"), Rows);
        File.WriteAllText(dir.File("r.yaml"), $"""
            kind: offline_pg
            output: {dir.File("run")}
            seed: 1
            model: {"{"} path: {dir.File("start")} {"}"}
            data: {"{"} train: {dir.File("steps.jsonl")} {"}"}
            offline_pg: {"{"} {offlinePg} {"}"}
            """);
        return dir.File("r.yaml");
    }

    /// <summary>log π(token | context) under <paramref name="m"/>, from the logits directly.</summary>
    static double LogProb(CausalLM m, string context, string token)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var ids = Bandit.Tok.Encode("a").Concat(Bandit.Tok.Encode(context, addSpecialTokens: false)).Select(i => (long)i).ToArray();
        var logp = m.Forward(tensor(ids).view(1, -1)).Logits[0, -1].log_softmax(-1);
        return logp[Bandit.Tok.Encode(token, addSpecialTokens: false)[0]].item<float>();
    }

    [Fact]
    public void The_critic_fits_the_Monte_Carlo_values_and_the_actor_moves_each_step_log_ratio_with_its_advantage()
    {
        using var dir = new TempDir();
        var recipe = Recipe.Load(WriteRun(dir, "loss: direct_advantage_po, beta: 0.5, critic_steps: 150, critic_learning_rate: 0.01, " +
            "max_steps: 60, batch_size: 4, learning_rate: 0.01, warmup_steps: 0, log_every: 1"));
        var result = OfflinePolicyPipeline.Run(recipe);
        Assert.Equal((60, 4), (result.Result.Steps, result.Result.Items));

        // Critic: the zero-initialised head starts at σ(0) = 1/2 on every step, so its first loss is ln 2 whatever the label; the
        // lowest mean cross-entropy is the mean label entropy, (4·H(0.25) + 4·0)/8 = H(0.25)/2 = 0.281168.
        var critic = new RunLog(dir.File("run/critic"), append: true).ReadMetrics();
        Assert.Equal(Math.Log(2), critic[0]["loss"]!.GetValue<double>(), 4);
        double criticLast = critic[^1]["loss"]!.GetValue<double>();
        Assert.InRange(criticLast, 0.281168 - 1e-3, 0.33);
        using (var prm = new ProcessRewardModel(dir.File("run/critic/final")))
        {
            var v = prm.ScoreSteps([("a", ["b", "a"]), ("a", ["b", "d"]), ("a", ["c", "d"]), ("a", ["c", "a"])]);
            double[][] mc = [[0.25, 0], [0.25, 1], [0.75, 1], [0.75, 0]];
            for (int i = 0; i < 4; i++) for (int k = 0; k < 2; k++) Assert.True(Math.Abs(v[i][k] - mc[i][k]) < 0.1, $"V row {i} step {k}: {v[i][k]} vs {mc[i][k]}");
        }
        // A constant 1/2 would have MSE (4·0.25² + 4·0.5²)/8 = 0.15625 against the labels.
        var summary = JsonNode.Parse(File.ReadAllText(dir.File("run/summary.json")))!;
        Assert.True(summary["critic_mse"]!.GetValue<double>() < 0.01);

        // Actor: V(s_0) = mean verdict = 1/2, so with the MC values A = [[−.25, −.25], [−.25, .75], [.25, .25], [.25, −.75]]:
        // mean A = 0 and the first loss (π = π_ref, log-ratio 0) is mean (A/β)² = (6·0.0625 + 2·0.5625)/8/0.25 = 0.75.
        Assert.Equal(0.0, summary["advantage_mean"]!.GetValue<double>(), 0.05);
        var actor = new RunLog(dir.File("run"), append: true).ReadMetrics();
        double first = actor[0]["loss"]!.GetValue<double>();
        Assert.Equal(0.75, first, 0.15);
        Assert.True(actor[^1]["loss"]!.GetValue<double>() < 0.25 * first, $"actor loss {first} → {actor[^1]["loss"]}");
        // At the optimum β·log-ratio = A on every step, so mean(log-ratio · A) = mean(A²)/β = (1.5/8)/0.5 = 0.375.
        Assert.Equal(0.375, actor[^1]["log_ratio_x_advantage"]!.GetValue<double>(), 0.04);

        // Every step's log-ratio log π_θ/π_ref, measured from the two checkpoints, has the sign of its advantage.
        using var start = HfCheckpoint.Load(dir.File("start")).Model;
        using var trained = HfCheckpoint.Load(dir.File("run/final")).Model;
        double Ratio(string context, string token) => LogProb(trained, context, token) - LogProb(start, context, token);
        Assert.True(Ratio("", "c") > 0 && Ratio("", "b") < 0, $"step 1: c {Ratio("", "c")}, b {Ratio("", "b")}");
        Assert.True(Ratio("b", "d") > 0 && Ratio("b", "a") < 0, $"after b: d {Ratio("b", "d")}, a {Ratio("b", "a")}");
        Assert.True(Ratio("c", "d") > 0 && Ratio("c", "a") < 0, $"after c: d {Ratio("c", "d")}, a {Ratio("c", "a")}");
        // The largest advantage (+0.75, d after b) moves more than the +0.25 of d after c; likewise −0.75 vs −0.25 for "a".
        Assert.True(Ratio("b", "d") > Ratio("c", "d") && Ratio("c", "a") < Ratio("b", "a"));
    }

    [Theory]
    [InlineData("loss: direct_advantage_po, critic_steps: 0", "offline_pg.critic_steps must be positive, got 0")]
    [InlineData("loss: direct_advantage_po, critic_learning_rate: -1", "offline_pg.critic_learning_rate must be positive")]
    [InlineData("loss: direct_advantage_po, critic: \"\"", "offline_pg.critic is empty")]
    public void Bad_keys_are_named(string section, string expected)
    {
        var e = Assert.Throws<RecipeException>(() => Recipe.Parse($"kind: offline_pg\nmodel: {{ path: m }}\ndata: {{ train: d.jsonl }}\noffline_pg: {{ {section} }}\n", "r.yaml"));
        Assert.StartsWith("r.yaml", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_critic_that_is_not_a_prm_folder_and_scored_completion_rows_are_refused_with_the_key_or_line()
    {
        using var dir = new TempDir();
        var r = Recipe.Load(WriteRun(dir, $"loss: direct_advantage_po, critic: {dir.File("start")}, max_steps: 1"));
        var e = Assert.Throws<ArgumentException>(() => OfflinePolicyPipeline.Run(r));
        Assert.Contains("offline_pg.critic", e.Message);
        Assert.Contains("prm.json", e.Message);

        File.WriteAllText(dir.File("steps.jsonl"), "{\"prompt\": \"a\", \"completion\": \"bd\", \"reward\": 1}\n");
        var bad = Recipe.Load(WriteRun(dir, "loss: direct_advantage_po, max_steps: 1"));
        File.WriteAllText(dir.File("steps.jsonl"), "{\"prompt\": \"a\", \"completion\": \"bd\", \"reward\": 1}\n");
        var d = Assert.ThrowsAny<Exception>(() => OfflinePolicyPipeline.Run(bad));
        Assert.Contains("steps.jsonl:1", d.Message);
        Assert.Contains("steps", d.Message.Replace("steps.jsonl", ""));
    }

    [Fact]
    public void The_shipped_recipe_selects_the_step_level_loss()
    {
        var o = Recipe.Load(RepoPaths.Of("recipes", "direct-advantage-po-countdown.yaml")).OfflinePolicyOptions();
        Assert.Equal(("direct_advantage_po", 0.1, 300, null), (o.Loss, o.Beta, o.CriticSteps, o.Critic));
    }
}
