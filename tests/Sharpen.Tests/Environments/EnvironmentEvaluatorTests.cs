using System.Globalization;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Environments;
using Sharpen.Evaluation;
using Sharpen.Models;
using Sharpen.Recipes;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Environments;

/// <summary><see cref="EnvironmentEvaluator"/> with scripted policies whose results are known, and <c>sharpen eval --env</c>
/// (<see cref="EvalRun"/>) on a real checkpoint.</summary>
public class EnvironmentEvaluatorTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create(new GuessNumberEnvironment().Alphabet);

    /// <summary>Binary search over the transcript: "guess 1-100", then "> g" lines each followed by higher/lower.</summary>
    static string BinarySearch(string transcript)
    {
        int lo = 1, hi = 100, last = 0;
        foreach (var line in transcript.Split('\n'))
        {
            if (line.StartsWith("> ") && int.TryParse(line[2..], NumberStyles.None, CultureInfo.InvariantCulture, out var g)) last = g;
            else if (line == "higher") lo = last + 1;
            else if (line == "lower") hi = last - 1;
        }
        return ((lo + hi) / 2).ToString(CultureInfo.InvariantCulture);
    }

    static int BinarySearchTurns(int secret)
    {
        int lo = 1, hi = 100, turns = 0;
        while (true)
        {
            int g = (lo + hi) / 2;
            turns++;
            if (g == secret) return turns;
            if (secret > g) lo = g + 1; else hi = g - 1;
        }
    }

    [Fact]
    public void Binary_search_wins_every_game_in_the_turns_worked_out_independently()
    {
        var seeds = Enumerable.Range(100, 20).ToArray();
        var expectedTurns = seeds.Select(s =>
        {
            var env = new GuessNumberEnvironment();
            env.ResetAsync(s).AsTask().Wait();
            return BinarySearchTurns(env.Secret);
        }).ToArray();
        var engine = new ScriptedEngine(Tok, BinarySearch);
        var options = new MultiTurnOptions { MaxTurns = 7, MaxTrajectoryTokens = 400 };
        var r = EnvironmentEvaluator.Run(engine, () => new GuessNumberEnvironment(), seeds, options, batch: 8);
        Assert.Equal(20, r.N);
        Assert.Equal(1.0, r.SuccessRate);
        Assert.Equal(1.0, r.MeanReturn);
        Assert.Equal(expectedTurns.Average(), r.MeanTurns, 12);
        Assert.Equal(expectedTurns, r.Trajectories.Select(t => t.Turns.Count));
        Assert.Equal(3.0, r.TurnTokens[0]);                          // "50\n" in every game
        Assert.Equal(8, engine.Calls.Max());                         // at most 8 environments per engine call
        Assert.Equal(expectedTurns.Sum(), engine.Calls.Sum());       // one generated row per turn played
    }

    [Fact]
    public void A_policy_that_never_answers_a_number_loses_every_game_at_the_limit()
    {
        var engine = new ScriptedEngine(Tok, _ => "guess");
        var r = EnvironmentEvaluator.Run(engine, () => new GuessNumberEnvironment(new GuessNumberOptions { MaxTurns = 3 }), [1, 2, 3, 4],
            new MultiTurnOptions { MaxTurns = 10, MaxTrajectoryTokens = 400 });
        Assert.Equal((0.0, 0.0, 3.0), (r.SuccessRate, r.MeanReturn, r.MeanTurns));
        Assert.Equal([6.0, 6.0, 6.0], r.TurnTokens);                 // "guess\n"
        Assert.All(r.Trajectories, t => Assert.Equal("false", t.FinalInfo["valid"]));
        Assert.Equal(4, r.ToJson()["ends"]!["done"]!.GetValue<int>());
    }

    [Fact]
    public void Eval_env_writes_one_row_per_episode_transcripts_and_a_summary_that_agrees_with_them()
    {
        using var dir = new TempDir();
        using (var model = new CausalLM(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 160 }, seed: 5))
            HfCheckpoint.Save(dir.File("model"), model, Tok);
        var summary = EvalRun.Run(new EvalSettings
        {
            Model = dir.File("model"), Out = dir.File("eval"), Env = "guess-number", N = 5, MaxTurns = 2, MaxNewTokens = 4, Seed = 40,
        }).Summary;
        var rows = new RunLog(dir.File("eval"), append: true).ReadMetrics();
        Assert.Equal(5, rows.Count);
        Assert.Equal(Enumerable.Range(40, 5), rows.Select(r => r["seed"]!.GetValue<int>()));
        Assert.All(rows, r => Assert.InRange(r["turns"]!.GetValue<int>(), 1, 2));
        Assert.Equal(rows.Count(r => r["won"]!.GetValue<bool>()) / 5.0, summary["success_rate"]!.GetValue<double>(), 12);
        Assert.Equal(rows.Average(r => r["turns"]!.GetValue<int>()), summary["mean_turns"]!.GetValue<double>(), 12);
        Assert.Equal(rows.Average(r => r["turn_tokens"]![0]!.GetValue<int>()), summary["turn_tokens"]![0]!.GetValue<double>(), 3);
        var transcripts = TrajectoryJsonl.Read(dir.File("eval/transcripts.jsonl"));
        Assert.Equal(rows.Select(r => r["turns"]!.GetValue<int>()), transcripts.Select(t => t.Turns.Count));
        Assert.Equal(2, summary["max_turns"]!.GetValue<int>());
        Assert.True(File.Exists(dir.File("eval/summary.json")));

        var bad = Assert.Throws<ArgumentException>(() => EvalRun.Run(new EvalSettings { Model = dir.File("model"), Out = dir.File("e2"), Env = "chess" }));
        Assert.Contains("chess", bad.Message);
        Assert.Contains("guess-number", bad.Message);
    }
}
