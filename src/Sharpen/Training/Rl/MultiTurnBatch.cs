using Sharpen.Algorithms;
using Sharpen.Environments;
using Sharpen.Generation;
using static TorchSharp.torch;

namespace Sharpen.Training.Rl;

/// <summary>
/// Trajectories as the RL trainer's rows: row i is trajectory i's sequence (<see cref="TrajectorySequence.FromTokens"/>)
/// split after its first context, so that the first context is the "prompt" and everything after it (the policy's turns
/// and the environment's text between them) is the "completion" of the usual <c>[pad … prompt | completion … pad]</c>
/// layout. Its <see cref="SequenceBatch.CompletionMask"/> is the loss mask: 1 on the policy's tokens only, 0 at the
/// environment's text and at padding, so every per-token loss, KL and entropy reads the policy's tokens only.
/// <code>
/// completion   [ turn 1 | env text | turn 2 | pad ]
/// mask         [ 1 … 1  | 0 …    0 | 1 … 1  | 0   ]
/// old log-prob [ engine | 0 …    0 | engine | 0   ]
/// turn reward  [ 0 … r₁ | 0 …    0 | 0 … r₂ | 0   ]   (each turn's reward on its last token)
/// </code>
/// </summary>
/// <param name="Seq">The layout (tensors in the caller's dispose scope); <c>(B, P+A)</c> ids, <c>(B, A)</c> completion and mask.</param>
/// <param name="OldLogProbs">The engine's log-probs at the policy's tokens, 0 elsewhere <c>(B, A)</c>.</param>
/// <param name="TurnRewards">Each turn's reward at its last policy token <c>(B, A)</c>.</param>
/// <param name="Returns">Each trajectory's return (the sum of its turns' rewards) <c>(B)</c>.</param>
/// <param name="TurnIds">Each completion position's turn index <c>(B, A)</c>: k on turn k's tokens and on the environment text
/// before them (0 = the first attempt); padding carries the last turn's index. Read with the mask.</param>
public sealed record MultiTurnBatch(SequenceBatch Seq, Tensor OldLogProbs, Tensor TurnRewards, Tensor Returns, Tensor TurnIds)
{
    /// <summary>The rows of <paramref name="trajectories"/> (each must carry token ids and log-probs, as
    /// <see cref="MultiTurnRollout"/> returns them); <paramref name="padId"/> fills padding.</summary>
    public static MultiTurnBatch Build(IReadOnlyList<Trajectory> trajectories, int padId)
    {
        ArgumentNullException.ThrowIfNull(trajectories);
        if (trajectories.Count == 0) throw new ArgumentException("no trajectories");
        var seqs = trajectories.Select(TrajectorySequence.FromTokens).ToArray();
        if (seqs.Any(s => s.OldLogProbs is null)) throw new ArgumentException("a trajectory carries no engine log-probs; online RL needs them");
        var firsts = trajectories.Select(t => t.Turns[0].ContextIds!.Length).ToArray();
        var seq = SequenceBatch.Build(seqs.Select((s, i) => (IReadOnlyList<int>)s.InputIds[..firsts[i]]).ToList(),
            seqs.Select((s, i) => (IReadOnlyList<int>)s.InputIds[firsts[i]..]).ToList(), padId);
        long a = seq.CompletionIds.shape[1];
        int n = seqs.Length;
        var mask = new float[n * a];
        var old = new float[n * a];
        var rewards = new float[n * a];
        var turnIds = new long[n * a];
        for (int i = 0; i < n; i++)
        {
            var s = seqs[i];
            var placed = MultiTurnReturns.PlaceTurnRewards(s.Length, s.TurnEnds, s.TurnRewards);
            int turn = 0;
            for (int t = firsts[i]; t < s.Length; t++)
            {
                long at = i * a + t - firsts[i];
                (mask[at], old[at], rewards[at], turnIds[at]) = (s.LossMask[t], s.OldLogProbs![t], placed[t], turn);
                if (turn < s.TurnEnds.Length - 1 && t == s.TurnEnds[turn]) turn++;
            }
            for (long t = s.Length - firsts[i]; t < a; t++) turnIds[i * a + t] = turn;
        }
        return new MultiTurnBatch(seq with { CompletionMask = tensor(mask).view(n, a) }, tensor(old).view(n, a), tensor(rewards).view(n, a),
            tensor(seqs.Select(s => (float)s.Return).ToArray()), tensor(turnIds).view(n, a));
    }

    /// <summary>Each policy token's state id <c>(B, A)</c> int64, −1 off the mask: turn k of a trajectory is taken from the
    /// state "turn index k after the observation that precedes it" (the message before the assistant's), and equal
    /// (k, observation) pairs across the batch get one id. <paramref name="turnIds"/> and <paramref name="mask"/> are
    /// <see cref="Build"/>'s.</summary>
    public static Tensor StateIds(IReadOnlyList<Trajectory> trajectories, Tensor turnIds, Tensor mask)
    {
        ArgumentNullException.ThrowIfNull(trajectories);
        int b = (int)mask.shape[0], a = (int)mask.shape[1];
        var turns = turnIds.to(ScalarType.Int64).cpu().data<long>().ToArray();
        var m = mask.to(ScalarType.Float32).cpu().data<float>().ToArray();
        var keys = new Dictionary<(int, string), long>();
        var ids = new long[b * a];
        for (int i = 0; i < b; i++)
        {
            var t = trajectories[i];
            var rowIds = t.Turns.Select((turn, k) =>
            {
                var key = (k, turn.MessageIndex > 0 ? t.Messages[turn.MessageIndex - 1].Content : "");
                if (!keys.TryGetValue(key, out var id)) keys[key] = id = keys.Count;
                return id;
            }).ToArray();
            for (int p = 0; p < a; p++)
                ids[i * a + p] = m[i * a + p] == 0 ? -1 : rowIds[Math.Min((int)turns[i * a + p], rowIds.Length - 1)];
        }
        return tensor(ids).view(b, a);
    }
}
