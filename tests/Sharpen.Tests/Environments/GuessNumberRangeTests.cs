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
}
