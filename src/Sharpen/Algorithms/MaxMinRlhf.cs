using Sharpen.Torch;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sharpen.Algorithms;

/// <summary>A mixture of K Bradley–Terry reward models over user sub-populations, as <see cref="MaxMinRlhf.FitMixture"/> learns it.</summary>
/// <param name="Weights">Linear reward weights of each group, K rows of D numbers: r_k(y) = w_k·φ(y).</param>
/// <param name="UserGroups">The group each user is assigned to, indexed by user id.</param>
/// <param name="Iterations">EM iterations run (stops early when no user changes group).</param>
/// <param name="LogLikelihood">Σ over comparisons of log σ(w_{g(u)}·(φ(chosen) − φ(rejected))) at the end.</param>
public sealed record RewardMixture(double[][] Weights, int[] UserGroups, int Iterations, double LogLikelihood);

/// <summary>
/// MaxMin-RLHF (Chakraborty et al. 2024, "MaxMin-RLHF: Alignment with Diverse Human Preferences", arXiv:2402.08925):
/// (1) an EM algorithm learns a mixture of reward models, one per preference sub-population, from comparisons labelled by
/// user (the E-step assigns each user to the group whose reward model makes that user's comparisons most likely, the M-step
/// refits each group's Bradley–Terry model on its users' comparisons: the paper's hard assignment); (2) the policy maximises
/// the <b>minimum</b> over groups of the expected reward (the egalitarian objective): each update follows the group whose
/// current utility is lowest. Reward models here are linear in given features φ (the bench's synthetic responses);
/// a neural reward model plugs into the same E-step through its per-comparison log-likelihoods.
/// </summary>
public static class MaxMinRlhf
{
    /// <summary>
    /// E-step: each user goes to the group k maximising Σ_{n of the user} log σ(w_k·d_n) (ties: lowest k). Users without
    /// comparisons keep group 0. Returns the assignment indexed by user id (0 … max id).
    /// </summary>
    /// <param name="weights">K rows of D reward weights.</param>
    /// <param name="diffs">φ(chosen) − φ(rejected) of each comparison, <c>(N, D)</c>.</param>
    /// <param name="users">The user of each comparison, N ids ≥ 0.</param>
    public static int[] AssignUsers(double[][] weights, Tensor diffs, IReadOnlyList<int> users)
    {
        TorchRuntime.EnsureLoaded();
        Check(diffs, users);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var w = tensor(weights.SelectMany(r => r).ToArray(), [weights.Length, weights[0].Length], ScalarType.Float64);   // (K, D)
        var ll = F.logsigmoid(diffs.to_type(ScalarType.Float64).matmul(w.t()));             // (N, K)
        var flat = ll.contiguous().data<double>().ToArray();
        int k = weights.Length, nUsers = users.Max() + 1;
        var sums = new double[nUsers, k];
        for (int n = 0; n < users.Count; n++)
            for (int j = 0; j < k; j++) sums[users[n], j] += flat[n * k + j];
        var groups = new int[nUsers];
        for (int u = 0; u < nUsers; u++)
        {
            int best = 0;
            for (int j = 1; j < k; j++) if (sums[u, j] > sums[u, best]) best = j;
            groups[u] = best;
        }
        return groups;
    }

    /// <summary>
    /// M-step for one group: fits w minimising the mean of −log σ(w·d_n) + ½·l2·|w|² over the group's comparisons by
    /// <paramref name="steps"/> full-batch gradient steps of size <paramref name="learningRate"/> from <paramref name="start"/>.
    /// The small L2 term keeps w finite on separable comparisons.
    /// </summary>
    public static double[] FitGroup(Tensor diffs, double[] start, int steps = 200, double learningRate = 0.5, double l2 = 1e-2)
    {
        TorchRuntime.EnsureLoaded();
        using var scope = NewDisposeScope();
        var d = diffs.detach().to_type(ScalarType.Float64);                                    // (n, D)
        var w = tensor(start, ScalarType.Float64).requires_grad_(true);                         // (D)
        for (int s = 0; s < steps; s++)
        {
            using var step = NewDisposeScope();
            var loss = F.softplus(-d.matmul(w)).mean() + 0.5 * l2 * (w * w).sum();             // Bradley–Terry NLL + L2
            var g = autograd.grad([loss], [w])[0];
            using (no_grad()) w.sub_(learningRate * g);
        }
        return w.detach().contiguous().data<double>().ToArray();
    }

    /// <summary>
    /// The EM loop: users start in seeded random groups; repeat { M-step per group (from the previous weights); E-step }
    /// until no user changes group or <paramref name="iterations"/> is reached. A group left without users keeps its weights.
    /// </summary>
    public static RewardMixture FitMixture(Tensor diffs, IReadOnlyList<int> users, int groups, int iterations = 20, int seed = 0,
        int fitSteps = 200, double learningRate = 0.5, double l2 = 1e-2)
    {
        TorchRuntime.EnsureLoaded();
        Check(diffs, users);
        ArgumentOutOfRangeException.ThrowIfLessThan(groups, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(iterations, 1);
        int dim = (int)diffs.shape[1], nUsers = users.Max() + 1;
        var rng = new Random(seed);
        var assign = Enumerable.Range(0, nUsers).Select(_ => rng.Next(groups)).ToArray();
        var weights = Enumerable.Range(0, groups).Select(_ => new double[dim]).ToArray();
        int it = 0;
        for (; it < iterations; it++)
        {
            for (int k = 0; k < groups; k++)
            {
                var rows = Enumerable.Range(0, users.Count).Where(n => assign[users[n]] == k).Select(n => (long)n).ToArray();
                if (rows.Length == 0) continue;
                using var scope = NewDisposeScope();
                weights[k] = FitGroup(diffs.index_select(0, tensor(rows)), weights[k], fitSteps, learningRate, l2);
            }
            var next = AssignUsers(weights, diffs, users);
            bool same = next.SequenceEqual(assign);
            assign = next;
            if (same) { it++; break; }
        }
        double ll;
        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            var per = users.Select((u, n) => weights[assign[u]]).SelectMany(r => r).ToArray();
            var wRows = tensor(per, [users.Count, dim], ScalarType.Float64);                   // (N, D) each comparison's group weights
            ll = F.logsigmoid((diffs.to_type(ScalarType.Float64) * wRows).sum(1)).sum().item<double>();
        }
        return new RewardMixture(weights, assign, it, ll);
    }

    /// <summary>
    /// The max-min policy step on a batch: utilities U_k = mean_b r_k(y_b) of each group's reward over the batch's samples;
    /// the group k* = arg min_k U_k (ties: lowest k) is followed with a REINFORCE loss −mean_b (r_{k*}(y_b) − U_{k*})·log π(y_b)
    /// (its batch mean as baseline). Returns the loss, k* and the utilities.
    /// </summary>
    /// <param name="groupRewards">r_k(y_b) of each group's reward model on each sample, <c>(K, B)</c>, no grad.</param>
    /// <param name="logProbs">Σ_t log π_θ of each sample, <c>(B)</c>, requires grad.</param>
    public static (Tensor Loss, int MinGroup, double[] Utilities) MaxMinPolicyLoss(Tensor groupRewards, Tensor logProbs)
    {
        TorchRuntime.EnsureLoaded();
        if (groupRewards.dim() != 2 || logProbs.dim() != 1 || groupRewards.shape[1] != logProbs.shape[0])
            throw new ArgumentException($"groupRewards must be (K, B) and logProbs (B), got [{string.Join(", ", groupRewards.shape)}] and [{string.Join(", ", logProbs.shape)}].");
        using var scope = NewDisposeScope();
        var r = groupRewards.detach().to_type(logProbs.dtype);                                 // (K, B)
        var u = r.mean([1L]);                                                                   // (K)  U_k
        var utilities = u.to_type(ScalarType.Float64).contiguous().data<double>().ToArray();
        int k = 0;
        for (int j = 1; j < utilities.Length; j++) if (utilities[j] < utilities[k]) k = j;
        var adv = r[k] - u[k];                                                                  // (B)
        var loss = -(adv * logProbs).mean();                                                    // max_π min_k E[r_k], arXiv:2402.08925
        return (loss.MoveToOuterDisposeScope(), k, utilities);
    }

    static void Check(Tensor diffs, IReadOnlyList<int> users)
    {
        ArgumentNullException.ThrowIfNull(diffs);
        ArgumentNullException.ThrowIfNull(users);
        if (diffs.dim() != 2 || diffs.shape[0] == 0) throw new ArgumentException($"diffs must be a non-empty (N, D), got [{string.Join(", ", diffs.shape)}].", nameof(diffs));
        if (users.Count != diffs.shape[0]) throw new ArgumentException($"{users.Count} user ids for {diffs.shape[0]} comparisons.", nameof(users));
        if (users.Any(u => u < 0)) throw new ArgumentException("user ids must be ≥ 0.", nameof(users));
    }
}
