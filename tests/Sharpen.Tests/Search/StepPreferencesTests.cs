using Sharpen.Search;

namespace Sharpen.Tests.Search;

/// <summary>Step-level preference pairs from sibling steps of a search tree, and arg-max-Q action choice.</summary>
public class StepPreferencesTests
{
    //        root
    //       /    \
    //   0 "a"   1 "b"            values 0.8, 0.2
    //   /  |  \
    // 2"c" 3"d" 4"c"             values 0.9, 0.1, 0.3 (4 repeats 2's text)
    static readonly SearchNode[] Tree =
    [
        new(0, -1, "a", 1, -1, 0, 1, 0.8, false, null),
        new(1, -1, "b", 1, -1, 0, 1, 0.2, false, null),
        new(2, 0, "c", 1, -1, 1, 1, 0.9, true, "c"),
        new(3, 0, "d", 1, -1, 0, 1, 0.1, true, "d"),
        new(4, 0, "c", 1, -1, 0, 1, 0.3, true, "c"),
    ];

    static double[] Values => [.. Tree.Select(n => n.Value)];

    [Fact]
    public void Siblings_with_different_values_become_step_pairs_after_their_common_prefix()
    {
        var pairs = StepPreferences.SiblingPairs(Tree, Values);
        // Under the root: a ≻ b. Under "a": c(2) ≻ d, c(4) ≻ d; 2 vs 4 have the same text and make no pair.
        Assert.Equal(3, pairs.Count);
        Assert.Equal(new StepPair(-1, "", "a", "b", 0.8, 0.2), pairs[0]);
        Assert.Equal(new StepPair(0, "a", "c", "d", 0.9, 0.1), pairs[1]);
        Assert.Equal(new StepPair(0, "a", "c", "d", 0.3, 0.1), pairs[2]);
        // A margin of 0.5 keeps the gaps 0.6 and 0.8 and drops 0.2.
        var wide = StepPreferences.SiblingPairs(Tree, Values, minMargin: 0.5);
        Assert.Equal([0.6, 0.8], wide.Select(p => Math.Round(p.ChosenValue - p.RejectedValue, 6)));
        // NaN values (no verdict below a node) make no pair.
        var unknown = Values; unknown[1] = double.NaN;
        Assert.DoesNotContain(StepPreferences.SiblingPairs(Tree, unknown), p => p.Rejected == "b");
    }

    [Fact]
    public void Q_values_are_beta_log_ratios_and_the_argmax_is_taken()
    {
        // β = 0.5: Q = 0.5·([−1, −2, −3] − [−1.5, −1, −3.5]) = [0.25, −0.5, 0.25]; ties go to the first.
        var q = StepPreferences.QValues([-1, -2, -3], [-1.5, -1, -3.5], 0.5);
        Assert.Equal([0.25, -0.5, 0.25], q);
        Assert.Equal(0, StepPreferences.ArgMax(q));
        Assert.Equal(2, StepPreferences.ArgMax([0.1, 0.2, 0.3]));
    }

    [Fact]
    public void A_trace_out_of_order_is_refused()
    {
        var bad = new[] { Tree[2] with { Id = 0, Parent = 1 }, Tree[1] with { Id = 1 } };
        Assert.Throws<ArgumentException>(() => StepPreferences.SiblingPairs(bad, [0.5, 0.5]));
    }
}
