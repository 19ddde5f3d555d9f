using Sharpen.Algorithms;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Algorithms;

public class LossAggregatorTests
{
    // loss [[1,2,3],[4,5,6]], mask [[1,1,0],[1,0,0]]: masked sum = 1+2+4 = 7, tokens = 3, sequences = 2.
    static Tensor Loss() => Mat(2, 1, 2, 3, 4, 5, 6);
    static Tensor Mask() => Mat(2, 1, 1, 0, 1, 0, 0);

    [Theory]
    [InlineData(LossAggregation.TokenMean, 1.0, 7.0 / 3)]               // 7 / 3 tokens
    [InlineData(LossAggregation.SeqMeanTokenMean, 1.0, 2.75)]           // ((1+2)/2 + 4/1) / 2 = (1.5 + 4) / 2
    [InlineData(LossAggregation.SeqMeanTokenSum, 1.0, 3.5)]             // 7 / 2 sequences
    [InlineData(LossAggregation.SeqMeanTokenSumNorm, 3.0, 7.0 / 6)]     // 7 / (2 sequences · 3)
    public void Each_mode_with_the_batch_own_counts(LossAggregation mode, double norm, double expected)
    {
        using var scope = NewDisposeScope();
        var got = LossAggregator.Aggregate(Loss(), Mask(), new Aggregation(mode, NormConstant: norm));
        Close(expected, got.item<float>());
    }

    [Theory]
    [InlineData(LossAggregation.TokenMean, 0.5)]                        // 7 / GlobalTokens 14
    [InlineData(LossAggregation.SeqMeanTokenMean, 1.375)]               // 5.5 / GlobalSequences 4
    [InlineData(LossAggregation.SeqMeanTokenSum, 1.75)]                 // 7 / 4
    [InlineData(LossAggregation.SeqMeanTokenSumNorm, 0.4375)]           // 7 / (4 · 4)
    public void Global_counts_replace_the_batch_counts(LossAggregation mode, double expected)
    {
        using var scope = NewDisposeScope();
        var got = LossAggregator.Aggregate(Loss(), Mask(), new Aggregation(mode, GlobalTokens: 14, GlobalSequences: 4, NormConstant: 4));
        Close(expected, got.item<float>());
    }

    [Theory]
    [InlineData(LossAggregation.TokenMean)]
    [InlineData(LossAggregation.SeqMeanTokenMean)]
    [InlineData(LossAggregation.SeqMeanTokenSum)]
    [InlineData(LossAggregation.SeqMeanTokenSumNorm)]
    public void Two_micro_batches_with_global_counts_equal_the_whole_batch_in_value_and_gradient(LossAggregation mode)
    {
        using var scope = NewDisposeScope();
        float[] values = [0.5f, -1f, 2f, 3f, 1.5f, 0.25f, -2f, 4f, 1f, 0.75f, -0.5f, 2.5f];
        var mask = Mat(4, 1, 1, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1);           // lengths 3, 2, 1, 3: 9 tokens, 4 sequences
        var agg = new Aggregation(mode, GlobalTokens: 9, GlobalSequences: 4, NormConstant: 3);

        var whole = Leaf(4, values);
        var full = LossAggregator.Aggregate(whole, mask, agg);
        full.backward();

        var split = Leaf(4, values);
        var first = LossAggregator.Aggregate(split[0..2], mask[0..2], agg);
        var second = LossAggregator.Aggregate(split[2..4], mask[2..4], agg);
        first.backward();
        second.backward();

        Close(full.item<float>(), first.item<float>() + second.item<float>());
        Close(Values(whole.grad!).Select(v => (double)v).ToArray(), split.grad!);
        // The gradient is zero at padding whatever the mode.
        Assert.Equal(0f, Values(whole.grad!)[5]);
    }

    [Fact]
    public void A_batch_without_real_tokens_gives_zero_not_nan()
    {
        using var scope = NewDisposeScope();
        foreach (var mode in Enum.GetValues<LossAggregation>())
            Assert.Equal(0f, LossAggregator.Aggregate(Loss(), zeros(2, 3), new Aggregation(mode)).item<float>());
    }

    [Fact]
    public void Mismatched_shapes_and_non_positive_counts_are_rejected()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentException>(() => LossAggregator.Aggregate(Loss(), zeros(2, 4), new Aggregation()));
        Assert.Throws<ArgumentOutOfRangeException>(() => LossAggregator.Aggregate(Loss(), Mask(), new Aggregation(GlobalTokens: 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => LossAggregator.Aggregate(Loss(), Mask(), new Aggregation(NormConstant: -1)));
    }
}
