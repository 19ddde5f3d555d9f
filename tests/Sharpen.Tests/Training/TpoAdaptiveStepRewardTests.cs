using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training.Preference;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>
/// TPO's Adaptive Step Reward in the listwise trainer, checked against the paper's definition worked out here one sequence
/// at a time: per step the mean log-ratio of its tokens, weighted by 1 + cos(mean hidden state of the step, the top-ranked
/// response's same step), then the LiPO-λ listwise loss over the lists.
/// </summary>
public class TpoAdaptiveStepRewardTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcd");
    static CausalLM Model(long seed) => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 32 }, seed);
    static readonly StepSplitter Split = StepSplitter.Parse("delimiter:b");

    /// <summary>Per token of prompt + steps (each encoded alone) + EOS: log π, the final hidden state at the token's own position.</summary>
    static (double[] LogProbs, float[][] Hidden) Teacher(CausalLM m, string prompt, string[] steps)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var p = Tok.Encode(prompt).ToList();
        var y = steps.SelectMany(s => Tok.Encode(s, addSpecialTokens: false)).Append(Tok.EosTokenId!.Value).ToList();
        var ids = p.Concat(y).Select(i => (long)i).ToArray();
        var o = m.Forward(tensor(ids).view(1, -1), returnHidden: true);
        var logp = o.Logits[0].log_softmax(-1);                                             // (T, V)
        var lp = new double[y.Count];
        var h = new float[y.Count][];
        for (int t = 0; t < y.Count; t++)
        {
            lp[t] = logp[p.Count - 1 + t, y[t]].item<float>();
            h[t] = o.Hidden![0, p.Count + t].data<float>().ToArray();
        }
        return (lp, h);
    }

    static double Cos(float[] x, float[] y)
    {
        double d = 0, nx = 0, ny = 0;
        for (int i = 0; i < x.Length; i++) { d += x[i] * y[i]; nx += x[i] * x[i]; ny += y[i] * y[i]; }
        return d / Math.Max(Math.Sqrt(nx) * Math.Sqrt(ny), 1e-8);
    }

    /// <summary>The TPO loss of one list by hand: rewards r_k from the adaptive step rule, λ_ij from ψ and the ranks of r.</summary>
    static double ListLoss(CausalLM policy, CausalLM reference, string prompt, string[][] completions, double[] psi, double beta)
    {
        int k = completions.Length;
        var stepMeans = new List<double[]>();
        var stepEmb = new List<float[][]>();
        foreach (var steps in completions)
        {
            var (lp, h) = Teacher(policy, prompt, steps);
            var (lr, _) = Teacher(reference, prompt, steps);
            var lens = steps.Select(s => s.Length).ToArray();
            lens[^1] += 1;                                                                  // EOS belongs to the last step
            var means = new double[steps.Length];
            var emb = new float[steps.Length][];
            int t0 = 0;
            for (int s = 0; s < steps.Length; s++)
            {
                double sum = 0;
                var e = new float[h[0].Length];
                for (int t = t0; t < t0 + lens[s]; t++) { sum += lp[t] - lr[t]; for (int d = 0; d < e.Length; d++) e[d] += h[t][d] / lens[s]; }
                (means[s], emb[s]) = (sum / lens[s], e);
                t0 += lens[s];
            }
            stepMeans.Add(means);
            stepEmb.Add(emb);
        }
        var r = new double[k];
        for (int i = 0; i < k; i++)
        {
            double num = 0, den = 0;
            for (int s = 0; s < stepMeans[i].Length; s++)
            {
                double w = s < stepEmb[0].Length ? 1 + Cos(stepEmb[i][s], stepEmb[0][s]) : 1;   // the top response lacks the step: 1
                num += w * stepMeans[i][s];
                den += w;
            }
            r[i] = num / den;
        }
        var order = Enumerable.Range(0, k).OrderByDescending(i => r[i]).ThenBy(i => i).ToList();
        var tau = new double[k];
        for (int q = 0; q < k; q++) tau[order[q]] = q + 1;
        double loss = 0;
        int pairs = 0;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
            {
                if (!(psi[i] > psi[j])) continue;
                double lambda = Math.Abs(Math.Pow(2, psi[i]) - Math.Pow(2, psi[j])) * Math.Abs(1 / Math.Log2(1 + tau[i]) - 1 / Math.Log2(1 + tau[j]));
                double z = beta * (r[i] - r[j]);
                loss += lambda * Math.Log(1 + Math.Exp(-z));
                pairs++;
            }
        return loss / pairs;
    }

    static Dictionary<string, string> Ranks(int c, int r) => new() { ["rank_chosen"] = c.ToString(), ["rank_rejected"] = r.ToString() };

    /// <summary>A ranked list of three ("cabdd" ≻ "cbcd" ≻ "dd": 2, 2 and 1 steps at "b") and a plain pair ("abc" ≻ "ccc").</summary>
    static List<PreferenceExample> Rows() =>
    [
        new("a", "cabdd", "cbcd") { Fields = Ranks(1, 2) }, new("a", "cabdd", "dd") { Fields = Ranks(1, 3) }, new("a", "cbcd", "dd") { Fields = Ranks(2, 3) },
        new("b", "abc", "ccc"),
    ];

    [Fact]
    public void The_adaptive_loss_matches_the_papers_step_reward_worked_out_one_sequence_at_a_time()
    {
        using var policy = Model(5);
        using var reference = Model(6);
        var lists = RankedLists.Group(Rows(), Tok, Tok.EosTokenId!.Value, Split);
        Assert.Equal(2, lists.Count);
        // Plain pairs come first, then the ranked lists (best first).
        Assert.Equal([0, 0, 1, 1], lists[0].StepOf![0]);         // "ab" | "c" + EOS
        Assert.Equal([0, 0, 0, 1, 1, 1], lists[1].StepOf![0]);   // "cab" | "dd" + EOS
        Assert.Equal([0, 0, 1, 1, 1], lists[1].StepOf![1]);      // "cb" | "cd" + EOS
        Assert.Equal([0, 0, 0], lists[1].StepOf![2]);            // "dd" + EOS
        var tokenRef = RankedLists.TokenLogProbs(reference, lists, Tok.PadTokenId ?? 0);
        // The reference's per-token log-probs are the teacher-forced ones.
        var (lrHand, _) = Teacher(reference, "a", ["cab", "dd"]);
        for (int t = 0; t < lrHand.Length; t++) Assert.Equal(lrHand[t], tokenRef[1][0][t], 4);

        const double beta = 0.5;
        double expected = (ListLoss(policy, reference, "a", [["cab", "dd"], ["cb", "cd"], ["dd"]], [2, 1, 0], beta)
                           + ListLoss(policy, reference, "b", [["ab", "c"], ["ccc"]], [1, 0], beta)) / 2;
        using var scope = NewDisposeScope();
        var (loss, _) = RankedLists.AdaptiveLoss(policy, lists, tokenRef, beta, Tok.PadTokenId ?? 0);
        Assert.Equal(expected, loss.item<float>(), 4);
        // It is not the summed-log-ratio TPO loss.
        var (plain, _) = RankedLists.Loss(policy, RankedLists.Group(Rows(), Tok, Tok.EosTokenId!.Value),
            [.. tokenRef.Select(l => l.Select(c => c.Sum()).ToArray())], beta, Tok.PadTokenId ?? 0);
        Assert.True(Math.Abs(plain.item<float>() - expected) > 1e-3);
        loss.backward();
        Assert.Contains(policy.parameters(), p => p.grad is { } g && g.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void The_trainer_starts_at_the_hand_value_and_learns_with_adaptive_step_rewards()
    {
        // At the start π_θ = π_ref: every r = 0, ranks follow the list order. List of three, ψ = [2, 1, 0]:
        // λ01 = 2·(1 − 1/log2 3), λ02 = 3·(1 − 1/2), λ12 = 1·(1/log2 3 − 1/2); loss = ln 2·Σλ/3. The pair: ln 2·(1 − 1/log2 3).
        double inv3 = 1 / Math.Log2(3);
        double three = Math.Log(2) * (2 * (1 - inv3) + 1.5 + (inv3 - 0.5)) / 3, two = Math.Log(2) * (1 - inv3);
        using var dir = new TempDir();
        using var model = Model(5);
        var before = model.parameters().Select(p => p.detach().clone()).ToList();
        var o = new PreferenceOptions
        {
            Loss = "tpo", AdaptiveStepReward = true, StepSplitter = "delimiter:b", Beta = 0.5, MaxSteps = 12, BatchSize = 2,
            LearningRate = 1e-2, WarmupSteps = 0, LogEvery = 1,
        };
        new PreferenceTrainer(model, Tok, o).Run(Rows(), dir.Path);
        var metrics = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal((three + two) / 2, metrics[0]["loss"]!.GetValue<double>(), 1e-4);
        Assert.True(metrics[^1]["loss"]!.GetValue<double>() < metrics[0]["loss"]!.GetValue<double>());
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal((2, 8), (summary["lists"]!.GetValue<int>(), summary["completion_steps"]!.GetValue<int>()));   // 2 + 2 + 1 and 2 + 1 steps
        Assert.Contains(model.parameters().Zip(before), x => !x.First.detach().allclose(x.Second));
        foreach (var b in before) b.Dispose();
    }

    [Fact]
    public void Adaptive_step_reward_is_a_tpo_option_and_its_splitter_is_checked()
    {
        Assert.Contains("adaptive_step_reward works with loss: tpo only",
            Assert.Throws<ArgumentException>(() => new PreferenceOptions { Loss = "dpo", AdaptiveStepReward = true }.Validate()).Message);
        Assert.Contains("preference.step_splitter",
            Assert.Throws<ArgumentException>(() => new PreferenceOptions { Loss = "tpo", AdaptiveStepReward = true, StepSplitter = "commas" }.Validate()).Message);
        var o = Sharpen.Recipes.Recipe.Parse("kind: preference\nmodel: { path: m }\ndata: { train: x.jsonl }\n" +
                                             "preference: { loss: tpo, adaptive_step_reward: true, step_splitter: 'delimiter:b' }\n").PreferenceOptions();
        Assert.Equal((true, "delimiter:b"), (o.AdaptiveStepReward, o.StepSplitter));
        Assert.False(Sharpen.Recipes.Recipe.Load(RepoPaths.Of("recipes", "tpo.yaml")).PreferenceOptions().AdaptiveStepReward);
    }
}
