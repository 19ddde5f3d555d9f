using Sharpen.Data;
using Sharpen.Generation;

namespace Sharpen.Environments;

/// <summary>
/// Plays N environments at once through one rollout engine, in lock-step turns: each turn renders every live
/// environment's transcript, makes one <see cref="IRolloutEngine.Generate(IReadOnlyList{IReadOnlyList{int}}, SamplingOptions)"/>
/// call for all of them, and steps every environment with its message (concurrently, so I/O environments overlap; those
/// sharing an <see cref="IBatchSteppedEnvironment.BatchStepper"/>, e.g. a frozen model, in one batched call).
/// Environments that are done, out of turns or out of tokens drop out; the rest go on.
/// <para>
/// Token ids are kept, never re-tokenized: each turn's prompt is the previous prompt, the tokens the engine wrote and
/// the encoding of the text the renderer added since (the environment's messages and the next assistant header).
/// So the trajectory's sequence (<see cref="TrajectorySequence.FromTokens"/>) is exactly what the engine saw and wrote,
/// and its log-probs are those of the policy on that sequence.
/// </para>
/// </summary>
public sealed class MultiTurnRollout
{
    readonly IRolloutEngine _engine;
    readonly ChatRenderer _renderer;

    /// <summary>Rollouts through <paramref name="engine"/>, prompts rendered by <paramref name="renderer"/>
    /// (default <see cref="TranscriptRenderer.Plain"/>).</summary>
    public MultiTurnRollout(IRolloutEngine engine, MultiTurnOptions? options = null, ChatRenderer? renderer = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        _engine = engine;
        Options = (options ?? new MultiTurnOptions()).Validate();
        _renderer = renderer ?? TranscriptRenderer.Plain;
    }

    /// <summary>The options.</summary>
    public MultiTurnOptions Options { get; }

    /// <summary>Engine calls made so far (one per turn of a batch) and the live trajectories in each.</summary>
    public IReadOnlyList<int> BatchSizes => _batchSizes;
    readonly List<int> _batchSizes = [];

    sealed class Episode(IEnvironment env, int seed)
    {
        public readonly IEnvironment Env = env;
        public readonly int Seed = seed;
        public readonly List<ChatMessage> Messages = [];
        public readonly List<int> Ids = [];
        public readonly List<TrajectoryTurn> Turns = [];
        public int[] PendingContext = [];
        public string Rendered = "";
        public TrajectoryEnd? End;
    }

    /// <summary>
    /// Resets <paramref name="environments"/>[i] with <paramref name="seeds"/>[i] and plays them to the end; returns one
    /// trajectory per environment, in order. The environments must be distinct instances.
    /// </summary>
    public async Task<IReadOnlyList<Trajectory>> RunAsync(IReadOnlyList<IEnvironment> environments, IReadOnlyList<int> seeds,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(environments);
        ArgumentNullException.ThrowIfNull(seeds);
        if (environments.Count != seeds.Count) throw new ArgumentException($"{environments.Count} environments but {seeds.Count} seeds");
        if (environments.Distinct(ReferenceEqualityComparer.Instance).Count() != environments.Count)
            throw new ArgumentException("an environment instance plays one episode at a time; pass distinct instances");
        var tokenizer = _engine.Tokenizer;
        int budget = Options.MaxTrajectoryTokens;
        var episodes = environments.Select((e, i) => new Episode(e, seeds[i])).ToArray();

        var firsts = await Task.WhenAll(episodes.Select(e => e.Env.ResetAsync(e.Seed, cancellationToken).AsTask())).ConfigureAwait(false);
        for (int i = 0; i < episodes.Length; i++)
        {
            var e = episodes[i];
            e.Messages.AddRange(firsts[i]);
            e.Rendered = _renderer(e.Messages);
            e.PendingContext = tokenizer.Encode(e.Rendered, addSpecialTokens: true).ToArray();
            if (e.PendingContext.Length == 0) throw new InvalidOperationException($"environment '{e.Env.Name}' (seed {e.Seed}): the first prompt encodes to no tokens");
            e.Ids.AddRange(e.PendingContext);
            if (e.Ids.Count >= budget) e.End = TrajectoryEnd.TokenBudget;
        }

        for (int turn = 0; ; turn++)
        {
            foreach (var e in episodes)
                if (e.End is null && e.Turns.Count >= Options.MaxTurns) e.End = TrajectoryEnd.TurnLimit;
            var live = episodes.Where(e => e.End is null).ToArray();
            if (live.Length == 0) break;
            cancellationToken.ThrowIfCancellationRequested();

            // One engine call for every live environment.
            _batchSizes.Add(live.Length);
            var rollouts = _engine.Generate(live.Select(e => (IReadOnlyList<int>)e.Ids.ToArray()).ToList(),
                Options.Sampling with { Seed = Options.Sampling.Seed + turn });
            var actions = new string[live.Length];
            var cut = new bool[live.Length];
            var tokens = new int[live.Length][];
            var logProbs = new float[live.Length][];
            for (int j = 0; j < live.Length; j++)
            {
                var (e, r) = (live[j], rollouts[j]);
                var ids = r.CompletionIds;
                var lps = r.LogProbs;
                var text = r.CompletionText;
                var stop = r.Stop;
                int room = budget - e.Ids.Count;
                if (ids.Length > room)
                {
                    // Cut at the budget: the kept tokens' log-probs do not depend on what followed them.
                    ids = ids[..room];
                    lps = lps[..room];
                    text = tokenizer.Decode(ids, skipSpecialTokens: true);
                    stop = StopReason.MaxTokens;
                    cut[j] = true;
                }
                tokens[j] = ids;
                logProbs[j] = lps;
                actions[j] = stop == StopReason.StopString && Options.StripStopString ? StripStop(text, Options.Sampling.StopStrings) : text;
                e.Messages.Add(new ChatMessage("assistant", actions[j]));
                e.Ids.AddRange(ids);
                e.Rendered += text;
            }

            // Every live environment answers; I/O environments overlap; environments sharing a batch stepper step in one call.
            var steps = await StepAllAsync(live.Select(e => e.Env).ToArray(), actions, cancellationToken).ConfigureAwait(false);
            for (int j = 0; j < live.Length; j++)
            {
                var (e, s) = (live[j], steps[j]);
                e.Turns.Add(new TrajectoryTurn(e.Messages.Count - 1, s.Reward, s.Info)
                {
                    ContextIds = e.PendingContext, TokenIds = tokens[j], LogProbs = logProbs[j],
                });
                e.Messages.AddRange(s.Observation);
                if (s.Done) { e.End = TrajectoryEnd.Done; continue; }
                if (cut[j]) { e.End = TrajectoryEnd.TokenBudget; continue; }
                var next = _renderer(e.Messages);
                var added = Extension(e.Rendered, next);
                e.PendingContext = tokenizer.Encode(added, addSpecialTokens: false).ToArray();
                e.Rendered = next;
                if (e.Ids.Count + e.PendingContext.Length >= budget) { e.End = TrajectoryEnd.TokenBudget; continue; }
                e.Ids.AddRange(e.PendingContext);
            }
        }

        return episodes.Select(e => new Trajectory
        {
            Environment = e.Env.Name, Seed = e.Seed, Messages = e.Messages.ToArray(), Turns = e.Turns.ToArray(), End = e.End!.Value,
        }).ToArray();
    }

    /// <summary>
    /// Steps <paramref name="environments"/>[i] with <paramref name="actions"/>[i], all at once: the environments that
    /// share an <see cref="IBatchSteppedEnvironment.BatchStepper"/> in one call of it, every other one on its own; the
    /// calls run concurrently. The steps in order.
    /// </summary>
    public static async Task<EnvironmentStep[]> StepAllAsync(IReadOnlyList<IEnvironment> environments, IReadOnlyList<string> actions,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(environments);
        ArgumentNullException.ThrowIfNull(actions);
        if (environments.Count != actions.Count) throw new ArgumentException($"{environments.Count} environments but {actions.Count} actions");
        var steps = new EnvironmentStep[environments.Count];
        var calls = new List<Task>();
        var groups = new Dictionary<IEnvironmentBatchStepper, List<int>>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < environments.Count; i++)
        {
            if (environments[i] is IBatchSteppedEnvironment b)
            {
                if (!groups.TryGetValue(b.BatchStepper, out var members)) groups[b.BatchStepper] = members = [];
                members.Add(i);
            }
            else
            {
                int at = i;
                calls.Add(One(at));
            }
        }
        foreach (var (stepper, members) in groups) calls.Add(Group(stepper, members));
        await Task.WhenAll(calls).ConfigureAwait(false);
        return steps;

        async Task One(int i) => steps[i] = await environments[i].StepAsync(actions[i], cancellationToken).ConfigureAwait(false);

        async Task Group(IEnvironmentBatchStepper stepper, List<int> members)
        {
            var got = await stepper.StepAsync(members.Select(i => (IBatchSteppedEnvironment)environments[i]).ToArray(),
                members.Select(i => actions[i]).ToArray(), cancellationToken).ConfigureAwait(false);
            if (got.Count != members.Count) throw new InvalidOperationException($"a batch stepper returned {got.Count} steps for {members.Count} environments");
            for (int k = 0; k < members.Count; k++) steps[members[k]] = got[k];
        }
    }

    /// <summary>The text <paramref name="longer"/> adds to <paramref name="prefix"/>; throws when it does not start with it.</summary>
    internal static string Extension(string prefix, string longer)
    {
        if (!longer.StartsWith(prefix, StringComparison.Ordinal))
        {
            int at = 0;
            while (at < prefix.Length && at < longer.Length && prefix[at] == longer[at]) at++;
            throw new InvalidOperationException(
                $"the chat renderer must extend its earlier output (the previous prompt followed by the assistant's text), but they differ at character {at}: " +
                $"expected '{Excerpt(prefix, at)}', rendered '{Excerpt(longer, at)}'");
        }
        return longer[prefix.Length..];
    }

    static string Excerpt(string s, int at) => at >= s.Length ? "(end)" : s.Substring(at, Math.Min(20, s.Length - at)).Replace("\n", "\\n");

    static string StripStop(string text, IReadOnlyList<string> stops)
    {
        // The engine stops as soon as the text contains a stop string: cut at the last occurrence of the one found last.
        int best = -1;
        foreach (var s in stops)
        {
            int i = text.LastIndexOf(s, StringComparison.Ordinal);
            if (i > best) best = i;
        }
        return best >= 0 ? text[..best] : text;
    }
}
