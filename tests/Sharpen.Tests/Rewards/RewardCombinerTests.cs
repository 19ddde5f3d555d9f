using Sharpen.Rewards;
using Sharpen.Tasks;

namespace Sharpen.Tests.Rewards;

public class RewardCombinerTests
{
    static RewardContext Ctx(string completion, params (string, string)[] fields) =>
        new("p", completion, fields.ToDictionary(f => f.Item1, f => f.Item2), completion.Length);

    [Fact]
    public async Task Weighted_sum_skips_not_applicable_scores()
    {
        var len = new DelegateReward("len", c => c.Completion.Length);
        var hasX = new DelegateReward("has_x", c => c.Completion.Contains('x') ? 1.0 : null);
        var r = await RewardCombiner.ScoreAsync([new(len, 0.5), new(hasX, 2.0)], [Ctx("ab"), Ctx("xyz"), Ctx("")]);
        Assert.Equal([0.5 * 2, 0.5 * 3 + 2.0, 0.0], r.Total);
        Assert.Equal((2 + 3 + 0) / 3.0, r.MeanByFunction["len"], 12);
        Assert.Equal(1.0, r.MeanByFunction["has_x"]);   // only the one completion it applied to
    }

    [Fact]
    public async Task The_task_verifier_reads_ground_truth_from_the_row()
    {
        var task = TaskRegistry.Create("countdown");
        var p = ((CountdownTask)task).Create([3, 5, 7], 22);
        var fields = p.Fields.Select(kv => (kv.Key, kv.Value)).Append(("id", p.Id)).Append(("answer", p.Answer)).ToArray();
        var r = await new TaskReward(task).ScoreAsync([
            new RewardContext(p.Prompt, " 3*5=15, 15+7=22. answer: 3*5+7", p.Fields.Concat([new("id", p.Id)]).ToDictionary(), 10),
            new RewardContext(p.Prompt, " answer: 3*5", fields.ToDictionary(f => f.Item1, f => f.Item2), 5),
        ]);
        Assert.Equal([1.0, 0.0], r);
    }

    [Fact]
    public async Task A_reward_returning_nan_is_an_error_naming_it()
    {
        var bad = new DelegateReward("broken", _ => double.NaN);
        var e = await Assert.ThrowsAsync<RewardValueException>(async () => await RewardCombiner.ScoreAsync([new(bad)], [Ctx("a")]));
        Assert.Contains("broken", e.Message);
    }
}
