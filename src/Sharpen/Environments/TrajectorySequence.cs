using Sharpen.Tokenizers;

namespace Sharpen.Environments;

/// <summary>
/// A whole trajectory as one token sequence for training: context (prompt and environment text) with loss mask 0 and
/// the policy's own tokens with loss mask 1, so a trainer computes log-probs with one forward pass over
/// <see cref="InputIds"/> and trains on the masked positions only.
/// <code>
/// InputIds     [ prompt ... | turn 1 tokens | env text ... | turn 2 tokens ]      (T)
/// LossMask     [ 0 ...    0 | 1 ...       1 | 0 ...     0 | 1 ...       1 ]      (T)
/// OldLogProbs  [ 0 ...    0 | engine lp ... | 0 ...     0 | engine lp ... ]      (T)
/// TurnEnds                              ^ last token of turn 1          ^ of turn 2
/// </code>
/// Position t's log-prob is that of token <c>InputIds[t]</c> given <c>InputIds[..t]</c>; with logits from a causal
/// LM, it is read from the logits at position t-1 (the first token is never a policy token).
/// </summary>
/// <param name="InputIds">Token ids, (T).</param>
/// <param name="LossMask">1 at the policy's tokens, 0 at context, (T).</param>
/// <param name="OldLogProbs">The engine's log-probs at the masked positions and 0 elsewhere, (T); null when the
/// trajectory carries none (offline text).</param>
/// <param name="TurnEnds">Index into <see cref="InputIds"/> of each turn's last policy token, (turns).</param>
/// <param name="TurnRewards">Each turn's reward, (turns).</param>
public sealed record TrajectorySequence(int[] InputIds, float[] LossMask, float[]? OldLogProbs, int[] TurnEnds, double[] TurnRewards)
{
    /// <summary>Tokens in the sequence (T).</summary>
    public int Length => InputIds.Length;

    /// <summary>The return: the sum of the turns' rewards.</summary>
    public double Return => TurnRewards.Sum();

    /// <summary>
    /// The sequence of a trajectory that carries token ids (one from <see cref="MultiTurnRollout"/>): each turn's
    /// context ids then its own ids, exactly the tokens the engine saw and wrote. Throws <see cref="ArgumentException"/>
    /// when a turn lacks ids, has no tokens, or its log-probs do not match its tokens one to one.
    /// </summary>
    public static TrajectorySequence FromTokens(Trajectory trajectory)
    {
        ArgumentNullException.ThrowIfNull(trajectory);
        if (trajectory.Turns.Count == 0) throw new ArgumentException("the trajectory has no assistant turn to train on");
        bool withLogProbs = trajectory.Turns[0].LogProbs is not null;
        var ids = new List<int>();
        var mask = new List<float>();
        var lps = new List<float>();
        var ends = new int[trajectory.Turns.Count];
        for (int k = 0; k < trajectory.Turns.Count; k++)
        {
            var turn = trajectory.Turns[k];
            if (turn.ContextIds is null || turn.TokenIds is null)
                throw new ArgumentException($"turn {k} carries no token ids; use Tokenize with a tokenizer and renderer for text-only trajectories");
            if (turn.TokenIds.Length == 0) throw new ArgumentException($"turn {k} has no tokens");
            if ((turn.LogProbs is not null) != withLogProbs)
                throw new ArgumentException($"turn {k} {(withLogProbs ? "lacks" : "has")} log-probs unlike turn 0; give them for every turn or none");
            if (turn.LogProbs is { } lp && lp.Length != turn.TokenIds.Length)
                throw new ArgumentException($"turn {k} has {lp.Length} log-probs for {turn.TokenIds.Length} tokens");
            Append(ids, mask, lps, turn.ContextIds, turn.TokenIds, turn.LogProbs);
            ends[k] = ids.Count - 1;
        }
        return new TrajectorySequence(ids.ToArray(), mask.ToArray(), withLogProbs ? lps.ToArray() : null, ends,
            trajectory.Turns.Select(t => t.Reward).ToArray());
    }

    /// <summary>
    /// The sequence of a text-only trajectory (e.g. read from JSONL without ids): the conversation before each assistant
    /// message is rendered with <paramref name="renderer"/>, the part not rendered before is the turn's context, and the
    /// assistant message's text is encoded as the policy's tokens (no EOS added). Log-probs are null. Throws
    /// <see cref="ArgumentException"/> when the renderer does not extend its earlier output.
    /// </summary>
    public static TrajectorySequence Tokenize(Trajectory trajectory, ITokenizer tokenizer, ChatRenderer renderer)
    {
        ArgumentNullException.ThrowIfNull(trajectory);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(renderer);
        if (trajectory.Turns.Count == 0) throw new ArgumentException("the trajectory has no assistant turn to train on");
        var ids = new List<int>();
        var mask = new List<float>();
        var lps = new List<float>();
        var ends = new int[trajectory.Turns.Count];
        string rendered = "";
        for (int k = 0; k < trajectory.Turns.Count; k++)
        {
            int at = trajectory.Turns[k].MessageIndex;
            if (at < 0 || at >= trajectory.Messages.Count || trajectory.Messages[at].Role != "assistant")
                throw new ArgumentException($"turn {k} points at message {at}, which is not an assistant message");
            var prompt = renderer(trajectory.Messages.Take(at).ToList());
            var context = MultiTurnRollout.Extension(rendered, prompt);
            var content = trajectory.Messages[at].Content;
            var contextIds = tokenizer.Encode(context, addSpecialTokens: k == 0).ToArray();
            var tokenIds = tokenizer.Encode(content, addSpecialTokens: false).ToArray();
            if (tokenIds.Length == 0) throw new ArgumentException($"turn {k}'s message encodes to no tokens");
            Append(ids, mask, lps, contextIds, tokenIds, null);
            ends[k] = ids.Count - 1;
            rendered = prompt + content;
        }
        return new TrajectorySequence(ids.ToArray(), mask.ToArray(), null, ends, trajectory.Turns.Select(t => t.Reward).ToArray());
    }

    static void Append(List<int> ids, List<float> mask, List<float> lps, int[] context, int[] tokens, float[]? logProbs)
    {
        ids.AddRange(context);
        mask.AddRange(Enumerable.Repeat(0f, context.Length));
        lps.AddRange(Enumerable.Repeat(0f, context.Length));
        ids.AddRange(tokens);
        mask.AddRange(Enumerable.Repeat(1f, tokens.Length));
        if (logProbs is not null) lps.AddRange(logProbs);
        else lps.AddRange(Enumerable.Repeat(0f, tokens.Length));
    }
}
