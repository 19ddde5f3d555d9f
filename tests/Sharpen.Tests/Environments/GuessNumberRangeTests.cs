using Sharpen.Environments;

namespace Sharpen.Tests.Environments;

/// <summary>Guess the number: every number of [Low, High] can be the secret, and <c>show_range</c> feedback states the
/// interval that the answers so far leave.</summary>
public class GuessNumberRangeTests
{
    [Fact]
    public void Secrets_cover_the_whole_inclusive_range()
    {
        var env = new GuessNumberEnvironment(new GuessNumberOptions { Low = 1, High = 7, MaxTurns = 3 });
        var secrets = Enumerable.Range(0, 300).Select(seed => { env.Reset(seed); return env.Secret; }).ToHashSet();
        Assert.Equal(Enumerable.Range(1, 7), secrets.Order());   // 7 (High) included; nothing outside
    }

    [Fact]
    public void Show_range_feedback_narrows_the_interval_and_ignores_out_of_interval_guesses()
    {
        var env = new GuessNumberEnvironment(new GuessNumberOptions { Low = 1, High = 15, MaxTurns = 6, ShowRange = true });
        int seed = Enumerable.Range(0, 500).First(s => { env.Reset(s); return env.Secret == 6; });
        Assert.Equal("guess 1-15", Assert.Single(env.Reset(seed)).Content);
        // Secret 6: 8 → lower (1-7); 3 → higher (4-7); 12 (already excluded) → lower, interval unchanged; 5 → higher (6-7).
        Assert.Equal("lower 1-7", env.Step("8").Observation[0].Content);
        Assert.Equal("higher 4-7", env.Step("3").Observation[0].Content);
        Assert.Equal("lower 4-7", env.Step("12").Observation[0].Content);
        Assert.Equal("higher 6-7", env.Step("5").Observation[0].Content);
        var win = env.Step("6");
        Assert.Equal(("correct", 1.0, true), (win.Observation[0].Content, win.Reward, win.Done));
        // Without show_range the feedback is the bare word.
        var bare = new GuessNumberEnvironment(new GuessNumberOptions { Low = 1, High = 15, MaxTurns = 6 });
        bare.Reset(seed);
        Assert.Equal("lower", bare.Step("8").Observation[0].Content);
    }

    [Fact]
    public void Illegal_reward_charges_guesses_the_feedback_ruled_out_and_non_numbers_and_flags_them_illegal()
    {
        var env = new GuessNumberEnvironment(new GuessNumberOptions { Low = 1, High = 15, MaxTurns = 4, ShowRange = true, IllegalReward = -0.5 });
        int seed = Enumerable.Range(0, 500).First(s => { env.Reset(s); return env.Secret == 6; });
        env.Reset(seed);
        // Secret 6. Turn 1: 8 is legal (in 1-15) → lower 1-7, reward 0. Turn 2: 8 again is a repeat, outside 1-7 → −0.5,
        // feedback as before. Turn 3: "x" is not a number → invalid, −0.5. Turn 4 (the last): 6 wins, reward 1.
        var t1 = env.Step("8");
        Assert.Equal(("lower 1-7", 0.0, false, "true"), (t1.Observation[0].Content, t1.Reward, t1.Done, t1.Info["legal"]));
        var t2 = env.Step("8");
        Assert.Equal(("lower 1-7", -0.5, false, "false", "true"), (t2.Observation[0].Content, t2.Reward, t2.Done, t2.Info["legal"], t2.Info["valid"]));
        var t3 = env.Step("x");
        Assert.Equal(("invalid", -0.5, false, "false"), (t3.Observation[0].Content, t3.Reward, t3.Done, t3.Info["legal"]));
        var t4 = env.Step("6");
        Assert.Equal(("correct", 1.0, true, "won"), (t4.Observation[0].Content, t4.Reward, t4.Done, t4.Info["outcome"]));
        // The same moves ending in an illegal last guess (12, outside 1-7): lost, and charged −0.5. Return 0 − 0.5 − 0.5 − 0.5.
        env.Reset(seed);
        double ret = new[] { "8", "8", "x", "12" }.Sum(a => env.Step(a).Reward);
        Assert.Equal(-1.5, ret, 12);
        // Default (0): the rule only flags; rewards stay 0 for every guess that does not win.
        var free = new GuessNumberEnvironment(new GuessNumberOptions { Low = 1, High = 15, MaxTurns = 4, ShowRange = true });
        free.Reset(seed);
        Assert.Equal(new[] { 0.0, 0.0 }, new[] { free.Step("8").Reward, free.Step("9").Reward });
        Assert.Throws<ArgumentOutOfRangeException>(() => new GuessNumberEnvironment(new GuessNumberOptions { IllegalReward = 0.5 }));
    }

    [Fact]
    public void Progress_reward_pays_the_bits_each_answered_guess_gains_and_nothing_for_an_illegal_or_last_wrong_guess()
    {
        var options = new GuessNumberOptions { Low = 1, High = 15, MaxTurns = 4, ShowRange = true, IllegalReward = -0.5, ProgressReward = 0.5 };
        var env = new GuessNumberEnvironment(options);
        int seed = Enumerable.Range(0, 500).First(s => { env.Reset(s); return env.Secret == 6; });
        env.Reset(seed);
        // Secret 6 in 1-15 (15 numbers). 8 → lower 1-7: 15 → 7 numbers, 0.5·log2(15/7). 12 (ruled out) → −0.5, the interval
        // unchanged (0 bits). 4 → higher 5-7: 7 → 3, 0.5·log2(7/3). 6 wins: 3 → 1, 1 + 0.5·log2(3).
        var rewards = new[] { "8", "12", "4", "6" }.Select(a => env.Step(a).Reward).ToArray();
        Assert.Equal(0.5 * Math.Log(15.0 / 7) / Math.Log(2), rewards[0], 12);
        Assert.Equal(-0.5, rewards[1], 12);
        Assert.Equal(0.5 * Math.Log(7.0 / 3) / Math.Log(2), rewards[2], 12);
        Assert.Equal(1 + 0.5 * Math.Log(3) / Math.Log(2), rewards[3], 12);
        // The three answered guesses' bits sum to log2(15 / 1): 0.5·3.9069 + 1 − 0.5.
        Assert.Equal(0.5 * 3.906890595608519 + 1 - 0.5, rewards.Sum(), 12);
        // A lost game: 1 → higher 2-15 (15 → 14), 15 → lower 2-14 (14 → 13), 2 → higher 3-14 (13 → 12), then 14 on the last
        // turn is wrong: lost, and its feedback cannot be used, so it earns nothing.
        env.Reset(seed);
        var lost = new[] { "1", "15", "2", "14" }.Select(a => env.Step(a)).ToArray();
        Assert.Equal(new[] { 15.0 / 14, 14.0 / 13, 13.0 / 12 }.Select(r => 0.5 * Math.Log(r) / Math.Log(2)), lost.Take(3).Select(t => t.Reward), new ToleranceComparer(1e-12));
        Assert.Equal((0.0, true, "lost"), (lost[3].Reward, lost[3].Done, lost[3].Info["outcome"]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new GuessNumberEnvironment(options with { ProgressReward = -0.1 }));
    }

    sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance;
        public int GetHashCode(double obj) => 0;
    }
}
