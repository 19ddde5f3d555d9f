using Sharpen.Data;
using Sharpen.Environments;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Environments;

/// <summary><see cref="MultiTurnRollout"/> through the real torch engine on a tiny random model.</summary>
public class MultiTurnRolloutTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create(new GuessNumberEnvironment().Alphabet);

    static CausalLM Model() => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 160, InitializerRange = 0.5 }, seed: 21);

    static IEnvironment[] Games(params int[] maxTurns) =>
        maxTurns.Select(m => (IEnvironment)new GuessNumberEnvironment(new GuessNumberOptions { MaxTurns = m })).ToArray();

    static void AssertLogProbsMatchTeacherForcing(CausalLM model, Trajectory t)
    {
        var seq = TrajectorySequence.FromTokens(t);
        // Teacher-forced log π(x_t | x_<t) for t = 1..T-1 over the whole sequence in one pass.
        var scored = Scoring.Score(model, [seq.InputIds[..1]], [seq.InputIds[1..]], padId: 0)[0];
        int masked = 0;
        for (int p = 1; p < seq.Length; p++)
        {
            if (seq.LossMask[p] == 0) { Assert.Equal(0f, seq.OldLogProbs![p]); continue; }
            masked++;
            Assert.True(Math.Abs(seq.OldLogProbs![p] - scored[p - 1]) < 1e-4, $"position {p}: engine {seq.OldLogProbs[p]} vs scored {scored[p - 1]}");
        }
        Assert.Equal(t.Turns.Sum(x => x.TokenIds!.Length), masked);
        Assert.Equal(0f, seq.LossMask[0]);
    }

    [Fact]
    public async Task Trajectory_ids_masks_and_log_probs_line_up_with_teacher_forced_scoring()
    {
        using var model = Model();
        var engine = new RolloutEngine(model, Tok);
        var rollout = new MultiTurnRollout(engine, new MultiTurnOptions
        {
            Sampling = new SamplingOptions { MaxNewTokens = 6, StopStrings = ["\n"], Seed = 3 }, MaxTurns = 5, MaxTrajectoryTokens = 120,
        });
        var trajectories = await rollout.RunAsync(Games(1, 2, 3), [10, 11, 12]);
        Assert.Equal(3, trajectories.Count);
        for (int i = 0; i < 3; i++)
        {
            var t = trajectories[i];
            AssertLogProbsMatchTeacherForcing(model, t);
            Assert.Equal(i + 10, t.Seed);
            Assert.Equal(new[] { 1, 2, 3 }[i], t.Turns.Count);   // each game ends at its own limit (a random policy does not win)
            Assert.Equal(TrajectoryEnd.Done, t.End);
            Assert.Equal("lost", t.FinalInfo["outcome"]);
            // The first context is the rendered prompt (BOS + text); every turn's message is its tokens' text minus the stop string.
            Assert.Equal([CharTokenizer.BosId, .. Tok.Encode("guess 1-100\n> ", addSpecialTokens: false)], t.Turns[0].ContextIds!);
            for (int k = 0; k < t.Turns.Count; k++)
            {
                var turn = t.Turns[k];
                var text = Tok.Decode(turn.TokenIds!);
                var content = t.Messages[turn.MessageIndex].Content;
                Assert.True(text == content || text == content + "\n", $"'{text}' vs message '{content}'");
                // Later contexts: the newline the policy did not write (if it did not), the feedback line, the next "> ".
                if (k > 0)
                    Assert.Equal((Tok.Decode(t.Turns[k - 1].TokenIds!).EndsWith('\n') ? "" : "\n") + t.Messages[turn.MessageIndex - 1].Content + "\n> ",
                        Tok.Decode(turn.ContextIds!));
            }
        }
        // One engine call per turn over the live games; finished games drop out.
        Assert.Equal(Enumerable.Range(0, 3).Select(k => trajectories.Count(t => t.Turns.Count > k)), rollout.BatchSizes);
        Assert.Equal([3, 2, 1], rollout.BatchSizes);
    }

    [Fact]
    public async Task The_turn_limit_and_the_token_budget_end_trajectories()
    {
        using var model = Model();
        var engine = new RolloutEngine(model, Tok);
        var limited = await new MultiTurnRollout(engine, new MultiTurnOptions
        {
            Sampling = new SamplingOptions { MaxNewTokens = 5, Seed = 1, StopStrings = ["\n"] }, MaxTurns = 2, MaxTrajectoryTokens = 150,
        }).RunAsync(Games(7, 7, 7, 7), [0, 1, 2, 3]);
        Assert.All(limited, t => Assert.Equal((TrajectoryEnd.TurnLimit, 2, true), (t.End, t.Turns.Count, t.Truncated)));

        // Budget 18 = BOS + "guess 1-100\n> " (15) + 3 policy tokens: the first turn (6 tokens, no stop) is cut to 3.
        var rollout = new MultiTurnRollout(engine, new MultiTurnOptions
        {
            Sampling = new SamplingOptions { MaxNewTokens = 6, Seed = 2, StopStrings = [], StopAtEos = false }, MaxTurns = 4, MaxTrajectoryTokens = 18,
        });
        var cut = await rollout.RunAsync(Games(7, 7), [4, 5]);
        foreach (var t in cut)
        {
            Assert.Equal(TrajectoryEnd.TokenBudget, t.End);
            var turn = Assert.Single(t.Turns);
            Assert.Equal((3, 3), (turn.TokenIds!.Length, turn.LogProbs!.Length));
            Assert.Equal(18, TrajectorySequence.FromTokens(t).Length);
            AssertLogProbsMatchTeacherForcing(model, t);
        }

        // A budget the first prompt already fills plays no turn at all.
        var none = await new MultiTurnRollout(engine, new MultiTurnOptions { MaxTrajectoryTokens = 15 }).RunAsync(Games(7), [0]);
        Assert.Equal((TrajectoryEnd.TokenBudget, 0), (none[0].End, none[0].Turns.Count));
    }

    [Fact]
    public async Task Bad_arguments_and_a_renderer_that_rewrites_history_are_reported()
    {
        using var model = Model();
        var engine = new RolloutEngine(model, Tok);
        var rollout = new MultiTurnRollout(engine);
        var env = new GuessNumberEnvironment();
        await Assert.ThrowsAsync<ArgumentException>(() => rollout.RunAsync([env, env], [0, 1]));
        await Assert.ThrowsAsync<ArgumentException>(() => rollout.RunAsync([env], [0, 1]));
        Assert.Contains("samples per prompt 1", Assert.Throws<ArgumentException>(() =>
            new MultiTurnRollout(engine, new MultiTurnOptions { Sampling = new SamplingOptions { SamplesPerPrompt = 2 } })).Message);

        // This renderer numbers the turns, so an earlier prompt is not a prefix of a later one.
        ChatRenderer counting = ms => $"{ms.Count}:" + TranscriptRenderer.Plain(ms);
        var bad = new MultiTurnRollout(engine, new MultiTurnOptions { Sampling = new SamplingOptions { MaxNewTokens = 3, StopStrings = ["\n"] } }, counting);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => bad.RunAsync([new GuessNumberEnvironment()], [0]));
        Assert.Contains("the chat renderer must extend its earlier output", e.Message);
        Assert.Contains("differ at character 0", e.Message);
    }
}
