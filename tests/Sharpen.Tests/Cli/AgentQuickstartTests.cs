using System.Text.Json.Nodes;
using Sharpen.Cli.Commands;
using Sharpen.Data;
using Sharpen.Environments;
using Sharpen.Recipes;

namespace Sharpen.Tests.Cli;

/// <summary>The agent quickstart (<c>sharpen quickstart --env guess-number</c>): its demonstrations, and a tiny run end to end.</summary>
public class AgentQuickstartTests
{
    [Fact]
    public async Task Demonstrations_are_format_correct_games_of_distinct_random_guesses_that_stop_at_the_win()
    {
        var s = new AgentQuickstartSettings { TrainGames = 30, Low = 1, High = 7, MaxTurns = 3 };
        var demos = AgentQuickstart.Demonstrations(s);
        // Regroup the turns into games: a game's first prompt is the bare first observation.
        var games = new List<List<SftExample>>();
        foreach (var e in demos)
        {
            if (e.Prompt == "guess 1-7\n> ") games.Add([]);
            games[^1].Add(e);
        }
        Assert.Equal(30, games.Count);
        for (int g = 0; g < games.Count; g++)
        {
            var env = new GuessNumberEnvironment(new GuessNumberOptions { Low = 1, High = 7, MaxTurns = 3 });
            await env.ResetAsync(2_000_000 + g);
            var guesses = games[g].Select(e => e.Completion).ToList();
            Assert.All(guesses, c => Assert.Matches("^[1-7]\n$", c));
            Assert.Equal(guesses.Count, guesses.Distinct().Count());
            Assert.InRange(guesses.Count, 1, 3);
            var numbers = guesses.Select(c => int.Parse(c.TrimEnd())).ToList();
            // The game stops at the first correct guess, and only there (or after 3 guesses).
            int win = numbers.IndexOf(env.Secret);
            Assert.Equal(win >= 0 ? win + 1 : 3, numbers.Count);
            // Each later prompt is the earlier one, the guess, and the environment's answer.
            for (int k = 1; k < games[g].Count; k++)
            {
                var feedback = env.Secret > numbers[k - 1] ? "higher" : "lower";
                Assert.Equal(games[g][k - 1].Prompt + numbers[k - 1] + "\n" + feedback + "\n> ", games[g][k].Prompt);
            }
        }
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
        Assert.Equal(["sft", "grpo"], stages.Select(st => st!["name"]!.GetValue<string>()));
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
    }
}
