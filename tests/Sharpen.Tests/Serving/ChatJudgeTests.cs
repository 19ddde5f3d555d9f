using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Extensions.AI;
using OpenAI;
using Sharpen.Data;
using Sharpen.Rewards;
using Sharpen.Serving;
using Sharpen.Tests.Rewards;
using Sharpen.Tests.Training;
using Sharpen.Training.Preference;

namespace Sharpen.Tests.Serving;

/// <summary>
/// <see cref="ChatJudge"/> against a scripted judge: a real OpenAI-compatible HTTP server on loopback whose replies are
/// written by the test, reached through the official OpenAI client's <see cref="IChatClient"/> adapter.
/// </summary>
public class ChatJudgeTests
{
    /// <summary>The last user message of an OpenAI chat request (content as a string or as text parts).</summary>
    internal static string UserText(JsonObject body)
    {
        var content = body["messages"]!.AsArray()[^1]!["content"]!;
        return content is JsonArray parts ? string.Concat(parts.Select(p => p!["text"]?.GetValue<string>())) : content.GetValue<string>();
    }

    internal static (int, string) Reply(string text) => (200, new JsonObject
    {
        ["id"] = "chatcmpl-1", ["object"] = "chat.completion", ["created"] = 0, ["model"] = "judge",
        ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text }, ["finish_reason"] = "stop" }),
        ["usage"] = new JsonObject { ["prompt_tokens"] = 1, ["completion_tokens"] = 1, ["total_tokens"] = 2 },
    }.ToJsonString());

    internal static readonly Regex Answers = new(@"Answer A:\n(.*?)\n\nAnswer B:\n(.*?)\n\n", RegexOptions.Singleline);

    /// <summary>A server whose judge script maps the prompt text to the reply text.</summary>
    internal static RewardServer Server(Func<string, string> script) => new("v1", (path, body, _) =>
        path == "/chat/completions" ? Reply(script(UserText(body))) : (404, "{}"));

    internal static IChatClient Client(RewardServer s) =>
        new OpenAIClient(new System.ClientModel.ApiKeyCredential("x"), new OpenAIClientOptions { Endpoint = new Uri(s.Url.TrimEnd('/')) })
            .GetChatClient("judge").AsIChatClient();

    /// <summary>A judge that knows "c" is the right answer, in whichever position it is shown.</summary>
    static string Knows(string prompt)
    {
        var m = Answers.Match(prompt);
        if (!m.Success) return "no pair here";
        return m.Groups[1].Value == "c" ? "A is right.\nVerdict: A" : m.Groups[2].Value == "c" ? "Verdict: B" : "Verdict: tie";
    }

    [Fact]
    public async Task A_consistent_judge_gives_certain_preferences_over_both_orders()
    {
        using var server = Server(Knows);
        var judge = new ChatJudge(Client(server));
        Assert.Equal(1.0, await judge.PreferAsync("q", "c", "a"));
        Assert.Equal(0.0, await judge.PreferAsync("q", "b", "c"));
        Assert.Equal(0.5, await judge.PreferAsync("q", "a", "b"));   // tie both ways
        Assert.Equal((6, 0, 0), (judge.Calls, judge.Failures, judge.Inconsistent));
        // Both orders were asked: the first answer shown once as A and once as B.
        var prompts = server.Requests.Take(2).Select(UserText).ToList();
        Assert.Contains(prompts, p => p.Contains("Answer A:\nc\n", StringComparison.Ordinal));
        Assert.Contains(prompts, p => p.Contains("Answer B:\nc\n", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Order_swapping_exposes_a_position_biased_judge()
    {
        using var server = Server(_ => "Verdict: A");
        var swapped = new ChatJudge(Client(server));
        Assert.Equal(0.5, await swapped.PreferAsync("q", "a", "c"));
        Assert.Equal(1, swapped.Inconsistent);
        var once = new ChatJudge(Client(server), new ChatJudgeOptions { SwapOrder = false });
        Assert.Equal(1.0, await once.PreferAsync("q", "a", "c"));   // one order alone believes the bias
        Assert.Equal(1, once.Calls);
    }

    [Fact]
    public async Task An_unparseable_reply_is_the_failure_value_and_is_counted()
    {
        using var server = Server(_ => "I cannot decide.");
        var judge = new ChatJudge(Client(server));
        Assert.Null(await judge.PreferAsync("q", "a", "c"));
        Assert.Equal(0.5, judge.AsPairwiseJudge()("q", "a", "c"));
        Assert.Null(await judge.ScoreOneAsync("q", "a"));
        Assert.Null(await judge.StepLabelsAsync("q", ["a", "b"]));
        Assert.Equal(4, judge.Failures);
    }

    [Fact]
    public async Task Self_reference_asks_the_judge_once_per_instruction_and_judges_against_its_own_answer()
    {
        // Without a reference this judge cannot tell; with one it prefers the answer equal to it.
        static string Script(string prompt)
        {
            if (prompt.StartsWith("Answer the following instruction", StringComparison.Ordinal)) return "c";
            var r = Regex.Match(prompt, @"Reference answer \(compare both answers with it\):\n(.*?)\n\n", RegexOptions.Singleline);
            var m = Answers.Match(prompt);
            if (!r.Success) return "Verdict: tie";
            return m.Groups[1].Value == r.Groups[1].Value ? "Verdict: A" : m.Groups[2].Value == r.Groups[1].Value ? "Verdict: B" : "Verdict: tie";
        }
        using var server = Server(Script);
        var plain = new ChatJudge(Client(server));
        Assert.Equal(0.5, await plain.PreferAsync("q", "c", "a"));
        var self = new ChatJudge(Client(server), new ChatJudgeOptions { SelfReference = true });
        Assert.Equal(1.0, await self.PreferAsync("q", "c", "a"));
        Assert.Equal(0.0, await self.PreferAsync("q", "b", "c"));
        Assert.Equal(1 + 2 + 2, self.Calls);   // one self-answer, then two orders per pair
        Assert.Equal(1, server.Requests.Count(b => UserText(b).StartsWith("Answer the following instruction", StringComparison.Ordinal)));
        // A gold reference overrides the self-reference.
        Assert.Equal(1.0, await self.PreferAsync("q", "a", "b", reference: "a"));
    }

    [Fact]
    public async Task Pointwise_scores_are_a_reward_in_zero_one_and_step_labels_feed_the_consensus_filter()
    {
        static string Script(string prompt)
        {
            if (prompt.StartsWith("You are checking", StringComparison.Ordinal)) return "Step 2 divides by zero.\nSteps: + -";
            var answer = Regex.Match(prompt, @"Answer:\n(.*?)\n\n", RegexOptions.Singleline).Groups[1].Value;
            return answer switch { "c" => "Correct.\nScore: 8", "d" => "hmm", _ => "Score: 2" };
        }
        using var server = Server(Script);
        IRewardFunction reward = new ChatJudge(Client(server));
        var empty = new Dictionary<string, string>();
        var scores = await reward.ScoreAsync([new("q", "c", empty, 1), new("q", "a", empty, 1), new("q", "d", empty, 1)]);
        Assert.Equal(7.0 / 9, scores[0]!.Value, 12);
        Assert.Equal(1.0 / 9, scores[1]!.Value, 12);
        Assert.Null(scores[2]);

        var judge = new ChatJudge(Client(server));
        var labels = await judge.StepLabelsAsync("q", ["x = 2", "y = x / 0"]);
        Assert.Equal([true, false], labels!);
        var rows = new List<StepLabelledExample> { new("q", ["x = 2", "y = x / 0"], [0.5, 0.0], empty), new("q", ["x = 3", "y = 1"], [1.0, 1.0], empty) };
        var (kept, disagreed, _) = ConsensusFilter.Filter(rows, [labels, labels]);
        Assert.Equal((1, 1), (kept.Count, disagreed));
        Assert.Equal("x = 2", kept[0].Steps[0]);
    }

    [Fact]
    public void Osp_learns_the_bandit_from_the_soft_preferences_of_a_chat_judge_over_http()
    {
        // The judge favours "c" when shown first and calls it a tie when shown second: P(c ≻ x) = (1 + ½)/2 = 0.75, a soft
        // preference that becomes the pair's strength in OSP's loss.
        static string Script(string prompt)
        {
            var m = Answers.Match(prompt);
            return m.Groups[1].Value == "c" && m.Groups[2].Value != "c" ? "Verdict: A" : "Verdict: tie";
        }
        using var server = Server(Script);
        var judge = new ChatJudge(Client(server));
        using var dir = new TempDir();
        using var model = Bandit.Model();
        double before = Bandit.ProbabilityOfC(model);
        var prompts = Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string>()), 8).ToList();
        var o = new OnlineDpoOptions { Iterations = 12, PromptsPerIteration = 8, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2, Loss = "osp", Beta = 0.5 };
        new OnlineDpoTrainer(model, Bandit.Tok, o, Bandit.RewardC) { PairwiseJudge = judge.AsPairwiseJudge() }.Run(prompts, dir.Path);
        double after = Bandit.ProbabilityOfC(model);
        Assert.True(after > before + 0.1, $"p(c) {before:F3} → {after:F3}");
        Assert.Equal(0, judge.Failures);
        // 8 prompts × 2 pairs × 12 iterations, each pair asked in both orders.
        Assert.Equal(8 * 2 * 12 * 2, judge.Calls);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal("osp", summary["loss_name"]!.GetValue<string>());
    }
}
