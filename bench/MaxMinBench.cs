using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Data;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sharpen.Bench;

/// <summary>Settings of <c>sharpen bench preferences-maxmin</c>.</summary>
public sealed record MaxMinBenchOptions
{
    /// <summary>Responses on the trade-off between the two groups' tastes: φ(a) = (cos θ_a, sin θ_a), θ_a from 0 to π/2.</summary>
    public int Arms { get; init; } = 9;
    /// <summary>Users of the majority group, who like the first feature (true reward cos θ).</summary>
    public int MajorityUsers { get; init; } = 40;
    /// <summary>Users of the minority group, who like the second feature (true reward sin θ).</summary>
    public int MinorityUsers { get; init; } = 10;
    /// <summary>Labelled comparisons per user, each a random pair of responses labelled by the user's Bradley–Terry preference.</summary>
    public int ComparisonsPerUser { get; init; } = 20;
    /// <summary>Scale of the true rewards in the users' Bradley–Terry labels (larger: less label noise).</summary>
    public double Scale { get; init; } = 5.0;
    /// <summary>KL weight β of the policy objective against the uniform reference.</summary>
    public double Beta { get; init; } = 0.1;
    /// <summary>Gradient steps (Adam) of each policy optimisation.</summary>
    public int PolicySteps { get; init; } = 1500;
    /// <summary>Adam learning rate of the policy logits.</summary>
    public double PolicyLearningRate { get; init; } = 0.05;
    /// <summary>Seeds (comparison data, EM start).</summary>
    public int Seeds { get; init; } = 3;

    /// <summary>Throws naming the first bad setting.</summary>
    public MaxMinBenchOptions Validate()
    {
        if (Arms < 2 || MajorityUsers < 1 || MinorityUsers < 1 || ComparisonsPerUser < 1 || Seeds < 1 || PolicySteps < 1)
            throw new ArgumentException("preferences-maxmin: arms ≥ 2 and users, comparisons, seeds and policy steps ≥ 1 are required");
        if (!(Scale > 0 && Beta > 0 && PolicyLearningRate > 0)) throw new ArgumentException("preferences-maxmin: scale, beta and learning rate must be > 0");
        return this;
    }
}

/// <summary>
/// MaxMin-RLHF's headline (Chakraborty et al. 2024, arXiv:2402.08925) at toy scale: two user groups whose tastes conflict
/// (a majority liking one feature of a response, a minority the other) label comparisons of responses; single-reward RLHF fits
/// one Bradley–Terry model to everyone, MaxMin-RLHF fits an EM mixture of two and optimises the minimum group utility. The policy
/// is a softmax over the responses (a bandit; exact expectations, no sampling) with a KL penalty to the uniform reference. We
/// report each group's <b>true</b> expected reward under each policy. Writes metrics.jsonl and summary.json in the work folder.
/// </summary>
public static class MaxMinBench
{
    /// <summary>Runs every seed; returns the result object (<c>benchmark: preferences-maxmin</c>).</summary>
    public static JsonObject Run(Action<string> log, string workDir, MaxMinBenchOptions options)
    {
        Sharpen.Torch.TorchRuntime.EnsureLoaded();
        var o = options.Validate();
        var total = Stopwatch.StartNew();
        Directory.CreateDirectory(workDir);
        var runLog = new RunLog(workDir);
        var theta = Enumerable.Range(0, o.Arms).Select(a => Math.PI / 2 * a / (o.Arms - 1)).ToArray();
        double[][] phi = [.. theta.Select(t => new[] { Math.Cos(t), Math.Sin(t) })];
        double[] trueMajor = [.. phi.Select(f => f[0])], trueMinor = [.. phi.Select(f => f[1])];
        var rows = new JsonArray();
        for (int seed = 1; seed <= o.Seeds; seed++)
        {
            using var scope = NewDisposeScope();
            var rng = new Random(seed);
            var diffs = new List<float>();
            var users = new List<int>();
            int nUsers = o.MajorityUsers + o.MinorityUsers;
            for (int u = 0; u < nUsers; u++)
            {
                var truth = u < o.MajorityUsers ? trueMajor : trueMinor;
                for (int n = 0; n < o.ComparisonsPerUser; n++)
                {
                    int i = rng.Next(o.Arms), j = (i + 1 + rng.Next(o.Arms - 1)) % o.Arms;
                    bool iWins = rng.NextDouble() < 1 / (1 + Math.Exp(-o.Scale * (truth[i] - truth[j])));
                    var (c, r) = iWins ? (i, j) : (j, i);
                    diffs.Add((float)(phi[c][0] - phi[r][0])); diffs.Add((float)(phi[c][1] - phi[r][1]));
                    users.Add(u);
                }
            }
            var d = tensor(diffs.ToArray()).reshape(-1, 2);                                     // (N, 2)
            var single = MaxMinRlhf.FitGroup(d, [0.0, 0.0], steps: 400);
            var mix = MaxMinRlhf.FitMixture(d, users, groups: 2, seed: seed, fitSteps: 400);
            int majorGroup = mix.UserGroups.Take(o.MajorityUsers).GroupBy(g => g).OrderByDescending(g => g.Count()).First().Key;
            double recovered = mix.UserGroups.Select((g, u) => (g == majorGroup) == (u < o.MajorityUsers)).Count(x => x) / (double)nUsers;

            double[] Reward(double[] w) => [.. phi.Select(f => w[0] * f[0] + w[1] * f[1])];
            var pSingle = Optimise([Reward(single)], o);
            var pMaxMin = Optimise([.. mix.Weights.Select(Reward)], o);
            foreach (var (method, p) in new[] { ("single_rm", pSingle), ("maxmin", pMaxMin) })
            {
                double major = p.Zip(trueMajor).Sum(x => x.First * x.Second), minor = p.Zip(trueMinor).Sum(x => x.First * x.Second);
                var row = new JsonObject
                {
                    ["method"] = method, ["seed"] = seed, ["majority_reward"] = R(major), ["minority_reward"] = R(minor),
                    ["min_group_reward"] = R(Math.Min(major, minor)), ["em_users_recovered"] = R(recovered), ["em_iterations"] = mix.Iterations,
                    ["policy"] = new JsonArray([.. p.Select(x => (JsonNode)R(x))]),
                };
                rows.Add(row);
                runLog.Metrics((JsonObject)row.DeepClone());
                log($"seed {seed} {method}: majority {major:F3}, minority {minor:F3} (EM recovered {recovered:P0} of users)");
            }
        }
        var aggregates = new JsonArray();
        foreach (var method in new[] { "single_rm", "maxmin" })
        {
            var sel = rows.Where(r => r!["method"]!.GetValue<string>() == method).ToList();
            double M(string k) => sel.Average(r => r![k]!.GetValue<double>());
            aggregates.Add(new JsonObject
            {
                ["method"] = method, ["seeds"] = sel.Count, ["majority_reward_mean"] = R(M("majority_reward")),
                ["minority_reward_mean"] = R(M("minority_reward")), ["min_group_reward_mean"] = R(M("min_group_reward")),
            });
        }
        double minorSingle = aggregates[0]!["minority_reward_mean"]!.GetValue<double>(), minorMaxMin = aggregates[1]!["minority_reward_mean"]!.GetValue<double>();
        double majorSingle = aggregates[0]!["majority_reward_mean"]!.GetValue<double>(), majorMaxMin = aggregates[1]!["majority_reward_mean"]!.GetValue<double>();
        var result = new JsonObject
        {
            ["benchmark"] = "preferences-maxmin",
            ["config"] = new JsonObject
            {
                ["arms"] = o.Arms, ["majority_users"] = o.MajorityUsers, ["minority_users"] = o.MinorityUsers, ["comparisons_per_user"] = o.ComparisonsPerUser,
                ["scale"] = o.Scale, ["beta"] = o.Beta, ["policy_steps"] = o.PolicySteps, ["policy_learning_rate"] = o.PolicyLearningRate, ["seeds"] = o.Seeds,
            },
            ["rows"] = rows,
            ["aggregates"] = aggregates,
            ["claims"] = new JsonObject
            {
                ["paper"] = "minority groups improve by over 33% (win-rate) without hurting the majority much",
                ["minority_gain_percent"] = R(100 * (minorMaxMin - minorSingle) / Math.Abs(minorSingle)),
                ["majority_change_percent"] = R(100 * (majorMaxMin - majorSingle) / Math.Abs(majorSingle)),
            },
            ["total_seconds"] = Math.Round(total.Elapsed.TotalSeconds, 1),
        };
        runLog.Summary(new JsonObject { ["benchmark"] = "preferences-maxmin", ["aggregates"] = aggregates.DeepClone(), ["claims"] = result["claims"]!.DeepClone(),
            ["seconds"] = Math.Round(total.Elapsed.TotalSeconds, 1) });
        return result;
    }

    /// <summary>
    /// max over policy logits of min_k Σ_a π(a) r_k(a) − β·KL(π ‖ uniform) by Adam with exact expectations; with one reward
    /// model this is single-reward RLHF. Each step follows the group of lowest current utility (MaxMin-RLHF's update).
    /// </summary>
    public static double[] Optimise(IReadOnlyList<double[]> rewards, MaxMinBenchOptions o)
    {
        using var scope = NewDisposeScope();
        int arms = rewards[0].Length;
        var logits = new TorchSharp.Modules.Parameter(zeros(arms, ScalarType.Float64));
        var r = tensor(rewards.SelectMany(x => x).ToArray(), [rewards.Count, arms], ScalarType.Float64);   // (K, A)
        using var opt = optim.Adam([logits], lr: o.PolicyLearningRate);
        for (int s = 0; s < o.PolicySteps; s++)
        {
            using var step = NewDisposeScope();
            opt.zero_grad();
            var logp = F.log_softmax(logits, 0);                                               // (A)
            var p = logp.exp();
            var u = (r * p).sum(1);                                                            // (K)  utilities
            var kl = (p * (logp + Math.Log(arms))).sum();
            var objective = u.min() - o.Beta * kl;
            (-objective).backward();
            opt.step();
        }
        using var noGrad = no_grad();
        return F.softmax(logits, 0).data<double>().ToArray();
    }

    static double R(double x) => Math.Round(x, 4);
}
