using System.Text.Json;
using System.Text.RegularExpressions;
using Sharpen.Data;
using Sharpen.Rewards;
using Sharpen.Serving;
using static Sharpen.Tests.Serving.ChatJudgeTests;

namespace Sharpen.Tests.Serving;

/// <summary>
/// SRAIF's critique step and the LLM-judge step labels (GenPRM, AURORA) against a scripted judge: a real OpenAI-compatible
/// HTTP server on loopback whose replies the test writes, reached through the official OpenAI client.
/// </summary>
public class JudgeStepLabelerTests
{
    static readonly Regex Arithmetic = new(@"(\d+) ([+\-*]) (\d+) = (\d+)");

    /// <summary>Whether a step "x op y = z" is right: the scripted judge's own arithmetic.</summary>
    static bool Right(string step)
    {
        var m = Arithmetic.Match(step);
        long x = long.Parse(m.Groups[1].Value), y = long.Parse(m.Groups[3].Value), z = long.Parse(m.Groups[4].Value);
        return (m.Groups[2].Value switch { "+" => x + y, "-" => x - y, _ => x * y }) == z;
    }

    /// <summary>The steps of a prompt written as "Step k: ..." lines.</summary>
    static List<string> StepsOf(string prompt) =>
        [.. Regex.Matches(prompt, @"^Step \d+: (.*)$", RegexOptions.Multiline).Select(m => m.Groups[1].Value)];

    // 2 + 3 * 4: the second step is wrong (2 + 12 is 14), the third is right arithmetic on the wrong value.
    static readonly string[] Wrong = ["3 * 4 = 12", "2 + 12 = 15", "15 - 1 = 14"];
    static readonly string[] Right2 = ["3 * 4 = 12", "2 + 12 = 14"];

    [Fact]
    public async Task Sraif_critiques_against_its_own_answer_then_judges_from_the_critique_in_both_orders()
    {
        // The judge's own answer is "c". Its critique says which shown answer matches it; its verdict reads only the critique.
        // Asked without a critique it is position-biased (always A), so only the critique path can give a certain preference.
        static string Script(string prompt)
        {
            if (prompt.StartsWith("Answer the following instruction", StringComparison.Ordinal)) return "c";
            var m = Answers.Match(prompt);
            if (prompt.StartsWith("You are criticising", StringComparison.Ordinal))
            {
                var r = Regex.Match(prompt, @"Your own answer \(use it as the reference\):\n(.*?)\n\n", RegexOptions.Singleline).Groups[1].Value;
                return m.Groups[1].Value == r ? "A matches the reference." : m.Groups[2].Value == r ? "B matches the reference." : "Neither matches.";
            }
            var critique = Regex.Match(prompt, @"Critique of both answers:\n(.*?)\n\n", RegexOptions.Singleline);
            if (!critique.Success) return "Verdict: A";
            return critique.Groups[1].Value switch { "A matches the reference." => "Verdict: A", "B matches the reference." => "Verdict: B", _ => "Verdict: tie" };
        }
        using var server = Server(Script);
        var sraif = new ChatJudge(Client(server), ChatJudgeOptions.Sraif());
        Assert.Equal(1.0, await sraif.PreferAsync("q", "c", "a"));   // c wins shown as A and shown as B: (1 + 1)/2
        Assert.Equal(0.0, await sraif.PreferAsync("q", "b", "c"));
        Assert.Equal(0.5, await sraif.PreferAsync("q", "a", "b"));   // neither matches: tie both ways
        Assert.Equal(1 + 3 * 2 * 2, sraif.Calls);                   // one self-answer; per pair two orders × (critique + verdict)
        Assert.Equal((0, 0), (sraif.Failures, sraif.Inconsistent));
        var prompts = server.Requests.Select(UserText).ToList();
        Assert.Single(prompts, p => p.StartsWith("Answer the following instruction", StringComparison.Ordinal));
        Assert.Equal(6, prompts.Count(p => p.StartsWith("You are criticising", StringComparison.Ordinal) && p.Contains("Your own answer (use it as the reference):\nc\n", StringComparison.Ordinal)));
        // The verdict prompt carries the critique the judge wrote for the same order.
        Assert.Contains(prompts, p => p.Contains("Answer A:\nc\n", StringComparison.Ordinal) && p.Contains("Critique of both answers:\nA matches the reference.\n", StringComparison.Ordinal));
        Assert.Contains(prompts, p => p.Contains("Answer B:\nc\n", StringComparison.Ordinal) && p.Contains("Critique of both answers:\nB matches the reference.\n", StringComparison.Ordinal));

        // Self-reference without the critique step: the same judge's bias shows, P = (1 + 0)/2.
        var noCritique = new ChatJudge(Client(server), ChatJudgeOptions.Sraif() with { Critique = false });
        Assert.Equal(0.5, await noCritique.PreferAsync("q", "c", "a"));
        Assert.Equal(1, noCritique.Inconsistent);
    }

    [Fact]
    public async Task A_critique_without_a_verdict_line_is_the_failure_value()
    {
        using var server = Server(p => p.StartsWith("You are criticising", StringComparison.Ordinal) ? "Both are fine." : "I cannot say.");
        var judge = new ChatJudge(Client(server), new ChatJudgeOptions { Critique = true });
        Assert.Null(await judge.PreferAsync("q", "a", "b"));
        Assert.Equal((4, 1), (judge.Calls, judge.Failures));
        // No reference: the critique prompt asks for a plain critique.
        Assert.DoesNotContain(server.Requests.Select(UserText), p => p.Contains("Your own answer", StringComparison.Ordinal));
    }

    /// <summary>A judge that checks arithmetic: per-step verifications, sign lists, first errors and reference matches.</summary>
    internal static string Arithmetician(string prompt)
    {
        if (prompt.StartsWith("You are verifying one step", StringComparison.Ordinal))
        {
            var step = Regex.Match(prompt, @"Step to verify \(step \d+\):\n(.*?)\n\n", RegexOptions.Singleline).Groups[1].Value;
            return $"Recompute: {step}.\nJudgement: {(Right(step) ? "correct" : "wrong")}";
        }
        var steps = StepsOf(prompt);
        if (prompt.StartsWith("You are checking a step-by-step", StringComparison.Ordinal))
            return "Steps: " + string.Join(" ", steps.Select(s => Right(s) ? "+" : "-"));
        if (prompt.StartsWith("You are looking for the first mistake", StringComparison.Ordinal))
        {
            int k = steps.FindIndex(s => !Right(s));
            return k < 0 ? "Error step: none" : $"Error step: {k + 1}";
        }
        if (prompt.StartsWith("You are checking a solution's final answer", StringComparison.Ordinal))
        {
            var reference = Regex.Match(prompt, @"Reference answer:\n(.*?)\n\n", RegexOptions.Singleline).Groups[1].Value;
            return steps[^1].EndsWith("= " + reference, StringComparison.Ordinal) ? "Matches reference: yes" : "Matches reference: no";
        }
        return "?";
    }

    [Fact]
    public async Task GenPrm_verifies_each_step_with_its_rationale_and_stops_at_the_first_error()
    {
        using var server = Server(Arithmetician);
        var judge = new ChatJudge(Client(server));
        var row = await new JudgeStepLabeler(judge).LabelAsync("2 + 3 * 4", Wrong);
        Assert.NotNull(row);
        Assert.Equal([1.0, 0.0, 0.0], row.Labels);   // step 2 is wrong; step 3 is not asked
        Assert.Equal(2, judge.Calls);
        var rationales = JsonSerializer.Deserialize<string[]>(row.Fields["rationales"])!;
        Assert.Equal(["Recompute: 3 * 4 = 12.\nJudgement: correct", "Recompute: 2 + 12 = 15.\nJudgement: wrong"], rationales);
        // The second verification saw the first step as context, and only the step it verifies.
        var second = UserText(server.Requests[1]);
        Assert.Contains("Earlier steps:\nStep 1: 3 * 4 = 12\n", second, StringComparison.Ordinal);
        Assert.Contains("Step to verify (step 2):\n2 + 12 = 15\n", second, StringComparison.Ordinal);

        var all = await new JudgeStepLabeler(judge, new JudgeStepLabelOptions { StopAtFirstError = false }).LabelAsync("2 + 3 * 4", Wrong);
        Assert.Equal([1.0, 0.0, 1.0], all!.Labels);   // each step judged on its own arithmetic
    }

    [Fact]
    public async Task GenPrm_votes_make_the_label_the_share_of_verifications_saying_correct()
    {
        // Per step, the k-th verification (k = 1, 2, 3) answers: step 1 correct, correct, unparseable → 2/2;
        // step 2 wrong, wrong, correct → 1/3 (below ½: stop).
        var seen = new Dictionary<string, int>();
        string Script(string prompt)
        {
            var step = Regex.Match(prompt, @"Step to verify \(step (\d+)\)").Groups[1].Value;
            int k;
            lock (seen) k = seen[step] = seen.GetValueOrDefault(step) + 1;
            return (step, k) switch
            {
                ("1", 3) => "not sure",
                ("1", _) => "Judgement: correct",
                ("2", 3) => "Judgement: correct",
                _ => "Judgement: wrong",
            };
        }
        using var server = Server(Script);
        var judge = new ChatJudge(Client(server));
        var row = await new JudgeStepLabeler(judge, new JudgeStepLabelOptions { Votes = 3 }).LabelAsync("2 + 3 * 4", Wrong);
        Assert.Equal(1.0, row!.Labels[0], 12);
        Assert.Equal(1.0 / 3, row.Labels[1], 12);
        Assert.Equal(0.0, row.Labels[2]);
        Assert.Equal((6, 1), (judge.Calls, judge.Failures));

        // A step no verification of which parses: no row, never a guess.
        using var mute = Server(_ => "hmm");
        var (rows, failed) = await new JudgeStepLabeler(new ChatJudge(Client(mute))).LabelManyAsync([("q", Right2, null)]);
        Assert.Empty(rows);
        Assert.Equal(1, failed);
    }

    [Fact]
    public async Task Aurora_labels_are_the_ensemble_mean_and_reverse_verification_zeroes_a_wrong_outcome()
    {
        using var server = Server(Arithmetician);
        var labeler = new JudgeStepLabeler(new ChatJudge(Client(server)), new JudgeStepLabelOptions { Method = JudgeLabelMethod.Aurora });
        // Sign list [+ - +], first error at 2 → [+ - -], per step [+ - +]: means [1, 0, 2/3]. The final 14 matches "14".
        var row = await labeler.LabelAsync("2 + 3 * 4", Wrong, reference: "14");
        Assert.Equal(1.0, row!.Labels[0], 12);
        Assert.Equal(0.0, row.Labels[1], 12);
        Assert.Equal(2.0 / 3, row.Labels[2], 12);
        Assert.Equal(("3", "true"), (row.Fields["ensemble"], row.Fields["matches_reference"]));
        // Against reference 15 the final answer disagrees: the last step becomes 0.
        var against = await labeler.LabelAsync("2 + 3 * 4", Wrong, reference: "15");
        Assert.Equal([1.0, 0.0, 0.0], against!.Labels);
        Assert.Equal("false", against.Fields["matches_reference"]);
        // The reference went into every ensemble prompt.
        Assert.All(server.Requests.Select(UserText).Where(p => !p.StartsWith("You are checking a solution's", StringComparison.Ordinal)),
            p => Assert.Contains("Reference answer:\n", p, StringComparison.Ordinal));

        // A prompt whose reply does not parse leaves the ensemble: here the first-error prompt, so the mean is over two.
        using var partial = Server(p => p.StartsWith("You are looking for the first mistake", StringComparison.Ordinal) ? "Error step: 9" : Arithmetician(p));
        var two = await new JudgeStepLabeler(new ChatJudge(Client(partial)), new JudgeStepLabelOptions { Method = JudgeLabelMethod.Aurora })
            .LabelAsync("2 + 3 * 4", Wrong);
        Assert.Equal([1.0, 0.0, 1.0], two!.Labels);
        Assert.Equal("2", two.Fields["ensemble"]);
        Assert.False(two.Fields.ContainsKey("matches_reference"));   // no reference, no reverse verification
    }

    [Fact]
    public async Task Judge_labels_round_trip_through_the_step_label_file_and_feed_the_consensus_filter()
    {
        using var server = Server(Arithmetician);
        var labeler = new JudgeStepLabeler(new ChatJudge(Client(server)));
        var (rows, failed) = await labeler.LabelManyAsync([("2 + 3 * 4", Wrong, "14"), ("2 + 3 * 4", Right2, "14")]);
        Assert.Equal((2, 0), (rows.Count, failed));
        var path = Path.Combine(Path.GetTempPath(), $"judge-steps-{Guid.NewGuid():N}.jsonl");
        try
        {
            StepLabelledExample.Write(path, rows);
            var back = StepLabelledExample.Load(path).Items;
            Assert.Equal([1.0, 0.0, 0.0], back[0].Labels);
            Assert.Equal([1.0, 1.0], back[1].Labels);
            Assert.Equal("14", back[1].Fields["reference"]);
            Assert.Equal(2, JsonSerializer.Deserialize<string[]>(back[1].Fields["rationales"])!.Length);
            // MC labels that put the first error at step 2 agree with the judge on the wrong solution; MC labels that find
            // the right solution wrong at step 2 disagree, so consensus keeps one row.
            var mc = new List<StepLabelledExample> { back[0] with { Labels = [0.5, 0.0, 0.0] }, back[1] with { Labels = [0.75, 0.0] } };
            var judged = back.Select(r => r.Labels.Select(l => l >= 0.5).ToArray()).ToList();
            var (kept, disagreed, _) = ConsensusFilter.Filter(mc, judged);
            Assert.Equal((1, 1), (kept.Count, disagreed));
            Assert.Equal(Wrong, kept[0].Steps);
        }
        finally { File.Delete(path); }
    }
}
