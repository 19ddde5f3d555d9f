using Sharpen.Search;
using Sharpen.Training;
using Sharpen.Training.ExpertIteration;

namespace Sharpen.Tests.Training;

public class MctsValueTargetsTests
{
    static SearchNode N(int id, int parent, string text, bool terminal = false) => new(id, parent, text, text.Length, 0, 0, 1, 0, terminal, null);

    // The hand-built tree (ids in creation order; ✓ = finished and verified correct, ✗ = finished and wrong, … = unfinished leaf):
    //   root ─ 0 "a " ─┬─ 2 "ans:7" ✓
    //        │         ├─ 3 "d " ── 5 "ans:2" ✗
    //        │         └─ 4 "e " …
    //        ├─ 1 "ans:9" ✗
    //        └─ 6 "g " ── 7 "h " ─┬─ 8 "ans:7" ✓
    //                              └─ 9 "ans:4" ✗
    static readonly SearchNode[] Tree =
    [
        N(0, -1, "a "), N(1, -1, "ans:9", true), N(2, 0, "ans:7", true), N(3, 0, "d "), N(4, 0, "e "),
        N(5, 3, "ans:2", true), N(6, -1, "g "), N(7, 6, "h "), N(8, 7, "ans:7", true), N(9, 7, "ans:4", true),
    ];
    static readonly bool[] Correct = [false, false, true, false, false, false, false, false, true, false];

    [Fact]
    public void The_recurrence_step_matches_the_formula()
    {
        // v = max(v' + (1 − v')/(m + 1)·(1 − 2r), 0)
        Assert.Equal(1.0, MctsValueTargets.Step(0, 0, true), 12);            // 0 + 1/1
        Assert.Equal(0.4, MctsValueTargets.Step(0.2, 3, true), 12);          // 0.2 + 0.8/4
        Assert.Equal(0.4, MctsValueTargets.Step(0.6, 1, false), 12);         // 0.6 − 0.4/2
        Assert.Equal(0.0, MctsValueTargets.Step(0.3, 0, false), 12);         // 0.3 − 0.7 < 0 → 0
    }

    [Fact]
    public void Node_values_of_a_hand_built_tree()
    {
        var v = MctsValueTargets.NodeValues(Tree, Correct);
        // 0 "a ": a correct node 1 step below (2) → r = 0, m = 1: 0 + 1/2 = 0.5
        // A wrong step's m is the distance of its nearest ancestor with a correct node below; the root is one step above the
        // top-level steps, so its distance is min(1 via 0, 2 via 6) + 1 = 2.
        // 1 "ans:9": wrong, nearest such ancestor the root (m = 2): max(0 − 1/3, 0) = 0
        // 2 "ans:7": correct end, m = 0: 0.5 + 0.5 = 1
        // 3 "d ": nothing correct below, ancestor 0 has m = 1: 0.5 − 0.5/2 = 0.25
        // 4 "e ": no finished node below → no target (NaN)
        // 5 "ans:2": ancestor 0 again (m = 1): 0.25 − 0.75/2 < 0 → 0
        // 6 "g ": correct node 2 steps below (8): 0 + 1/3 = 1/3;  7 "h ": 1/3 + (2/3)/2 = 2/3;  8: 1
        // 9 "ans:4": wrong end under 7 (m = 1): 2/3 − (1/3)/2 = 1/2
        double[] expected = [0.5, 0, 1, 0.25, double.NaN, 0, 1.0 / 3, 2.0 / 3, 1, 0.5];
        for (int i = 0; i < expected.Length; i++)
            if (double.IsNaN(expected[i])) Assert.True(double.IsNaN(v[i]), $"node {i}: {v[i]}");
            else Assert.Equal(expected[i], v[i], 12);
    }

    [Fact]
    public void A_wrong_branch_takes_the_distance_of_its_nearest_ancestor_that_can_still_be_right()
    {
        //   root ─ 0 s1 ─┬─ 1 s2 ─┬─ 2 s3 ✓
        //                │        └─ 3 s3′ ✗
        //                └─ 4 s2′ ── 5 s3″ ✗
        SearchNode[] tree = [N(0, -1, "s1 "), N(1, 0, "s2 "), N(2, 1, "s3", true), N(3, 1, "x3", true), N(4, 0, "y2 "), N(5, 4, "y3", true)];
        bool[] correct = [false, false, true, false, false, false];
        var v = MctsValueTargets.NodeValues(tree, correct);
        // s1: m = 2 → 1/3; s2: m = 1 → 1/3 + (2/3)/2 = 2/3; s3 → 1.
        // s3′: ancestor s2 (m = 1): 2/3 − (1/3)/2 = 1/2.  s2′: ancestor s1 (m = 2): 1/3 − (2/3)/3 = 1/9.
        // s3″: ancestor s1 (m = 2): 1/9 − (8/9)/3 = −5/27 → 0.
        double[] expected = [1.0 / 3, 2.0 / 3, 1, 0.5, 1.0 / 9, 0];
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], v[i], 12);
    }

    [Fact]
    public void A_tree_without_a_correct_answer_has_no_targets()
    {
        SearchNode[] tree = [N(0, -1, "a "), N(1, 0, "ans:2", true), N(2, -1, "ans:3", true)];
        bool[] correct = [false, false, false];
        Assert.All(MctsValueTargets.NodeValues(tree, correct), x => Assert.True(double.IsNaN(x)));
        Assert.Empty(MctsValueTargets.Rows("Q:", "q3", tree, correct));
    }

    [Fact]
    public void Finished_paths_are_ranked_correct_first_by_their_mean_inferred_value()
    {
        //   root ─ 0 "b " ── 1 "c " ── 2 "ans:7" ✓   (3 steps: 1/3, 2/3, 1 → mean 2/3)
        //        ├─ 3 "ans:5" ✗
        //        └─ 4 "a " ── 5 "ans:7" ✓            (2 steps: 1/2, 1 → mean 3/4)
        SearchNode[] tree = [N(0, -1, "b "), N(1, 0, "c "), N(2, 1, "ans:7", true), N(3, -1, "ans:5", true), N(4, -1, "a "), N(5, 4, "ans:7", true)];
        bool[] correct = [false, false, true, false, false, true];
        var v = MctsValueTargets.NodeValues(tree, correct);
        Assert.Equal([5, 2, 3], MctsValueTargets.RankFinished(tree, correct, v));
    }

    [Fact]
    public void Rows_are_the_finished_paths_with_their_prefix_values()
    {
        var rows = MctsValueTargets.Rows("Q:", "q1", Tree, Correct);
        Assert.Equal(["ans:9", "a |ans:7", "a |d |ans:2", "g |h |ans:7", "g |h |ans:4"], rows.Select(r => string.Join("|", r.Steps)));
        Assert.Equal([false, true, false, true, false], rows.Select(r => r.Correct));
        double[][] labels = [[0], [0.5, 1], [0.5, 0.25, 0], [1.0 / 3, 2.0 / 3, 1], [1.0 / 3, 2.0 / 3, 0.5]];
        for (int i = 0; i < rows.Count; i++)
        {
            Assert.Equal(labels[i].Length, rows[i].Labels.Count);
            for (int j = 0; j < labels[i].Length; j++) Assert.Equal(labels[i][j], rows[i].Labels[j], 12);
        }
        Assert.All(rows, r => Assert.Equal(("Q:", "q1"), (r.Prompt, r.Id)));
        Assert.Equal("a d ans:2", MctsValueTargets.TextTo(Tree, 5));
    }

    [Fact]
    public void An_empty_step_is_left_out_and_its_target_replaces_the_prefix_before_it()
    {
        //   root ─ 0 "a " ─┬─ 1 "" ✓ (an immediate end: the completion is "a ")
        //                  └─ 2 "b " ── 3 "" ✗
        //        └─ 4 "" ✗ (nothing written at all)
        SearchNode[] tree = [N(0, -1, "a "), N(1, 0, "", true), N(2, 0, "b "), N(3, 2, "", true), N(4, -1, "", true)];
        bool[] correct = [false, true, false, false, false];
        var rows = MctsValueTargets.Rows("Q:", "q2", tree, correct);
        // Values: 0 "a ": correct end 1 below → 0 + 1/2 = 0.5; 1: 0.5 + 0.5 = 1; 2 "b ": no correct end, ancestor 0 has m = 1 →
        // 0.5 − 0.5/2 = 0.25; 3: 0.25 − 0.75/2 → 0; 4: wrong top-level end, the root's m = 2 → max(0 − 1/3, 0) = 0. Row 1 "a " takes node 1's 1 (not 0.5);
        // row 3 "a b " keeps 0.5 and takes node 3's 0 for "b "; node 4's path has no text, so no row.
        Assert.Equal(["a ", "a |b "], rows.Select(r => string.Join("|", r.Steps)));
        Assert.Equal([1.0], rows[0].Labels);
        Assert.Equal([0.5, 0.0], rows[1].Labels);
        Assert.Equal([true, false], rows.Select(r => r.Correct));
    }

    [Fact]
    public void Rows_round_trip_through_jsonl_and_a_bad_line_is_named()
    {
        using var dir = new TempDir();
        var rows = MctsValueTargets.Rows("Q:", "q1", Tree, Correct);
        ValueTargetRow.WriteAll(dir.File("t.jsonl"), rows);
        var back = ValueTargetRow.ReadAll(dir.File("t.jsonl"));
        Assert.Equal(rows.Select(r => (r.Prompt, string.Join("|", r.Steps), string.Join(",", r.Labels), r.Id, r.Correct)),
            back.Select(r => (r.Prompt, string.Join("|", r.Steps), string.Join(",", r.Labels), r.Id, r.Correct)));

        File.WriteAllText(dir.File("bad.jsonl"), "{\"prompt\":\"Q\",\"steps\":[\"a\"],\"labels\":[0.5]}\n{\"prompt\":\"Q\",\"steps\":[\"a\",\"b\"],\"labels\":[0.5]}\n");
        var e = Assert.Throws<InvalidDataException>(() => ValueTargetRow.ReadAll(dir.File("bad.jsonl")));
        Assert.Contains("bad.jsonl:2", e.Message);
        Assert.Contains("one per step", e.Message);
    }

    [Fact]
    public void The_prefix_table_is_the_mean_target_per_prefix_and_neutral_elsewhere()
    {
        var table = PrefixValueTable.Fit(
        [
            new ValueTargetRow("Q", ["a ", "b "], [0.2, 0.4], "q", false),
            new ValueTargetRow("Q", ["a ", "c "], [0.6, 1.0], "q", true),
        ]);
        Assert.Equal(3, table.Count);   // "a ", "a b ", "a c "
        var s = table.ScoreSteps([("Q", ["a ", "c "]), ("Q", ["a ", "d "]), ("R", ["a "])]);
        Assert.Equal([0.4, 1.0], s[0].Select(x => Math.Round(x, 12)));   // "a " = (0.2 + 0.6)/2
        Assert.Equal([0.4, 0.5], s[1].Select(x => Math.Round(x, 12)));   // "a d " unseen → 0.5
        Assert.Equal([0.5], s[2]);                                       // another prompt → 0.5
    }

    /// <summary>A node with its MCTS statistics: N visits and mean backed-up value Q.</summary>
    static SearchNode Q(int id, int parent, string text, int visits, double q, bool terminal = false) =>
        new(id, parent, text, text.Length, 0, 0, visits, q, terminal, null);

    [Fact]
    public void AlphaMath_targets_are_the_backed_up_q_values_and_the_verified_end_rewards()
    {
        //   root ─ 0 "a " (N 4, Q 0.5) ─┬─ 1 "ans:7" ✓ (its own backups say 0.8; the verifier says 1)
        //        │                      └─ 2 "ans:2" ✗
        //        └─ 3 "b " (never visited)
        SearchNode[] tree = [Q(0, -1, "a ", 4, 0.5), Q(1, 0, "ans:7", 2, 0.8, true), Q(2, 0, "ans:2", 1, 0.3, true), Q(3, -1, "b ", 0, 0)];
        bool[] correct = [false, true, false, false];
        var v = MctsValueTargets.AlphaMathNodeValues(tree, correct);
        Assert.Equal(0.5, v[0], 12);
        Assert.Equal(1.0, v[1], 12);
        Assert.Equal(0.0, v[2], 12);
        Assert.True(double.IsNaN(v[3]));
        Assert.Equal(v, MctsValueTargets.Values("alphamath", tree, correct));
        var rows = MctsValueTargets.Rows("Q:", "q", tree, correct, v);
        Assert.Equal(2, rows.Count);
        Assert.Equal(["a ", "ans:7"], rows[0].Steps);
        Assert.Equal([0.5, 1.0], rows[0].Labels);
        Assert.Equal([0.5, 0.0], rows[1].Labels);

        // Without any correct answer ReST-MCTS* has no targets, AlphaMath still has its Q-values and the wrong end's 0.
        bool[] none = [false, false, false, false];
        Assert.Empty(MctsValueTargets.Rows("Q:", "q", tree, none, MctsValueTargets.Values("rest_mcts", tree, none)));
        var alpha = MctsValueTargets.Rows("Q:", "q", tree, none, MctsValueTargets.Values("alphamath", tree, none));
        Assert.Equal([[0.5, 0.0], [0.5, 0.0]], alpha.Select(r => r.Labels.ToArray()).ToArray());
        Assert.Throws<ArgumentException>(() => MctsValueTargets.Values("mean", tree, none));
        Assert.Contains("value_targets", Assert.Throws<ArgumentException>(() => new RestMctsOptions { ValueTargets = "q" }.Validate()).Message);
    }
}
