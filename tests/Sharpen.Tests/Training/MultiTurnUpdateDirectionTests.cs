using Sharpen.Algorithms;
using Sharpen.Data;
using Sharpen.Environments;
using Sharpen.Models;
using Sharpen.Tests.Models;
using Sharpen.Training;
using Sharpen.Training.Rl;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>
/// One policy update of the multi-turn path (trajectories → rows → the algorithm's advantages → the trainer's actor update)
/// on a fixed batch, with plain SGD and a small learning rate, on a real tiny model: each first-turn action whose summed
/// advantage is positive must become more likely, each with a negative sum less likely, in that order; and the second
/// turn's actions likewise. A sign or alignment error anywhere on the path (masks, returns, token positions) breaks it.
/// </summary>
public class MultiTurnUpdateDirectionTests
{
    // Token ids of the tiny vocabulary (13 ids; 0 pad, 1 bos, 2 eos): the first observation "q" = 5, first-turn actions
    // 6, 7, 8; the second observation "o" = 9; second-turn actions 10 (after which the game is won) and 11 (lost).
    const int Q = 5, O = 9, Win = 10, Lose = 11;

    // One group of 8 two-turn games: first actions 6, 6, 6, 7, 7, 7, 8, 8; returns 1, 1, 1, 0, 0, 1, 0, 0 (the second
    // action 10 wins, 11 loses). Turn 1's reward is 0, turn 2's is the return.
    static readonly int[] First = [6, 6, 6, 7, 7, 7, 8, 8];
    static readonly int[] Returns = [1, 1, 1, 0, 0, 1, 0, 0];

    static Trajectory Game(int first, int won) => new()
    {
        Environment = "hand", Seed = 0, End = TrajectoryEnd.Done,
        Messages = [new ChatMessage("user", "q"), new ChatMessage("assistant", $"a{first}"), new ChatMessage("user", "o"), new ChatMessage("assistant", won == 1 ? "w" : "l")],
        Turns =
        [
            new TrajectoryTurn(1, 0, new Dictionary<string, string>()) { ContextIds = [1, Q], TokenIds = [first], LogProbs = [0f] },
            new TrajectoryTurn(3, won, new Dictionary<string, string>()) { ContextIds = [O], TokenIds = [won == 1 ? Win : Lose], LogProbs = [0f] },
        ],
    };

    // log π(token | context) for each token, from one forward pass of the policy over the context.
    static double[] LogProbs(CausalLM model, long[] context, int[] tokens)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = tensor(context).view(1, -1);
        var logits = model.Forward(ids, ones_like(ids)).Logits[0, -1];
        var lp = logits.log_softmax(-1);
        return tokens.Select(t => (double)lp[t].item<float>()).ToArray();
    }

    [Theory]
    [InlineData("gigpo")]
    [InlineData("grpo")]
    public void One_sgd_update_moves_each_actions_log_prob_the_way_its_summed_advantage_points(string algorithm)
    {
        using var scope = NewDisposeScope();
        using var model = new CausalLM(CausalLMTests.Tiny(), seed: 3);
        var games = First.Select((a, i) => Game(a, Returns[i])).ToList();
        // Summed episode advantage of each first action (group mean 1/2): 6 → 3·(+1/2) = +1.5, 7 → −1/2 −1/2 +1/2 = −0.5,
        // 8 → −1; GiGPO's step advantage at the shared first state is the same return-to-go minus its mean, so the same signs.
        var options = RlOptions.For(algorithm) with
        {
            Beta = 0, MiniBatchSize = 0, Epochs = 1, WarmupSteps = 0, MaxGradNorm = 0, SamplesPerPrompt = 8, MicroBatchSize = 8,
            Aggregation = LossAggregation.SeqMeanTokenSum,
        };
        var spec = RlAlgorithms.Get(algorithm);
        var before = LogProbs(model, [1, Q], [6, 7, 8]);
        var winBefore = LogProbs(model, [1, Q, 6, O], [Win])[0];
        var loseBefore = LogProbs(model, [1, Q, 8, O], [Lose])[0];

        var mt = MultiTurnBatch.Build(games, padId: 0);
        // The rows' old log-probs are the model's own (an on-policy batch): the first forward of the update takes them.
        var states = MultiTurnBatch.StateIds(games, mt.TurnIds, mt.Seq.CompletionMask);
        var ctx = new AdvantageContext(mt.Returns, mt.Seq.CompletionMask, 8, zeros_like(mt.Seq.CompletionMask), 0, false, null, null,
            new MovingAverageBaseline(0.9), 1, 1, options.EffectiveScaleRewards, TokenRewards: mt.TurnRewards, TurnStates: states);
        var est = spec.Estimator.Estimate(ctx);
        using var sgd = optim.SGD(model.TrainableParameters(), 1e-2);
        var folded = new FoldedOldLogProbs(mt.OldLogProbs, null);
        new ActorUpdate(model, sgd, options, spec, new NonFiniteGuard("test"))
            .Run(mt.Seq, null, est.Advantages, est.SequenceAdvantages, null, 0, 0, new UpdateMetrics(), folded: folded);

        var after = LogProbs(model, [1, Q], [6, 7, 8]);
        var d = after.Zip(before, (x, y) => x - y).ToArray();
        Assert.True(d[0] > 0, $"action 6 (summed advantage +1.5): Δlog π = {d[0]:E3}, expected > 0");
        Assert.True(d[1] < 0, $"action 7 (−0.5): Δlog π = {d[1]:E3}, expected < 0");
        Assert.True(d[2] < 0, $"action 8 (−1): Δlog π = {d[2]:E3}, expected < 0");
        Assert.True(d[2] < d[1], $"action 8 (−1) must fall more than action 7 (−0.5): {d[2]:E3} vs {d[1]:E3}");
        // Second turn: after action 6 every game played 10 and won (positive advantage); after 8 every game played 11 and lost.
        var winAfter = LogProbs(model, [1, Q, 6, O], [Win])[0];
        var loseAfter = LogProbs(model, [1, Q, 8, O], [Lose])[0];
        Assert.True(winAfter > winBefore, $"winning second action after 6: {winBefore:F6} → {winAfter:F6}, expected up");
        Assert.True(loseAfter < loseBefore, $"losing second action after 8: {loseBefore:F6} → {loseAfter:F6}, expected down");
    }
}
