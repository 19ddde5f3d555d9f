using Sharpen.Data;
using Sharpen.Rewards;
using Sharpen.Tests.Training;

namespace Sharpen.Tests.Rewards;

/// <summary>The judge's prompts and parsers, the order-swap combination, PRM-Lessons' consensus filter and FLR's combination, by hand.</summary>
public class JudgeProtocolTests
{
    [Theory]
    [InlineData("A is clearer.\nVerdict: A", PairVerdict.First)]
    [InlineData("verdict: b", PairVerdict.Second)]
    [InlineData("Verdict: **B**", PairVerdict.Second)]
    [InlineData("Verdict: tie", PairVerdict.Tie)]
    [InlineData("First I thought Verdict: A, but no.\nVerdict: B", PairVerdict.Second)]   // the last verdict line counts
    [InlineData("Both are fine.", PairVerdict.Unparsed)]
    [InlineData("Verdict: C", PairVerdict.Unparsed)]
    [InlineData("", PairVerdict.Unparsed)]
    public void Pairwise_replies_parse_to_their_last_verdict_or_the_failure_value(string reply, PairVerdict expected) =>
        Assert.Equal(expected, JudgeProtocol.ParsePairwise(reply));

    [Fact]
    public void Swapped_orders_combine_into_a_preference_and_a_position_biased_judge_gives_a_half()
    {
        // First shown as A wins, and wins again when shown as B: certain.
        Assert.Equal(1.0, JudgeProtocol.CombineSwapped(PairVerdict.First, PairVerdict.Second));
        Assert.Equal(0.0, JudgeProtocol.CombineSwapped(PairVerdict.Second, PairVerdict.First));
        // Always "A": each answer wins once: ½.
        Assert.Equal(0.5, JudgeProtocol.CombineSwapped(PairVerdict.First, PairVerdict.First));
        Assert.Equal(0.5, JudgeProtocol.CombineSwapped(PairVerdict.Second, PairVerdict.Second));
        // A win and a tie: (1 + ½)/2.
        Assert.Equal(0.75, JudgeProtocol.CombineSwapped(PairVerdict.First, PairVerdict.Tie));
        Assert.Equal(0.25, JudgeProtocol.CombineSwapped(PairVerdict.Tie, PairVerdict.First));
        Assert.Null(JudgeProtocol.CombineSwapped(PairVerdict.First, PairVerdict.Unparsed));
        Assert.Null(JudgeProtocol.Single(PairVerdict.Unparsed));
    }

    [Theory]
    [InlineData("Score: 7", 1, 10, 6.0 / 9)]
    [InlineData("score = 10", 1, 10, 1.0)]
    [InlineData("Good.\nScore: 1", 1, 10, 0.0)]
    [InlineData("Score: 3\nOn reflection, Score: 4", 0, 4, 1.0)]
    [InlineData("Score: 2.5", 0, 5, 0.5)]
    public void Pointwise_scores_map_onto_zero_one(string reply, int min, int max, double expected) =>
        Assert.Equal(expected, JudgeProtocol.ParsePointwise(reply, min, max)!.Value, 12);

    [Theory]
    [InlineData("Score: 11")]   // off the scale: a failure, not clipped
    [InlineData("Score: 0")]
    [InlineData("I like it")]
    public void Pointwise_replies_off_the_scale_or_without_a_score_are_null(string reply) =>
        Assert.Null(JudgeProtocol.ParsePointwise(reply, 1, 10));

    [Fact]
    public void Step_labels_parse_one_sign_per_step_and_a_wrong_count_is_null()
    {
        Assert.Equal([true, true, false], JudgeProtocol.ParseStepLabels("Step 3 is wrong.\nSteps: + + -", 3)!);
        Assert.Equal([false, true], JudgeProtocol.ParseStepLabels("Steps: −,+", 2)!);
        Assert.Null(JudgeProtocol.ParseStepLabels("Steps: + +", 3));
        Assert.Null(JudgeProtocol.ParseStepLabels("all good", 1));
    }

    [Fact]
    public void Prompts_carry_the_answers_in_order_and_the_reference_when_given()
    {
        var p = JudgeProtocol.PairwisePrompt("2+2?", "4", "5", reference: "four");
        Assert.True(p.IndexOf("Answer A:\n4", StringComparison.Ordinal) < p.IndexOf("Answer B:\n5", StringComparison.Ordinal));
        Assert.Contains("Reference answer (compare both answers with it):\nfour", p);
        Assert.DoesNotContain("Reference", JudgeProtocol.PairwisePrompt("2+2?", "4", "5"));
        Assert.Contains("Step 2: b", JudgeProtocol.StepLabelPrompt("q", ["a", "b"]));
        Assert.Contains("from 0 to 4", JudgeProtocol.PointwisePrompt("q", "a", 0, 4));
    }

    [Fact]
    public void Consensus_keeps_a_solution_when_both_put_the_first_error_at_the_same_step()
    {
        // MC values: steps 1-2 reach the answer sometimes, step 3 never → first error at index 2.
        double[] mc = [0.75, 0.25, 0.0, 0.0];
        Assert.Equal(4, ConsensusFilter.KeptSteps(mc, [true, true, false, false]));
        // The judge also condemns step 4 only after step 3: same first error → kept.
        Assert.Equal(4, ConsensusFilter.KeptSteps(mc, [true, true, false, true]));
        // The judge finds the first error at step 2: dropped.
        Assert.Equal(0, ConsensusFilter.KeptSteps(mc, [true, false, false, false]));
        // The agreeing-prefix mode keeps step 1 only.
        Assert.Equal(1, ConsensusFilter.KeptSteps(mc, [true, false, false, false], ConsensusMode.AgreeingPrefix));
        // A threshold of 0.5 makes step 2 (0.25) wrong under MC: then the judge above agrees.
        Assert.Equal(4, ConsensusFilter.KeptSteps(mc, [true, false, false, false], mcThreshold: 0.5));
        // All correct in both: kept.
        Assert.Equal(2, ConsensusFilter.KeptSteps([1.0, 0.5], [true, true]));
        Assert.Throws<ArgumentException>(() => ConsensusFilter.KeptSteps([1.0], [true, true]));
    }

    [Fact]
    public void Filter_drops_disagreeing_and_unjudged_rows_and_trims_prefixes()
    {
        var empty = new Dictionary<string, string>();
        var rows = new List<StepLabelledExample>
        {
            new("p1", ["a", "b"], [1.0, 0.0], empty),
            new("p2", ["a", "b", "c"], [1.0, 1.0, 0.0], empty),
            new("p3", ["a"], [1.0], empty),
        };
        var (kept, disagreed, unjudged) = ConsensusFilter.Filter(rows, [[true, false], [true, false, false], null]);
        Assert.Equal(["p1"], kept.Select(r => r.Prompt));
        Assert.Equal((1, 1), (disagreed, unjudged));
        var (prefix, _, _) = ConsensusFilter.Filter(rows, [[true, false], [true, false, false], null], ConsensusMode.AgreeingPrefix);
        Assert.Equal(["p1", "p2"], prefix.Select(r => r.Prompt));
        Assert.Equal(["a"], prefix[1].Steps);
        Assert.Equal([1.0], prefix[1].Labels);
    }

    [Fact]
    public void Flr_is_the_mean_positive_minus_the_mean_negative_log_likelihood()
    {
        // mean(−1, −3) − mean(−4) = −2 + 4 = 2.
        Assert.Equal(2.0, FollowUpLikelihoodReward.Combine([-1.0, -3.0], [-4.0]), 12);
        Assert.Throws<ArgumentException>(() => FollowUpLikelihoodReward.Combine([-1.0], []));
    }

    [Fact]
    public void Flr_scores_follow_ups_after_prompt_response_and_user_marker_with_a_real_model()
    {
        using var model = Bandit.Model();
        using var flr = new FollowUpLikelihoodReward(model, Bandit.Tok, positive: ["ab"], negative: ["dd", "c"], userTurn: "b");
        using var lm = new SelfLikelihoodReward(model, Bandit.Tok, normalize: true);
        // Context "a" + "c" + "b"; per-token mean log-likelihoods of each follow-up after it.
        var lp = lm.Score([("acb", "ab"), ("acb", "dd"), ("acb", "c")]);
        double expected = lp[0] - (lp[1] + lp[2]) / 2;
        Assert.Equal(expected, flr.Score([("a", "c")])[0], 5);
        Assert.NotEqual(flr.Score([("a", "c")])[0], flr.Score([("a", "d")])[0]);
    }
}
