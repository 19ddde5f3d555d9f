using Sharpen.Rewards;

namespace Sharpen.Tests.Rewards;

/// <summary>Scores are checked where they enter training: NaN always fails, ±Inf and |r| &gt; MaxAbs fail unless clipped.</summary>
public class RewardBoundaryTests
{
    static readonly RewardContext[] Batch = [new("p", "a", new Dictionary<string, string>(), 1), new("p", "b", new Dictionary<string, string>(), 1)];

    static WeightedReward Fixed(double second, double weight = 1) => new(new DelegateReward("fixed", c => c.Completion == "a" ? 0.5 : second), weight);

    [Theory]
    [InlineData(double.NaN, "NaN")]
    [InlineData(double.PositiveInfinity, "Infinity")]
    [InlineData(1e39, "1E+39")]
    [InlineData(-2e6, "-2000000")]
    public async Task Out_of_range_scores_are_errors_naming_the_function_and_completion(double score, string shown)
    {
        var e = await Assert.ThrowsAsync<RewardValueException>(async () => await RewardCombiner.ScoreAsync([Fixed(score)], Batch));
        Assert.Contains("reward 'fixed' returned " + shown + " for completion 1", e.Message);
    }

    [Fact]
    public async Task The_bound_is_configurable_and_inclusive()
    {
        var ok = await RewardCombiner.ScoreAsync([Fixed(1e6)], Batch);          // exactly the default bound
        Assert.Equal([0.5, 1e6], ok.Total);
        await Assert.ThrowsAsync<RewardValueException>(async () => await RewardCombiner.ScoreAsync([Fixed(11) with { MaxAbs = 10 }], Batch));
    }

    [Fact]
    public async Task Clip_bounds_scores_and_infinities_but_not_nan()
    {
        var clip = new RewardClip(-1, 1);
        var r = await RewardCombiner.ScoreAsync([Fixed(1e39, weight: 2) with { Clip = clip }], Batch);
        Assert.Equal([1.0, 2.0], r.Total);                                      // 2·0.5 and 2·clip(1e39) = 2·1
        Assert.Equal(0.75, r.MeanByFunction["fixed"]);                           // mean of the clipped scores (0.5, 1)
        var neg = await RewardCombiner.ScoreAsync([Fixed(double.NegativeInfinity) with { Clip = clip }], Batch);
        Assert.Equal(-1.0, neg.Total[1]);
        await Assert.ThrowsAsync<RewardValueException>(async () => await RewardCombiner.ScoreAsync([Fixed(double.NaN) with { Clip = clip }], Batch));
    }

    [Fact]
    public async Task A_server_answering_1e999_is_named_with_its_url()
    {
        using var server = new RewardServer((_, _) => (200, "{\"rewards\": [0.5, 1e999]}"));
        using var http = new HttpReward(new Uri(server.Url), "judge", retries: 0);
        var e = await Assert.ThrowsAsync<RewardValueException>(async () => await RewardCombiner.ScoreAsync([new WeightedReward(http)], Batch));
        Assert.Contains($"reward 'judge' (server {server.Url}) returned Infinity for completion 1", e.Message);
    }
}
