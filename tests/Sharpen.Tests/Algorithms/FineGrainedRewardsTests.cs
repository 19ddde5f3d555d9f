using Sharpen.Algorithms;
using Sharpen.Rewards;
using Sharpen.Training.Rl;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

/// <summary>FGAIF segment rewards placed as dense token rewards, and PCPG's windowed smoothing, worked by hand.</summary>
public class FineGrainedRewardsTests
{
    [Fact]
    public void Segment_rewards_land_on_each_segments_last_token()
    {
        using var scope = NewDisposeScope();
        // Row 0: segments end at tokens 1 and 4 with 0.5 and −1. Row 1: one segment ending at 2 with 2, a padding segment.
        var placed = FineGrainedRewards.PlaceSegmentRewards(Mat(2, 0.5f, -1, 2, 7), tensor(new long[] { 1, 4, 2, 0 }).view(2, 2),
            Mat(2, 1, 1, 1, 0), Mat(2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0));
        Close([0, 0.5, 0, 0, -1, 0, 0, 2, 0, 0], placed);
        Assert.Contains("outside", Assert.Throws<ArgumentException>(() =>
            FineGrainedRewards.PlaceSegmentRewards(Mat(1, 1), tensor(new long[] { 5 }).view(1, 1), Mat(1, 1), ones(1, 5))).Message);
    }

    [Fact]
    public void Several_reward_functions_combine_by_their_weights()
    {
        using var scope = NewDisposeScope();
        // 1·[1, 0] + 0.5·[0.5, 2] = [1.25, 1].
        Close([1.25, 1], FineGrainedRewards.Combine([Mat(1, 1, 0), Mat(1, 0.5f, 2)], [1.0, 0.5]));
    }

    [Fact]
    public void Pcpg_smoothing_spreads_each_reward_over_its_window_with_zero_padding()
    {
        using var scope = NewDisposeScope();
        // Uniform w = 1 on [0, 0, 3, 0, 0, 6] with the last token padding: 6 is masked out; 3 spreads as 1 over tokens 1..3.
        Close([0, 1, 1, 1, 0, 0], FineGrainedRewards.Smooth(Mat(1, 0, 0, 3, 0, 0, 6), Mat(1, 1, 1, 1, 1, 1, 0), FineGrainedRewards.UniformKernel(1)));
        // Kernel [0.25, 0.5, 0.25] on [0, 4, 0, 0] → [1, 2, 1, 0]; at the edge [4, 0] → [2, 1] (the outside counts as 0).
        Close([1, 2, 1, 0, 2, 1, 0, 0], FineGrainedRewards.Smooth(Mat(2, 0, 4, 0, 0, 4, 0, 0, 0), ones(2, 4), [0.25, 0.5, 0.25]));
        Assert.Throws<ArgumentException>(() => FineGrainedRewards.Smooth(Mat(1, 1, 2), ones(1, 2), [0.5, 0.5]));
    }

    [Fact]
    public void Segment_end_characters_map_to_the_token_that_completes_them()
    {
        int[] ends = [2, 5, 5, 9];
        Assert.Equal(0, FineGrainedRewards.TokenIndexOfCharEnd(ends, 1));
        Assert.Equal(1, FineGrainedRewards.TokenIndexOfCharEnd(ends, 5));
        Assert.Equal(3, FineGrainedRewards.TokenIndexOfCharEnd(ends, 6));
        Assert.Equal(3, FineGrainedRewards.TokenIndexOfCharEnd(ends, 12));
    }

    [Fact]
    public void Text_is_cut_into_sentences_or_steps()
    {
        const string text = "First step. Then 3.5+4=7.5! ok\nanswer: 7";
        var s = TextSegments.Split(text, SegmentUnit.Sentence).Select(x => text[x.Start..x.End]).ToArray();
        Assert.Equal(["First step.", "Then 3.5+4=7.5!", "ok", "answer: 7"], s);
        const string steps = "a = 1\n\n  b = 2 \nc";
        Assert.Equal(["a = 1", "b = 2", "c"], TextSegments.Split(steps, SegmentUnit.Step).Select(x => steps[x.Start..x.End]).ToArray());
        Assert.Empty(TextSegments.Split("  ", SegmentUnit.Step));
    }

    [Fact]
    public void Fine_grained_options_need_a_critic_and_smoothing_needs_fine_grained()
    {
        Assert.Contains("critic", Assert.Throws<ArgumentException>(() => (RlOptions.For("grpo") with { FineGrained = SegmentUnit.Sentence }).Validate()).Message);
        Assert.Contains("rl.fine_grained", Assert.Throws<ArgumentException>(() => (RlOptions.For("ppo") with { SmoothWindow = 2 }).Validate()).Message);
        (RlOptions.For("ppo") with { FineGrained = SegmentUnit.Step, SmoothWindow = 1 }).Validate();
    }
}
