using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Bench;

/// <summary>
/// Toy measurements of two distribution-matching claims, on a categorical "policy over whole completions" (K outcomes, one
/// logit each, so every divergence and probability is exact): the policy starts at the base a, samples G outcomes per step,
/// and takes a plain policy-gradient step with the algorithm's advantages (the same pure functions the RL trainer registers).
/// <list type="bullet">
/// <item><c>fdpg</c> (Go et al. 2023, arXiv:2302.08215): towards p = a restricted to the passing outcomes (the filter
/// target), for each f-divergence: alignment π(pass), forward KL(p ‖ π) to the target, entropy H(π), and how many passing
/// outcomes keep at least half their target mass.</item>
/// <item><c>diversity</c> (Flow of Reasoning, arXiv:2406.05673): trajectory balance (R = exp(r/β)) against GRPO at equal
/// samples: π(correct) and the expected number of distinct correct outcomes among 64 samples.</item>
/// </list>
/// A toy, not a language model: it isolates the objective (no function approximation across outcomes, no sequence structure).
/// </summary>
public static class DistributionBench
{
    const int K = 100, G = 8;

    /// <summary>Base a_k ∝ 1/(k+1) (a long tail); outcome k passes / is correct when k % 10 == 3 (10 outcomes holding 9.4% of a).</summary>
    static (double[] LogBase, bool[] Pass) World()
    {
        var w = Enumerable.Range(0, K).Select(k => 1.0 / (k + 1)).ToArray();
        double s = w.Sum();
        return (w.Select(x => Math.Log(x / s)).ToArray(), Enumerable.Range(0, K).Select(k => k % 10 == 3).ToArray());
    }

    /// <summary>Trains the toy policy <paramref name="steps"/> steps; <paramref name="advantages"/> maps (log π of the G samples,
    /// their outcome ids, their rewards) to advantages (G). Returns the final π (K).</summary>
    static double[] Train(int steps, double lr, int seed, Func<Tensor, long[], Tensor, Tensor> advantages, bool[] pass, double[] logBase)
    {
        var rng = new Random(seed);
        var theta = nn.Parameter(tensor(logBase).to_type(ScalarType.Float32));                  // π starts at the base a
        var opt = optim.Adam([theta], lr);
        for (int step = 0; step < steps; step++)
        {
            using var scope = NewDisposeScope();
            var logPi = theta.log_softmax(0);                                                     // (K)
            var probs = logPi.exp().detach().to_type(ScalarType.Float64).data<double>().ToArray();
            var idx = new long[G];
            for (int i = 0; i < G; i++)
            {
                double u = rng.NextDouble(), cum = 0;
                idx[i] = K - 1;
                for (int k = 0; k < K; k++) { cum += probs[k]; if (u < cum) { idx[i] = k; break; } }
            }
            var lp = logPi.index_select(0, tensor(idx));                                          // (G)
            var r = tensor(idx.Select(k => pass[k] ? 1f : 0f).ToArray());                         // (G)
            var adv = advantages(lp.detach(), idx, r).to_type(ScalarType.Float32);                // (G)
            var loss = -(adv * lp).mean();
            opt.zero_grad();
            loss.backward();
            opt.step();
        }
        using (no_grad()) return theta.log_softmax(0).exp().to_type(ScalarType.Float64).data<double>().ToArray();
    }

    static double Entropy(double[] pi) => -pi.Where(x => x > 0).Sum(x => x * Math.Log(x));

    static double Round(double x) => Math.Round(x, 4);

    /// <summary><c>sharpen bench fdpg</c>: each f-divergence towards the filter target (G = 8 samples a step, Adam lr 0.05); means
    /// over <paramref name="seeds"/> seeds.</summary>
    public static JsonObject RunFdpg(Action<string> log, int steps = 300, int seeds = 5)
    {
        TorchRuntime.EnsureLoaded();
        var (logBase, pass) = World();
        double zPass = Enumerable.Range(0, K).Where(k => pass[k]).Sum(k => Math.Exp(logBase[k]));
        var p = Enumerable.Range(0, K).Select(k => pass[k] ? Math.Exp(logBase[k]) / zPass : 0).ToArray();
        var rows = new JsonArray();
        foreach (var f in Enum.GetValues<FDivergence>())
        {
            var finals = Enumerable.Range(0, seeds).Select(seed => Train(steps, 0.05, 1000 + seed, (lp, idx, r) =>
            {
                var logTarget = FDivergences.LogTarget(tensor(idx.Select(k => logBase[k]).ToArray()), r, EbmTarget.Filter, 1);   // (G)
                var (adv, _) = FDivergences.Advantages(lp, logTarget, ones(G, 1), G, f);          // (G, 1): −f′(π/p) − batch mean
                return adv.squeeze(1);
            }, pass, logBase)).ToList();
            double align = finals.Average(pi => pi.Where((_, k) => pass[k]).Sum());
            double fkl = finals.Average(pi => Enumerable.Range(0, K).Where(k => pass[k]).Sum(k => p[k] * Math.Log(p[k] / Math.Max(pi[k], 1e-300))));
            double h = finals.Average(Entropy);
            double covered = finals.Average(pi => Enumerable.Range(0, K).Count(k => pass[k] && pi[k] >= 0.5 * p[k]));
            var row = new JsonObject
            {
                ["divergence"] = JsonNamingPolicyName(f), ["alignment"] = Round(align), ["forward_kl_to_target"] = Round(fkl),
                ["entropy"] = Round(h), ["covered_passing_outcomes"] = Round(covered),
            };
            log($"fdpg {row["divergence"]}: π(pass) {align:F3}, KL(p‖π) {fkl:F3}, H(π) {h:F3}, covered {covered:F1}/10");
            rows.Add(row);
        }
        return new JsonObject
        {
            ["benchmark"] = "fdpg", ["outcomes"] = K, ["passing"] = 10, ["base_pass_mass"] = Round(zPass), ["target_entropy"] = Round(Entropy(p)),
            ["samples_per_step"] = G, ["steps"] = steps, ["seeds"] = seeds, ["rows"] = rows,
        };
    }

    /// <summary><c>sharpen bench diversity</c>: trajectory balance (R = exp(r/β), group-optimal log Z) vs GRPO, both G = 8 samples a
    /// step for <paramref name="steps"/> steps (equal samples and updates); means over <paramref name="seeds"/> seeds.</summary>
    public static JsonObject RunDiversity(Action<string> log, int steps = 300, int seeds = 5, double beta = 0.25)
    {
        TorchRuntime.EnsureLoaded();
        var (logBase, pass) = World();
        var rows = new JsonArray();
        foreach (var method in new[] { "grpo", "flow_of_reasoning" })
        {
            var finals = Enumerable.Range(0, seeds).Select(seed => Train(steps, 0.05, 2000 + seed, (lp, idx, r) => method == "grpo"
                ? AdvantageEstimators.Grpo(new GroupOutcomeInput(r, ones(G, 1), G), RewardScaling.Group).Advantages.squeeze(1)
                : FlowBalance.TrajectoryBalanceAdvantages(lp.to_type(ScalarType.Float64), r.to_type(ScalarType.Float64) / beta, ones(G, 1), G).SequenceAdvantages,
                pass, logBase)).ToList();
            double correct = finals.Average(pi => pi.Where((_, k) => pass[k]).Sum());
            double distinct = finals.Average(pi => Enumerable.Range(0, K).Where(k => pass[k]).Sum(k => 1 - Math.Pow(1 - pi[k], 64)));
            double h = finals.Average(Entropy);
            var row = new JsonObject
            {
                ["method"] = method, ["p_correct"] = Round(correct), ["distinct_correct_in_64_samples"] = Round(distinct), ["entropy"] = Round(h),
            };
            log($"diversity {method}: π(correct) {correct:F3}, distinct correct in 64 samples {distinct:F2}/10, H(π) {h:F3}");
            rows.Add(row);
        }
        return new JsonObject
        {
            ["benchmark"] = "diversity", ["outcomes"] = K, ["correct"] = 10, ["beta"] = beta, ["samples_per_step"] = G, ["steps"] = steps,
            ["seeds"] = seeds, ["rows"] = rows,
        };
    }

    static string JsonNamingPolicyName(FDivergence f) => System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(f.ToString());
}
