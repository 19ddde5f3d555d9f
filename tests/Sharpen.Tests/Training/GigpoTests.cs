using Sharpen.Algorithms;
using Sharpen.Data;
using Sharpen.Environments;
using Sharpen.Training.Rl;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>GiGPO's step-level advantage (each turn's return-to-go against the other turns taken from the same state) and the
/// state ids the trainer gives the turns, worked by hand on tiny trajectories.</summary>
public class GigpoTests
{
    // Three rows of 5 completion positions; −1 = not a policy token (environment text or padding).
    //   row 0: turn 0 at 0-1 (state 0, reward −0.5 at 1) | env at 2 | turn 1 at 3-4 (state 1, reward 1 at 4)
    //   row 1: turn 0 at 0-1 (state 0, reward 0)         | env at 2 | turn 1 at 3-4 (state 2, reward 0)
    //   row 2: turn 0 at 0   (state 0, reward 0)         | env at 1 | turn 1 at 2-3 (state 1, reward 0) | pad at 4
    static (Tensor Rewards, Tensor States, Tensor Mask) Rows() => (
        tensor(new float[] { 0, -0.5f, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }).view(3, 5),
        tensor(new long[] { 0, 0, -1, 1, 1, 0, 0, -1, 2, 2, 0, -1, 1, 1, -1 }).view(3, 5),
        tensor(new float[] { 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0 }).view(3, 5));

    static void Near(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 5);
    }

    [Fact]
    public void Step_advantage_is_the_return_to_go_minus_the_mean_over_turns_from_the_same_state()
    {
        using var scope = NewDisposeScope();
        var (rewards, states, mask) = Rows();
        var adv = AdvantageEstimators.StepAdvantages(rewards, states, mask);
        // Returns-to-go: row 0 turn 0 = −0.5 + 1 = 0.5, turn 1 = 1; rows 1 and 2: 0 everywhere.
        // State 0 (three turns, each counted once whatever its length): {0.5, 0, 0}, mean 1/6 → +1/3, −1/6, −1/6.
        // State 1: {1 (row 0), 0 (row 2)}, mean 1/2 → ±1/2. State 2 is met once → 0. Environment text and padding: 0.
        float third = 1f / 3, sixth = 1f / 6;
        Near(new[] { third, third, 0, 0.5f, 0.5f }, adv[0].data<float>().ToArray());
        Near(new[] { -sixth, -sixth, 0, 0, 0 }, adv[1].data<float>().ToArray());
        Near(new[] { -sixth, 0, -0.5f, -0.5f, 0 }, adv[2].data<float>().ToArray());
    }

    [Fact]
    public void Gigpo_adds_the_step_advantage_to_grpos_episode_advantage()
    {
        using var scope = NewDisposeScope();
        var (rewards, states, mask) = Rows();
        var returns = tensor(new float[] { 0.5f, 0, 0 });     // each row's return: the sum of its turn rewards
        var ctx = new AdvantageContext(returns, mask, 3, zeros_like(mask), 0, false, null, null, new MovingAverageBaseline(0.9), 1, 1,
            RewardScaling.Group, TokenRewards: rewards, TurnStates: states);
        var adv = AdvantageEstimators.Registry.Get("gigpo").Estimate(ctx).Advantages;
        // Episode (GRPO, one group of 3): mean 1/6, unbiased std √((1/9 + 1/36 + 1/36)/2) = √(1/12) = 0.2886751
        //   → Â = (1/3)/0.2886751 = 1.1547005 for row 0 and −(1/6)/0.2886751 = −0.5773503 for rows 1 and 2.
        Assert.Equal(1.1547005 + 1.0 / 3, adv[0, 0].item<float>(), 3);
        Assert.Equal(1.1547005 + 0.5, adv[0, 3].item<float>(), 3);
        Assert.Equal(-0.5773503, adv[1, 3].item<float>(), 3);              // state 2 met once: episode part only
        Assert.Equal(-0.5773503 - 0.5, adv[2, 2].item<float>(), 3);
        Assert.Equal(0, adv[0, 2].item<float>());                           // environment text
        // Without per-turn inputs (a single-turn batch) gigpo refuses with a clear message.
        var single = ctx with { TokenRewards = null, TurnStates = null };
        Assert.Contains("multi-turn", Assert.Throws<ArgumentException>(() => AdvantageEstimators.Registry.Get("gigpo").Estimate(single)).Message);
    }

    // A trajectory whose turns answer the given observations: messages user(obs0), assistant, user(obs1), assistant, ...
    static Trajectory Game(params string[] observations) => new()
    {
        Environment = "guess-number", Seed = 0, End = TrajectoryEnd.Done,
        Messages = observations.SelectMany(o => new[] { new ChatMessage("user", o), new ChatMessage("assistant", "5") }).ToArray(),
        Turns = observations.Select((_, k) => new TrajectoryTurn(1 + 2 * k, 0, new Dictionary<string, string>())
            { ContextIds = k == 0 ? [1, 2] : [3], TokenIds = [4, 5], LogProbs = [-1f, -1f] }).ToArray(),
    };

    [Fact]
    public void State_ids_are_shared_by_turns_with_the_same_index_after_the_same_observation()
    {
        using var scope = NewDisposeScope();
        // Turn 1 after "lower 1-4" in games a and b: one state; "higher 6-9" (game c) and the same text at turn 2 (game b):
        // different states. Turn 0 after "guess 1-9": one state for all three.
        var a = Game("guess 1-9", "lower 1-4");
        var b = Game("guess 1-9", "lower 1-4", "higher 6-9");
        var c = Game("guess 1-9", "higher 6-9");
        var batch = MultiTurnBatch.Build([a, b, c], padId: 0);
        var ids = MultiTurnBatch.StateIds([a, b, c], batch.TurnIds, batch.Seq.CompletionMask);
        // Completion layout per row: turn 0 [4, 5] | env [3] | turn 1 [4, 5] | env [3] | turn 2 [4, 5] (padding after).
        // Ids are given in order of first appearance: (0, guess 1-9) = 0, (1, lower 1-4) = 1, (2, higher 6-9) = 2, (1, higher 6-9) = 3.
        Assert.Equal(new long[] { 0, 0, -1, 1, 1, -1, -1, -1 }, ids[0].data<long>().ToArray());
        Assert.Equal(new long[] { 0, 0, -1, 1, 1, -1, 2, 2 }, ids[1].data<long>().ToArray());
        Assert.Equal(new long[] { 0, 0, -1, 3, 3, -1, -1, -1 }, ids[2].data<long>().ToArray());
    }
}
