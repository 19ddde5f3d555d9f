using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// Advantage estimators as pure functions of tensors (the "estimate" move). Each takes its own typed input record and
/// returns advantages <c>(B, A)</c> with zeros at padding. Outputs have the rewards' floating dtype (float32 for integer
/// rewards) and carry no gradient. Registered names: "grpo", "gigpo", "dr_grpo", "rloo", "remax", "reinforce", "gae", "p3o", "refuel", "oreal", "fdpg", "trajectory_balance".
/// </summary>
public static class AdvantageEstimators
{
    /// <summary>
    /// The estimators by name, as the RL trainer looks them up (through an algorithm's <c>AlgorithmSpec</c>). Each entry adapts
    /// the iteration's <see cref="AdvantageContext"/> to its pure function's typed input. Register a new one from anywhere
    /// (a test, an extension) before the run starts.
    /// </summary>
    public static Registry<AdvantageEstimator> Registry { get; } = BuiltIns();

    /// <summary>The registered estimator names.</summary>
    public static IReadOnlyList<string> Names => Registry.Names;

    /// <summary>Throws <see cref="ArgumentException"/> listing <see cref="Names"/> when <paramref name="name"/> is not one of them.</summary>
    public static void EnsureKnown(string name) => Registry.Get(name);

    static Registry<AdvantageEstimator> BuiltIns()
    {
        var r = new Registry<AdvantageEstimator>("advantage estimator");
        r.Register("grpo", new(c => new(Grpo(new GroupOutcomeInput(c.Rewards, c.ResponseMask, c.GroupSize, c.GroupIds), c.Scaling).Advantages, c.Rewards), GroupRelative: true));
        r.Register("dr_grpo", new(c => new(Grpo(new GroupOutcomeInput(c.Rewards, c.ResponseMask, c.GroupSize, c.GroupIds), RewardScaling.None).Advantages, c.Rewards), GroupRelative: true));
        r.Register("rloo", new(c =>
        {
            var rr = KlRegularised(c);                                                    // (B)  r − β·KL(y) when KL is in the reward
            return new(Rloo(new GroupOutcomeInput(rr, c.ResponseMask, c.GroupSize, c.GroupIds), c.Scaling).Advantages, rr);
        }, GroupRelative: true));
        r.Register("remax", new(c =>
        {
            var rr = KlRegularised(c);
            var b = c.GreedyRewards ?? throw new ArgumentException("remax needs the greedy completions' rewards");
            return new(Remax(new RemaxInput(rr, c.ResponseMask, b)).Advantages, rr - b);
        }, NeedsGreedyBaseline: true));
        r.Register("reinforce", new(c =>
        {
            var rr = KlRegularised(c);
            double mean = rr.mean().item<float>();
            double b = c.Baseline.Initialized ? c.Baseline.Value : mean;                  // the first batch is its own baseline
            var adv = Reinforce(new BaselineInput(rr, c.ResponseMask, b)).Advantages;
            c.Baseline.Update(mean);
            return new(adv, rr - b);
        }));
        r.Register("gae", new(c =>
        {
            var values = c.Values ?? throw new ArgumentException("gae needs critic values");
            var klPart = c.KlInReward ? -c.Beta * c.TokenKl : zeros_like(c.TokenKl);                               // (B, A)
            Tensor tokR;
            if (c.TokenRewards is { } placed) tokR = (klPart + placed.to_type(klPart.dtype)) * c.ResponseMask;      // (B, A): multi-turn, each turn's reward at its last token
            else
            {
                var lastIdx = (c.ResponseMask.sum(1) - 1).clamp_min(0).to(ScalarType.Int64).unsqueeze(1);          // (B, 1)
                tokR = klPart.scatter_add(1, lastIdx, c.Rewards.unsqueeze(1)) * c.ResponseMask;                     // (B, A): −β·KL per token, R at the last
            }
            var o = Gae(new GaeInput(tokR, values, c.ResponseMask, c.Gamma, c.Lambda));
            return new(o.Advantages, c.Rewards, o.Returns);
        }, NeedsCritic: true));
        // P3O keeps r − pair mean = (r₁ − r₂)/2 as its token advantage (for the metrics); its loss reads the KL-regularised rewards.
        r.Register("p3o", new(c =>
        {
            var rr = KlRegularised(c);
            return new(Grpo(new GroupOutcomeInput(rr, c.ResponseMask, c.GroupSize), scaleByStd: false).Advantages, rr);
        }));
        // REFUEL regresses on the future returns Q̂ themselves (its loss reads the sequence values); the token advantage
        // Q̂ − pair mean = ±(Q̂ − Q̂′)/2 is kept for the metrics only.
        r.Register("refuel", new(c => new(Grpo(new GroupOutcomeInput(c.Rewards, c.ResponseMask, 2), scaleByStd: false).Advantages, c.Rewards)));
        // GiGPO: GRPO's episode advantage plus a step advantage relative to the other turns taken from the same state.
        r.Register("gigpo", new(c =>
        {
            var episode = Grpo(new GroupOutcomeInput(c.Rewards, c.ResponseMask, c.GroupSize, c.GroupIds), c.Scaling).Advantages;   // (B, A)
            var tokenRewards = c.TokenRewards ?? throw new ArgumentException("gigpo needs multi-turn trajectories (env:): per-turn rewards");
            var states = c.TurnStates ?? throw new ArgumentException("gigpo needs multi-turn trajectories (env:): the states turns were taken from");
            return new(episode + StepAdvantages(tokenRewards, states, c.ResponseMask), c.Rewards);
        }, GroupRelative: true));
        // OREAL: positives are behaviour-cloned (weight 1), negatives carry their leave-one-out reshaped reward × η; an
        // all-correct group is all positives (advantage 1), so it is not a zero-signal group.
        r.Register("oreal", new(c => new(Oreal(new GroupOutcomeInput(c.Rewards, c.ResponseMask, c.GroupSize, c.GroupIds)).Advantages, c.Rewards),
            GroupRelative: true, PositiveGroupsCarrySignal: 0.5));
        // f-DPG (arXiv:2302.08215): pseudo-rewards −f′(π/p) towards p ∝ a·φ, a = the reference; log π − log a is the summed k1 KL.
        r.Register("fdpg", new(c =>
        {
            var logPolicy = SequenceLogProbs(c, "fdpg");                                                            // (B)
            var logBase = logPolicy - c.TokenKl.sum(1);                                                             // (B)  log a = log π − Σ (log π − log a)
            var logTarget = FDivergences.LogTarget(logBase, c.Rewards, c.Target, c.Beta);                           // (B)
            var (adv, pseudo) = FDivergences.Advantages(logPolicy, logTarget, c.ResponseMask, c.GroupSize, c.Divergence);
            return new(adv, pseudo);
        }, ReadsLogProbs: true));
        // Flow of Reasoning / trajectory balance (arXiv:2406.05673, 2201.13176) with the group-optimal log Z, R = exp(r/β).
        r.Register("trajectory_balance", new(c =>
        {
            if (!(c.Beta > 0)) throw new ArgumentException("trajectory_balance needs rl.beta > 0 (the reward temperature of R = exp(r/β))");
            var logPf = SequenceLogProbs(c, "trajectory_balance");                                                  // (B)
            var (adv, seq) = FlowBalance.TrajectoryBalanceAdvantages(logPf, c.Rewards.to_type(ScalarType.Float64) / c.Beta, c.ResponseMask, c.GroupSize);
            return new(adv, seq);
        }, ReadsLogProbs: true));   // not GroupRelative: equal rewards in a group still leave log P_F differences to balance
        return r;
    }

    /// <summary>
    /// OREAL's sequence weights (Lyu et al. 2025, "Exploring the Limit of Outcome Reward for Learning Mathematical Reasoning",
    /// arXiv:2502.06781): with binary outcome rewards, behaviour cloning on the positive samples of best-of-N sampling is what
    /// the KL-regularised optimum asks for, so a positive row (r ≥ <paramref name="threshold"/>) gets the constant weight
    /// <paramref name="positiveFactor"/> (−log π is then plain likelihood training); a negative row's reward is reshaped so its
    /// gradient is consistent with the positives': Â_i = η·(r_i − mean_{j≠i} r_j), the leave-one-out centred reward (for a
    /// binary reward, −η times the pass rate of the other samples), η = <paramref name="negativeFactor"/>. A group with no
    /// positive gives its negatives 0 (nothing to be consistent with). Departure: the shaping and the defaults η = 0.5, weight 1
    /// follow the authors' released configuration (reward shaping "rloo", negative loss factor 0.5), not a formula we could
    /// check in the paper's text. Groups as in <see cref="Rloo(GroupOutcomeInput, RewardScaling, double)"/> (G ≥ 2).
    /// </summary>
    public static AdvantageOutput Oreal(GroupOutcomeInput x, double positiveFactor = 1.0, double negativeFactor = 0.5, double threshold = 0.5)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!double.IsFinite(positiveFactor) || positiveFactor < 0) throw new ArgumentOutOfRangeException(nameof(positiveFactor), positiveFactor, "must be finite and 0 or more");
        if (!double.IsFinite(negativeFactor) || negativeFactor < 0) throw new ArgumentOutOfRangeException(nameof(negativeFactor), negativeFactor, "must be finite and 0 or more");
        var (rewards, mask) = CheckOutcome(x.Rewards, x.ResponseMask);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var (mean, _, n) = GroupMoments(rewards, x, minimum: 2);                 // (B) ×3
        var leaveOneOut = (mean * n - rewards) / (n - 1);                         // (B)  mean_{j≠i} r_j
        var positive = rewards >= threshold;                                      // (B) bool
        var adv = where(positive, full_like(rewards, positiveFactor),            // BC on positives, arXiv:2502.06781 §2.2
            negativeFactor * (rewards - leaveOneOut));                            // reshaped negatives, §2.3
        return PerToken(adv, mask);                                               // (B) → (B, A)
    }

    /// <summary>
    /// GiGPO's step-level advantage (Feng et al. 2025, arXiv:2505.10978 §3.2), undiscounted and centred without std
    /// scaling: each turn's return-to-go (its own reward and every later turn's, read from <paramref name="tokenRewards"/>,
    /// each turn's reward at its last policy token) minus the mean return-to-go of all turns of the batch taken from the
    /// same state (<paramref name="stateIds"/>: equal ids = the same anchor state; the paper groups within one prompt's
    /// group, here a state id is the turn index and the last observation, so identical observations of different episodes
    /// share a group; the baseline depends only on the state, never on the turn's own action, apart from the turn itself
    /// being one of the group as in GRPO). Each turn counts once whatever its length; a state met once gets 0. The value
    /// is placed on every policy token of the turn, 0 elsewhere. <c>(B, A)</c>
    /// </summary>
    public static Tensor StepAdvantages(Tensor tokenRewards, Tensor stateIds, Tensor mask)
    {
        ArgumentNullException.ThrowIfNull(tokenRewards);
        ArgumentNullException.ThrowIfNull(stateIds);
        ArgumentNullException.ThrowIfNull(mask);
        if (!tokenRewards.shape.SequenceEqual(mask.shape) || !stateIds.shape.SequenceEqual(mask.shape))
            throw new ArgumentException($"step advantages: rewards {string.Join("x", tokenRewards.shape)}, states {string.Join("x", stateIds.shape)} and mask {string.Join("x", mask.shape)} must have one shape (B, A)");
        int b = (int)mask.shape[0], a = (int)mask.shape[1];
        var r = tokenRewards.detach().to(ScalarType.Float64).cpu().data<double>().ToArray();
        var m = mask.detach().to(ScalarType.Float32).cpu().data<float>().ToArray();
        var ids = stateIds.detach().to(ScalarType.Int64).cpu().data<long>().ToArray();
        var rtg = new double[b * a];
        for (int i = 0; i < b; i++)
        {
            double acc = 0;
            for (int t = a - 1; t >= 0; t--) { acc += r[i * a + t]; rtg[i * a + t] = acc; }
        }
        // A turn is a run of policy tokens with one state id; its return-to-go is the run's first token's.
        var turns = new List<(int Row, int Start, int End, long State, double Rtg)>();
        for (int i = 0; i < b; i++)
            for (int t = 0; t < a; t++)
            {
                long id = ids[i * a + t];
                if (m[i * a + t] == 0 || id < 0) continue;
                int start = t;
                while (t + 1 < a && m[i * a + t + 1] != 0 && ids[i * a + t + 1] == id) t++;
                turns.Add((i, start, t, id, rtg[i * a + start]));
            }
        var groups = turns.GroupBy(x => x.State).ToDictionary(g => g.Key, g => (N: g.Count(), Mean: g.Average(x => x.Rtg)));
        var adv = new float[b * a];
        foreach (var x in turns)
        {
            var (n, mean) = groups[x.State];
            float v = n < 2 ? 0f : (float)(x.Rtg - mean);
            for (int t = x.Start; t <= x.End; t++) adv[x.Row * a + t] = v;
        }
        return tensor(adv).view(b, a).to(mask.device);
    }

    /// <summary>r − β·Σ_t KL_t per sequence when the algorithm puts the KL in the reward, else r. <c>(B)</c></summary>
    static Tensor KlRegularised(AdvantageContext c) => c.KlInReward ? c.Rewards - c.Beta * c.TokenKl.sum(1) : c.Rewards;

    /// <summary>
    /// GRPO outcome advantage (Shao et al. 2024, arXiv:2402.03300 §4.1.2): Â_i = (r_i − mean_g r) / (std_g r + eps), the
    /// same value on every token of sequence i. With <paramref name="scaleByStd"/> = false this is Dr. GRPO's
    /// Â_i = r_i − mean_g r (Liu et al. 2025, arXiv:2503.20783).
    /// The std is the <b>unbiased</b> (Bessel-corrected, divide by G − 1) sample std, as <c>torch.std</c> computes it in
    /// the reference implementations (DeepSeekMath's description, TRL, verl), so our advantages match theirs for the small
    /// G used in practice (for G = 4 the biased std would be √(3/4) ≈ 0.87 of it). With G = 1 every advantage is 0.
    /// </summary>
    public static AdvantageOutput Grpo(GroupOutcomeInput x, bool scaleByStd = true, double eps = 1e-6) =>
        Grpo(x, scaleByStd ? RewardScaling.Group : RewardScaling.None, eps);

    /// <summary>
    /// GRPO with a choice of scale (<c>rl.scale_rewards</c>): Â_i = (r_i − mean_g r) / (s + eps) with s the group's unbiased
    /// reward std (<see cref="RewardScaling.Group"/>, arXiv:2402.03300 §4.1.2), the unbiased std of all B rewards of the batch
    /// (<see cref="RewardScaling.Batch"/>, TRL's <c>scale_rewards="batch"</c>), or s + eps = 1 (<see cref="RewardScaling.None"/>,
    /// Dr. GRPO). A group of one row gets 0. Groups are G consecutive rows, or the rows sharing a <see cref="GroupOutcomeInput.GroupIds"/> id.
    /// </summary>
    public static AdvantageOutput Grpo(GroupOutcomeInput x, RewardScaling scale, double eps = 1e-6)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentOutOfRangeException.ThrowIfNegative(eps);
        var (rewards, mask) = CheckOutcome(x.Rewards, x.ResponseMask);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var (mean, std, _) = GroupMoments(rewards, x, minimum: 1);                // (B) each row's group mean and unbiased std
        var centered = rewards - mean;                                            // (B)  r_i − mean_g, arXiv:2402.03300 §4.1.2
        var adv = Scaled(centered, rewards, std, scale, eps);                     // (B)  ÷ (std + eps) or not
        return PerToken(adv, mask);                                               // (B) → (B, A)
    }

    /// <summary>
    /// RLOO, REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024, arXiv:2402.14740):
    /// Â_i = r_i − mean_{j≠i} r_j = G/(G−1)·(r_i − mean_g r). Needs G ≥ 2.
    /// </summary>
    public static AdvantageOutput Rloo(GroupOutcomeInput x) => Rloo(x, RewardScaling.None);

    /// <summary>
    /// RLOO with an optional scale (<c>rl.scale_rewards</c>): Â_i = (r_i − mean_{j≠i} r_j) / (s + eps), s the group's or the
    /// batch's unbiased reward std, or no division with <see cref="RewardScaling.None"/> (RLOO as published). With id groups
    /// of n_g rows, mean_{j≠i} r_j = (Σ_g r − r_i) / (n_g − 1); every group needs 2 rows or more.
    /// </summary>
    public static AdvantageOutput Rloo(GroupOutcomeInput x, RewardScaling scale, double eps = 1e-6)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentOutOfRangeException.ThrowIfNegative(eps);
        var (rewards, mask) = CheckOutcome(x.Rewards, x.ResponseMask);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var (mean, std, n) = GroupMoments(rewards, x, minimum: 2);               // (B) ×3
        var leaveOneOut = (mean * n - rewards) / (n - 1);                         // (B)  mean_{j≠i} r_j
        var adv = Scaled(rewards - leaveOneOut, rewards, std, scale, eps);        // Â_i = r_i − mean_{j≠i} r_j, arXiv:2402.14740 Eq. 6
        return PerToken(adv, mask);                                               // (B) → (B, A)
    }

    /// <summary>
    /// Dense group indices 0 … K−1 for the id of each row, numbered in order of first appearance (<c>rl.group_by</c>): rows
    /// with equal ids share an index. Returns the indices and K.
    /// </summary>
    public static (long[] Indices, int Groups) DenseGroupIds(IReadOnlyList<string> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var seen = new Dictionary<string, long>(StringComparer.Ordinal);
        var idx = new long[ids.Count];
        for (int i = 0; i < ids.Count; i++)
        {
            if (!seen.TryGetValue(ids[i], out var k)) seen[ids[i]] = k = seen.Count;
            idx[i] = k;
        }
        return (idx, seen.Count);
    }

    /// <summary>Each row's group mean, unbiased group std (0 for a group of one) and group size, all <c>(B)</c>; groups are
    /// consecutive runs of G rows or the rows sharing a <see cref="GroupOutcomeInput.GroupIds"/> value.</summary>
    static (Tensor Mean, Tensor Std, Tensor Count) GroupMoments(Tensor rewards, GroupOutcomeInput x, int minimum)
    {
        Tensor ids;
        if (x.GroupIds is null)
        {
            var g = CheckGroups(rewards, x.GroupSize, minimum);
            ids = arange(rewards.shape[0], dtype: ScalarType.Int64, device: rewards.device).div(g, rounding_mode: RoundingMode.floor);   // (B)
        }
        else
        {
            ids = x.GroupIds;
            if (ids.dim() != 1 || ids.shape[0] != rewards.shape[0])
                throw new ArgumentException($"GroupIds must be (B) = [{rewards.shape[0]}], got shape [{string.Join(", ", ids.shape)}].", nameof(x));
            if (ids.dtype != ScalarType.Int64) throw new ArgumentException($"GroupIds must be int64, got {ids.dtype}.", nameof(x));
            if (ids.numel() > 0 && ids.min().item<long>() < 0) throw new ArgumentException("GroupIds must be 0 or more.", nameof(x));
        }
        long k = ids.numel() == 0 ? 0 : ids.max().item<long>() + 1;
        var count = zeros(k, dtype: rewards.dtype, device: rewards.device).index_add(0, ids, ones_like(rewards), 1.0);   // (K) n_g
        if (minimum > 1 && x.GroupIds is not null && k > 0)
        {
            var present = count > 0;
            var smallest = count.masked_select(present).min().item<float>();
            if (smallest < minimum) throw new ArgumentException($"Every group needs at least {minimum} rows; one has {smallest}.", nameof(x));
        }
        var sum = zeros(k, dtype: rewards.dtype, device: rewards.device).index_add(0, ids, rewards, 1.0);               // (K) Σ_g r
        var mean = (sum / count.clamp_min(1)).index_select(0, ids);                                                // (B)
        var dev = rewards - mean;                                                                                   // (B)
        var ss = zeros(k, dtype: rewards.dtype, device: rewards.device).index_add(0, ids, dev * dev, 1.0);              // (K) Σ_g (r − mean)²
        var std = (ss / (count - 1).clamp_min(1)).sqrt().index_select(0, ids);                                     // (B) unbiased std
        return (mean, std, count.index_select(0, ids));
    }

    static Tensor Scaled(Tensor centered, Tensor rewards, Tensor groupStd, RewardScaling scale, double eps) => scale switch
    {
        RewardScaling.Group => centered / (groupStd + eps),
        RewardScaling.Batch => rewards.shape[0] > 1 ? centered / (rewards.std(unbiased: true) + eps) : centered,   // one std over all B rewards
        RewardScaling.None => centered,
        _ => throw new ArgumentOutOfRangeException(nameof(scale), scale, null),
    };

    /// <summary>ReMax (Li et al. 2023, arXiv:2310.10505): Â = r(x, y) − r(x, ȳ_greedy) on every token.</summary>
    public static AdvantageOutput Remax(RemaxInput x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var (rewards, mask) = CheckOutcome(x.Rewards, x.ResponseMask);
        if (!x.BaselineRewards.shape.SequenceEqual(rewards.shape))
            throw new ArgumentException($"BaselineRewards has shape [{string.Join(", ", x.BaselineRewards.shape)}] but must be (B) = [{rewards.shape[0]}].", nameof(x));
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var adv = rewards - x.BaselineRewards.to_type(rewards.dtype);             // (B)  Â = r(y) − r(ȳ_greedy), arXiv:2310.10505 Alg. 1
        return PerToken(adv, mask);                                  // (B) → (B, A)
    }

    /// <summary>REINFORCE with a scalar baseline (Williams 1992): Â = r − b on every token.</summary>
    public static AdvantageOutput Reinforce(BaselineInput x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var (rewards, mask) = CheckOutcome(x.Rewards, x.ResponseMask);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var adv = rewards - x.Baseline;                                           // (B)  Â = r − b, Williams 1992
        return PerToken(adv, mask);                                  // (B) → (B, A)
    }

    /// <summary>
    /// Generalized advantage estimation (Schulman et al. 2015, arXiv:1506.02438 Eq. 16), per sequence from its last real
    /// token backwards: δ_t = r_t + γ V_{t+1} − V_t with V = 0 after the last real token, A_t = δ_t + γλ A_{t+1}; returns
    /// (value targets) = A + V. Rows may have different lengths. The recursion runs over the masked tokens only: a
    /// position with mask 0 is skipped (V_{t+1} and A_{t+1} are those of the next masked token), so the environment's text
    /// between two turns of a multi-turn sequence is not a step of the policy and GAE carries later turns' rewards back
    /// across it; for a right-padded mask this is the usual per-sequence GAE. Rewards and values at masked-out positions
    /// are ignored; outputs are 0 there.
    /// </summary>
    public static AdvantageOutput Gae(GaeInput x)
    {
        ArgumentNullException.ThrowIfNull(x);
        LossAggregator.RequireSameShape2D(x.TokenRewards, x.Values, nameof(x.Values));
        LossAggregator.RequireSameShape2D(x.TokenRewards, x.ResponseMask, nameof(x.ResponseMask));
        if (x.Gamma is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(x), x.Gamma, "Gamma must be in [0, 1].");
        if (x.Lambda is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(x), x.Lambda, "Lambda must be in [0, 1].");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var dtype = x.TokenRewards.is_floating_point() ? x.TokenRewards.dtype : ScalarType.Float32;
        var m = x.ResponseMask.to_type(dtype);                                    // (B, A)
        var r = x.TokenRewards.to_type(dtype) * m;                                // (B, A)
        var v = x.Values.to_type(dtype) * m;                                      // (B, A)
        long b = r.shape[0], a = r.shape[1];
        var nextValue = zeros(b, dtype: dtype, device: r.device);                 // (B)  V_{t+1}; 0 beyond the last real token
        var nextAdv = zeros(b, dtype: dtype, device: r.device);                   // (B)  A_{t+1}
        var columns = new Tensor[a];
        for (long t = a - 1; t >= 0; t--)
        {
            var mt = m[.., t];                                                    // (B)
            var vt = v[.., t];                                                    // (B)
            var delta = r[.., t] + x.Gamma * nextValue - vt;                      // δ_t = r_t + γ V_{t+1} − V_t, arXiv:1506.02438 Eq. 11
            var at = (delta + x.Gamma * x.Lambda * nextAdv) * mt;                 // A_t = δ_t + γλ A_{t+1}, arXiv:1506.02438 Eq. 16; 0 at mask 0
            var skip = 1 - mt;                                                    // (B)  1 where t is not a policy token: carry t+1's values over it
            nextAdv = at + skip * nextAdv;
            nextValue = vt + skip * nextValue;                                    // vt is 0 at mask 0
            columns[t] = at;
        }
        var adv = stack(columns, 1);                                              // (B) × A → (B, A)
        var returns = (adv + v) * m;                                              // (B, A)  value target R_t = A_t + V_t
        scope.MoveToOuter(adv, returns);
        return new AdvantageOutput(adv, returns);
    }

    /// <summary>
    /// Fraction of groups (G consecutive rows of <paramref name="rewards"/> <c>(B)</c>) whose rewards are all equal, so that
    /// every group-relative advantage in them is 0 (the groups DAPO's dynamic sampling filters out, arXiv:2503.14476).
    /// </summary>
    public static double ZeroAdvantageGroupFraction(Tensor rewards, int groupSize)
    {
        TorchRuntime.EnsureLoaded();
        ArgumentNullException.ThrowIfNull(rewards);
        if (rewards.dim() != 1) throw new ArgumentException($"Rewards must be (B), got shape [{string.Join(", ", rewards.shape)}].", nameof(rewards));
        var g = CheckGroups(rewards, groupSize, minimum: 1);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var r = rewards.view(-1, g);                                              // (B/G, G)
        var equal = r.amax([1L]) == r.amin([1L]);                                 // (B/G)
        return equal.to_type(ScalarType.Float64).mean().item<double>();
    }

    /// <summary>
    /// Masked whitening of <paramref name="x"/> <c>(B, A)</c> over the tokens where <paramref name="mask"/> is 1 (PPO advantage
    /// normalisation): (x − μ) / √(σ² + eps), with μ and the population (biased) variance σ² taken over masked tokens only.
    /// With <paramref name="shiftMean"/> = false the mean is added back (only the scale changes). Padding comes out 0.
    /// </summary>
    public static Tensor Whiten(Tensor x, Tensor mask, bool shiftMean = true, double eps = 1e-8)
    {
        LossAggregator.RequireSameShape2D(x, mask, nameof(mask));
        using var scope = NewDisposeScope();
        var m = mask.to_type(x.dtype);                                            // (B, A)
        var n = m.sum().clamp_min(1.0);                                           // scalar
        var mean = (x * m).sum() / n;                                             // scalar
        var centered = (x - mean) * m;                                            // (B, A)
        var variance = (centered * centered).sum() / n;                           // scalar, population variance
        var whitened = centered * (variance + eps).rsqrt();                       // (B, A)
        if (!shiftMean) whitened = (whitened + mean) * m;
        return whitened.MoveToOuterDisposeScope();
    }

    /// <summary>Σ_t log π_old(y_t) per row <c>(B)</c> in float64, from the context's behaviour log-probs.</summary>
    static Tensor SequenceLogProbs(AdvantageContext c, string name) =>
        ((c.OldLogProbs ?? throw new ArgumentException($"{name} needs the rollouts' log-probs")).to_type(ScalarType.Float64)
            * c.ResponseMask.to_type(ScalarType.Float64)).sum(1);

    static (Tensor Rewards, Tensor Mask) CheckOutcome(Tensor rewards, Tensor mask)
    {
        TorchRuntime.EnsureLoaded();
        ArgumentNullException.ThrowIfNull(rewards);
        ArgumentNullException.ThrowIfNull(mask);
        if (rewards.dim() != 1) throw new ArgumentException($"Rewards must be (B), got shape [{string.Join(", ", rewards.shape)}].", nameof(rewards));
        if (mask.dim() != 2 || mask.shape[0] != rewards.shape[0])
            throw new ArgumentException($"ResponseMask must be (B, A) with B = {rewards.shape[0]}, got shape [{string.Join(", ", mask.shape)}].", nameof(mask));
        return (rewards.is_floating_point() ? rewards : rewards.to_type(ScalarType.Float32), mask);
    }

    static int CheckGroups(Tensor rewards, int groupSize, int minimum)
    {
        if (groupSize < minimum)
            throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize, $"The group size must be at least {minimum}.");
        if (rewards.shape[0] % groupSize != 0)
            throw new ArgumentException($"The batch of {rewards.shape[0]} rows is not a whole number of groups of {groupSize}.", nameof(groupSize));
        return groupSize;
    }

    /// <summary>Broadcasts a per-sequence advantage <c>(B)</c> over the response tokens, zero at padding, out of the caller's inner scope.</summary>
    static AdvantageOutput PerToken(Tensor adv, Tensor mask) =>
        new((adv.unsqueeze(1) * mask.to_type(adv.dtype)).MoveToOuterDisposeScope(), null);   // (B) → (B, 1) → (B, A)
}
