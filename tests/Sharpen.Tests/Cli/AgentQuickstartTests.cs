using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Cli.Commands;
using Sharpen.Data;
using Sharpen.Environments;
using Sharpen.Recipes;
using Sharpen.Tokenizers;
using Sharpen.Training.Rl;
using static TorchSharp.torch;

namespace Sharpen.Tests.Cli;

/// <summary>The agent quickstart (<c>sharpen quickstart --env guess-number</c>): its demonstrations, and a tiny run end to end.</summary>
public class AgentQuickstartTests
{
    [Fact]
    public async Task Demonstrations_are_format_correct_games_of_random_legal_guesses_that_stop_at_the_win()
    {
        var s = new AgentQuickstartSettings { TrainGames = 60, Low = 1, High = 15, MaxTurns = 4 };
        var demos = AgentQuickstart.Demonstrations(s);
        // Regroup the turns into games: a game's first prompt is the bare first observation.
        var games = new List<List<SftExample>>();
        foreach (var e in demos)
        {
            if (e.Prompt == "guess 1-15\n> ") games.Add([]);
            games[^1].Add(e);
        }
        Assert.Equal(60, games.Count);
        var firstGuesses = new HashSet<int>();
        for (int g = 0; g < games.Count; g++)
        {
            var env = new GuessNumberEnvironment(AgentQuickstart.Options(s));
            await env.ResetAsync(2_000_000 + g);
            var guesses = games[g].Select(e => e.Completion).ToList();
            Assert.All(guesses, c => Assert.Matches("^[1-9][0-9]?\n$", c));
            Assert.InRange(guesses.Count, 1, 4);
            var numbers = guesses.Select(c => int.Parse(c.TrimEnd())).ToList();
            firstGuesses.Add(numbers[0]);
            // The game stops at the first correct guess, and only there (or after 4 guesses).
            int win = numbers.IndexOf(env.Secret);
            Assert.Equal(win >= 0 ? win + 1 : 4, numbers.Count);
            // Every guess is legal: inside the interval the feedback so far leaves (worked out here from the secret).
            int lo = 1, hi = 15;
            for (int k = 0; k < numbers.Count; k++)
            {
                Assert.InRange(numbers[k], lo, hi);
                if (k == numbers.Count - 1) break;
                // Each later prompt is the earlier one, the guess, and the environment's answer with the interval left.
                var word = env.Secret > numbers[k] ? "higher" : "lower";
                if (env.Secret > numbers[k]) lo = numbers[k] + 1; else hi = numbers[k] - 1;
                Assert.Equal($"{games[g][k].Prompt}{numbers[k]}\n{word} {lo}-{hi}\n> ", games[g][k + 1].Prompt);
            }
        }
        Assert.True(firstGuesses.Count >= 10, $"first guesses should be spread over 1-15 (no strategy), got {string.Join(",", firstGuesses)}");
    }

    [Fact]
    public void Every_number_of_the_game_is_one_token_of_the_quickstarts_tokenizer()
    {
        var s = new AgentQuickstartSettings { NumberTokens = true };
        var alphabet = new GuessNumberEnvironment(AgentQuickstart.Options(s)).Alphabet;
        var tok = AgentQuickstart.Tokenizer(s, alphabet);
        // 1-15: the nine digits 1-9 are alphabet characters and 10-15 the six words; 15 distinct single ids.
        var ids = Enumerable.Range(1, 15).Select(n => tok.Encode(n.ToString(System.Globalization.CultureInfo.InvariantCulture), addSpecialTokens: false)).ToList();
        Assert.All(ids, x => Assert.Single(x));
        Assert.Equal(15, ids.Select(x => x[0]).Distinct().Count());
        Assert.Equal(CharTokenizer.Create(alphabet).VocabSize + 6, tok.VocabSize);
        // The range in the feedback reads as number, '-', number: "lower 12-14" ends in three tokens.
        var tail = tok.Encode("lower 12-14", addSpecialTokens: false).TakeLast(3).Select(i => tok.TokenToString(i)!).ToArray();
        Assert.Equal(["12", "-", "14"], tail);
        // With number tokens off (the default) the tokenizer is the plain character one: "12" is two tokens.
        Assert.False(new AgentQuickstartSettings().NumberTokens);
        Assert.Equal(2, AgentQuickstart.Tokenizer(new AgentQuickstartSettings(), alphabet).Encode("12", addSpecialTokens: false).Count);
    }

    [Fact]
    public void A_tiny_agent_quickstart_writes_stages_plots_transcripts_and_the_report()
    {
        using var dir = new TempDir();
        var s = new AgentQuickstartSettings
        {
            TrainGames = 40, TestGames = 6, SftSteps = 4, HiddenSize = 32, Layers = 1, RlIterations = 2, RlGames = 2, RlSamples = 2,
        };
        var summary = QuickstartCommand.RunAgent(s, dir.Path, _ => { });
        var stages = summary["stages"]!.AsArray();
        Assert.Equal(["sft", "gigpo"], stages.Select(st => st!["name"]!.GetValue<string>()));
        Assert.All(stages, st => Assert.Equal(6, st!["n"]!.GetValue<int>()));
        // Each stage's numbers agree with its transcripts.
        foreach (var (st, file) in new[] { (stages[0]!, "sft_transcripts.jsonl"), (stages[1]!, "rl_transcripts.jsonl") })
        {
            var played = TrajectoryJsonl.Read(dir.File(file));
            Assert.Equal(6, played.Count);
            Assert.Equal(played.Count(t => t.Succeeded) / 6.0, st["success_rate"]!.GetValue<double>(), 12);
            Assert.Equal(played.Average(t => t.Turns.Count), st["mean_turns"]!.GetValue<double>(), 12);
        }
        Assert.Equal(Math.Round(100 * (stages[1]!["success_rate"]!.GetValue<double>() - stages[0]!["success_rate"]!.GetValue<double>()), 1),
            summary["rl_gain_points"]!.GetValue<double>(), 9);
        var report = File.ReadAllText(dir.File("report.md"));
        Assert.Contains("![success rate](success_rate.png)", report);
        Assert.Contains("![mean turns](mean_turns.png)", report);
        Assert.Equal(6, report.Split("```text").Length - 1);        // three transcripts before, three after
        Assert.True(File.Exists(dir.File("success_rate.png")));
        Assert.Equal(2, File.ReadAllLines(dir.File("metrics.jsonl")).Length);   // one row per RL iteration
        // The reward and the entropy bonus the RL stage ran with are recorded with the stages.
        Assert.Equal((0.25, 0.01, -0.5), (summary["rl"]!["progress_reward"]!.GetValue<double>(), summary["rl"]!["entropy_coefficient"]!.GetValue<double>(),
            summary["rl"]!["illegal_reward"]!.GetValue<double>()));
    }

    // Two guess-the-number trajectories of one group (same secret), both opening with the same guess (token 3, then the
    // newline 9): W wins on turn 2 (4 policy tokens), L loses after turn 3 (6 policy tokens). Returns {1, 0}.
    static Trajectory Game(params (int[] Context, int[] Tokens, double Reward)[] turns) => new()
    {
        Environment = "guess-number", Seed = 0, End = TrajectoryEnd.Done,
        Messages = [new ChatMessage("user", "guess 1-7"), .. turns.SelectMany(_ => new[] { new ChatMessage("assistant", "g"), new ChatMessage("user", "f") })],
        Turns = turns.Select((t, k) => new TrajectoryTurn(1 + 2 * k, t.Reward, new Dictionary<string, string>())
            { ContextIds = t.Context, TokenIds = t.Tokens, LogProbs = t.Tokens.Select(_ => -1f).ToArray() }).ToArray(),
    };

    [Theory]
    [InlineData(LossAggregation.SeqMeanTokenMean, -0.0883883, 0.0589256)]
    [InlineData(LossAggregation.SeqMeanTokenSum, -0.3535534, 0.3535534)]
    public void The_shared_first_guess_of_a_winner_and_a_loser_is_pushed_up_only_by_the_per_trajectory_token_mean(
        LossAggregation aggregation, double winnerGrad, double loserGrad)
    {
        using var scope = NewDisposeScope();
        var w = Game(([1, 2], [3, 9], 0), ([5, 6], [7, 9], 1));
        var l = Game(([1, 2], [3, 9], 0), ([8, 6], [4, 9], 0), ([5, 6], [10, 9], 0));
        var b = MultiTurnBatch.Build([w, l], padId: 0);
        var mask = b.Seq.CompletionMask;
        Assert.Equal([4f, 6f], mask.sum(1).data<float>().ToArray());
        var ctx = new AdvantageContext(b.Returns, mask, 2, zeros_like(mask), 0, false, null, null, new MovingAverageBaseline(0.9), 1, 1,
            RewardScaling.Group, b.TurnRewards);
        var adv = AdvantageEstimators.Registry.Get("grpo").Estimate(ctx).Advantages;
        // Returns {1, 0}: mean 0.5, unbiased std √0.5 → Â = ±0.5/√0.5 = ±0.7071068 on every policy token of the trajectory.
        Assert.Equal(0.7071068, adv[0, 0].item<float>(), 5);
        Assert.Equal(-0.7071068, adv[1, 0].item<float>(), 5);
        // At the behaviour policy (ratio 1) the clipped surrogate is −Â·ratio per token, so ∂loss/∂log π at a token is −Â
        // times the token's weight: 1/(n_i·B) with the per-trajectory token mean (n = 4 and 6, B = 2), 1/B with the sum.
        //   mean: W −0.7071068/8 = −0.0883883, L +0.7071068/12 = +0.0589256 → the shared guess's net gradient −0.0294628:
        //         a descent step raises log π(first guess) although the group's advantages sum to zero.
        //   sum:  W −0.7071068/2, L +0.7071068/2 → net 0: the first guess, the same in both, learns nothing.
        var logp = b.OldLogProbs.detach().requires_grad_(true);
        var agg = new Aggregation(aggregation, mask.sum().item<float>(), 2);
        var (loss, _) = PolicyLosses.Registry.Get("ppo_clip").Compute(new PolicyLossInput(logp, b.OldLogProbs, adv, mask),
            new PolicyLossContext(new ClipOptions(), agg, b.Returns, 1));
        loss.backward();
        var grad = logp.grad!;
        Assert.Equal(winnerGrad, grad[0, 0].item<float>(), 5);
        Assert.Equal(loserGrad, grad[1, 0].item<float>(), 5);
        Assert.Equal(aggregation == LossAggregation.SeqMeanTokenSum ? 0 : -0.0294628, grad[0, 0].item<float>() + grad[1, 0].item<float>(), 5);
        // The environment's text between turns (completion positions 2, 3 of both rows) gets no gradient.
        Assert.Equal([0f, 0f], new[] { grad[0, 2].item<float>(), grad[1, 3].item<float>() });
        // The agent quickstart trains with the sum.
        Assert.Equal(LossAggregation.SeqMeanTokenSum, new AgentQuickstartSettings().RlAggregation);
    }
}
