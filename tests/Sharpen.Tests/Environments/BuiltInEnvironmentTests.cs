using Sharpen.Data;
using Sharpen.Environments;
using Sharpen.Tasks;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Environments;

public class BuiltInEnvironmentTests
{
    static string LastLine(string prompt) => prompt.Split('\n').Reverse().Skip(1).First();   // the line before the final "> "

    [Fact]
    public async Task Binary_search_always_wins_guess_the_number_within_the_log2_bound()
    {
        var env = new GuessNumberEnvironment();
        var tok = CharTokenizer.Create(env.Alphabet);
        // The scripted policy keeps [lo, hi] from the feedback in the transcript and guesses the middle.
        string Policy(string prompt)
        {
            int lo = 1, hi = 100, last = 0;
            foreach (var line in prompt.Split('\n'))
            {
                if (line.StartsWith("> ") && int.TryParse(line[2..], out var g)) last = g;
                else if (line == "higher") lo = last + 1;
                else if (line == "lower") hi = last - 1;
            }
            return ((lo + hi) / 2).ToString();
        }
        var engine = new ScriptedEngine(tok, Policy);
        var rollout = new MultiTurnRollout(engine, new MultiTurnOptions { MaxTurns = 10, MaxTrajectoryTokens = 400 });
        var seeds = Enumerable.Range(0, 200).ToArray();
        var envs = seeds.Select(_ => (IEnvironment)new GuessNumberEnvironment()).ToArray();
        var trajectories = await rollout.RunAsync(envs, seeds);
        int bound = (int)Math.Ceiling(Math.Log2(100 + 1));   // 7: binary search over n numbers needs at most ⌈log₂(n+1)⌉ guesses
        Assert.Equal(7, bound);
        Assert.All(trajectories, t =>
        {
            Assert.Equal(TrajectoryEnd.Done, t.End);
            Assert.Equal(1.0, t.Return);
            Assert.Equal("won", t.FinalInfo["outcome"]);
            Assert.InRange(t.Turns.Count, 1, bound);
            Assert.Equal("correct", t.Messages[^1].Content);
        });
        Assert.Contains(trajectories, t => t.Turns.Count == bound);   // the bound is reached by some secret
        Assert.True(trajectories.Select(t => ((GuessNumberEnvironment)envs[t.Seed!.Value]).Secret).Distinct().Count() > 80);
        // Lock-step batches: the first turn has all 200 live, and finished games drop out so batches shrink.
        Assert.Equal(200, engine.Calls[0]);
        Assert.True(engine.Calls.Zip(engine.Calls.Skip(1)).All(p => p.First >= p.Second));
        Assert.Equal(trajectories.Max(t => t.Turns.Count), engine.Calls.Count);
    }

    [Fact]
    public void Guess_the_number_feedback_invalid_moves_and_loss()
    {
        var env = new GuessNumberEnvironment(new GuessNumberOptions { Low = 1, High = 10, MaxTurns = 3 });
        Assert.Equal("guess 1-10", Assert.Single(env.Reset(5)).Content);
        int s = env.Secret;
        Assert.InRange(s, 1, 10);
        int wrong = s == 1 ? 2 : 1;
        var a = env.Step(wrong.ToString());
        Assert.Equal(s > wrong ? "higher" : "lower", a.Observation[0].Content);
        Assert.False(a.Done);
        var b = env.Step(" eleven ");
        Assert.Equal(("invalid", "false", 0.0), (b.Observation[0].Content, b.Info["valid"], b.Reward));
        var c = env.Step("11");   // out of range, and the last turn
        Assert.Equal(("lost", true), (c.Observation[0].Content, c.Done));
        Assert.Throws<InvalidOperationException>(() => env.Step("5"));
        env.Reset(5);
        Assert.Equal(s, env.Secret);   // same seed, same secret
        var win = env.Step(s.ToString());
        Assert.Equal((1.0, true, "correct"), (win.Reward, win.Done, win.Observation[0].Content));
    }

    [Theory]
    [InlineData("apple", "paper", "yygy.")]   // p,a elsewhere; p in place; e elsewhere; no r
    [InlineData("eagle", "green", "y.yy.")]   // both e's of the secret are matched once each
    [InlineData("sugar", "smile", "g....")]
    [InlineData("apple", "apple", "ggggg")]
    [InlineData("there", "their", "ggg.y")]   // t h e in place; no i; r elsewhere (the secret's r is at index 3)
    public void Wordle_marks_follow_the_game_rules(string secret, string guess, string expected)
    {
        Assert.Equal(expected, WordleEnvironment.Marks(secret, guess));
    }

    [Fact]
    public void Wordle_plays_a_game()
    {
        var env = new WordleEnvironment(new WordleOptions { MaxTurns = 3 });
        Assert.Equal("wordle", env.Reset(11)[0].Content);
        var secret = env.Secret;
        Assert.Contains(secret, WordleEnvironment.DefaultWords);
        var other = WordleEnvironment.DefaultWords.First(w => w != secret);
        var s1 = env.Step(other.ToUpperInvariant());
        Assert.Equal(WordleEnvironment.Marks(secret, other), s1.Observation[0].Content);
        Assert.Equal("invalid", env.Step("zzzzz").Observation[0].Content);   // not in the list
        var s3 = env.Step(secret);
        Assert.Equal((1.0, true), (s3.Reward, s3.Done));
    }

    [Fact]
    public void Twenty_questions_is_winnable_for_every_object_by_asking_attributes()
    {
        // The ontology separates every pair of objects.
        var sets = TwentyQuestionsEnvironment.Ontology.Values.Select(s => string.Join(",", s.Order())).ToList();
        Assert.Equal(sets.Count, sets.Distinct().Count());
        Assert.True(TwentyQuestionsEnvironment.Attributes.Count + 1 <= 20);

        var won = new HashSet<string>();
        for (int seed = 0; seed < 200 && won.Count < TwentyQuestionsEnvironment.Objects.Count; seed++)
        {
            var env = new TwentyQuestionsEnvironment();
            env.Reset(seed);
            var yes = new HashSet<string>();
            foreach (var a in TwentyQuestionsEnvironment.Attributes)
            {
                var step = env.Step(seed % 2 == 0 ? $"is it {a}?" : $"Is it a {a}");
                Assert.False(step.Done);
                Assert.Contains(step.Observation[0].Content, new[] { "yes", "no" });
                if (step.Observation[0].Content == "yes") yes.Add(a);
            }
            var guess = TwentyQuestionsEnvironment.Ontology.Single(kv => kv.Value.SetEquals(yes)).Key;
            var final = env.Step($"is it an {guess}?");
            Assert.Equal((1.0, true, "correct"), (final.Reward, final.Done, final.Observation[0].Content));
            Assert.Equal(env.Secret, guess);
            won.Add(guess);
        }
        Assert.Equal(TwentyQuestionsEnvironment.Objects.Count, won.Count);
    }

    [Fact]
    public void Twenty_questions_answers_by_hand()
    {
        var env = new TwentyQuestionsEnvironment();
        int seed = Enumerable.Range(0, 500).First(s => { env.Reset(s); return env.Secret == "whale"; });
        env.Reset(seed);
        Assert.Equal("yes", env.Step("is it an animal?").Observation[0].Content);
        Assert.Equal("no", env.Step("is it legs?").Observation[0].Content);
        Assert.Equal("yes", env.Step("is it water").Observation[0].Content);
        Assert.Equal("no", env.Step("is it a fish?").Observation[0].Content);
        Assert.Equal("invalid", env.Step("is it purple?").Observation[0].Content);
        Assert.Equal("invalid", env.Step("what is it?").Observation[0].Content);
        Assert.Equal("correct", env.Step("is it a whale?").Observation[0].Content);
    }

    [Fact]
    public void Maze_is_perfect_and_a_wall_follower_reading_only_observations_escapes()
    {
        var dirs = new[] { 'n', 'e', 's', 'w' };   // clockwise
        for (int seed = 0; seed < 40; seed++)
        {
            var env = new MazeEnvironment();
            var first = env.Reset(seed)[0].Content;
            Assert.StartsWith("maze, open: ", first);
            // Perfect: 4x4 cells joined by exactly 15 open passages, all reachable.
            int passages = 0;
            for (int x = 0; x < 4; x++) for (int y = 0; y < 4; y++) passages += (env.IsOpen(x, y, 'e') ? 1 : 0) + (env.IsOpen(x, y, 's') ? 1 : 0);
            Assert.Equal(15, passages);

            // Right-hand rule from the observations alone: it visits each passage at most twice (≤ 30 moves).
            var open = first["maze, open: ".Length..].Split(' ');
            int facing = 2;   // south
            EnvironmentStep? step = null;
            for (int moves = 0; moves < 40; moves++)
            {
                int pick = Enumerable.Range(0, 4).Select(k => (facing + 1 - k + 4) % 4).First(d => open.Contains(dirs[d].ToString()));
                facing = pick;
                step = env.Step(dirs[pick].ToString());
                if (step.Done) break;
                var text = step.Observation[0].Content;
                Assert.StartsWith("open: ", text);   // never a wall: it only takes open ways
                open = text["open: ".Length..].Split(' ');
            }
            Assert.NotNull(step);
            Assert.Equal(("exit", 1.0, true), (step!.Observation[0].Content, step.Reward, step.Done));
            Assert.True(env.Turns <= 30, $"seed {seed}: {env.Turns} moves");
            Assert.Equal((3, 3), env.Position);
        }
    }

    [Fact]
    public void Maze_walls_and_invalid_moves_keep_the_position()
    {
        var env = new MazeEnvironment(new MazeOptions { Width = 3, Height = 2 });
        env.Reset(3);
        char wall = new[] { 'n', 'w', 's', 'e' }.First(d => !env.IsOpen(0, 0, d));   // n and w are always walls at the start
        var s = env.Step(wall.ToString());
        Assert.StartsWith("wall, open: ", s.Observation[0].Content);
        Assert.Equal((0, 0), env.Position);
        Assert.StartsWith("invalid, open: ", env.Step("up").Observation[0].Content);
        Assert.Equal("0,0", env.Step("jump").Info["position"]);
    }

    [Fact]
    public void Countdown_tool_calls_the_calculator_and_scores_the_answer()
    {
        var env = new CountdownToolEnvironment();
        var prompt = env.Reset(4)[0].Content;
        var problem = env.Problem!;
        Assert.Equal(problem.Prompt, prompt);
        var call = "<tool_call>{\"name\": \"calc\", \"arguments\": {\"expression\": \"" + problem.Answer + "\"}}</tool_call>";
        var t1 = env.Step(call);
        var tool = Assert.Single(t1.Observation);
        Assert.Equal(("tool", problem.Fields["target"]), (tool.Role, tool.Content));   // the reference answer evaluates to the target
        Assert.Equal("1", t1.Info["tool_calls"]);
        // Qwen writes the JSON on its own lines; arguments may be a JSON string as in OpenAI's API.
        Assert.Equal("7", CountdownToolEnvironment.Calculate("<tool_call>\n{\"name\": \"calc\", \"arguments\": \"{\\\"expression\\\": \\\"(2+5)*3/3\\\"}\"}\n</tool_call>"));
        Assert.Equal("7/2", CountdownToolEnvironment.Calculate("<tool_call>{\"name\":\"calc\",\"arguments\":{\"expression\":\"7/2\"}}</tool_call>"));
        Assert.Equal("error: unknown tool", CountdownToolEnvironment.Calculate("<tool_call>{\"name\": \"search\", \"arguments\": {}}</tool_call>"));
        Assert.Equal("error: unclosed tool call", CountdownToolEnvironment.Calculate("<tool_call>{\"name\": \"calc\""));
        Assert.Equal("error: tool call is not json", CountdownToolEnvironment.Calculate("<tool_call>calc(1+2)</tool_call>"));
        Assert.Equal("error: division_by_zero", CountdownToolEnvironment.Calculate("<tool_call>{\"name\": \"calc\", \"arguments\": {\"expression\": \"1/0\"}}</tool_call>"));
        Assert.Equal("invalid", env.Step("hmm").Observation[0].Content);
        var done = env.Step(" answer: " + problem.Answer);
        Assert.Equal((1.0, true, "correct", "won"), (done.Reward, done.Done, done.Observation[0].Content, done.Info["outcome"]));

        env.Reset(4);
        var wrong = env.Step("answer: 1+1");
        Assert.Equal((0.0, true, "lost"), (wrong.Reward, wrong.Done, wrong.Info["outcome"]));
    }

    [Fact]
    public void Self_correction_scores_the_second_attempt_and_reports_both()
    {
        var task = new CountdownTask();
        var env = new SelfCorrectionEnvironment(task);
        var prompt = env.Reset(9)[0].Content;
        var problem = task.Generate(1, 9)[0];
        Assert.Equal(problem.Prompt, prompt);
        var first = env.Step(" answer: 1+1");
        Assert.Equal(("check your answer and revise", 0.0, false), (first.Observation[0].Content, first.Reward, first.Done));
        Assert.Equal("false", first.Info["first_correct"]);
        var second = env.Step(task.Solve(problem));
        Assert.Equal((1.0, true), (second.Reward, second.Done));
        Assert.Equal(("false", "true", "0", "1"), (second.Info["first_correct"], second.Info["second_correct"], second.Info["first_reward"], second.Info["second_reward"]));
        Assert.Empty(second.Observation);

        env.Reset(9);
        env.Step(task.Solve(problem));
        var worse = env.Step("answer: (");
        Assert.Equal((0.0, "true", "false"), (worse.Reward, worse.Info["first_correct"], worse.Info["second_correct"]));
        Assert.Equal("arithmetic", new SelfCorrectionEnvironment(new SelfCorrectionOptions { Task = "arithmetic" }).Task.Name);
    }

    /// <summary>The environments that need nothing but their defaults (dsp and daslam need a frozen model: FrozenModelEnvironmentTests).</summary>
    public static TheoryData<string> Names => [.. EnvironmentRegistry.Names.Where(n => n is not ("dsp" or "daslam"))];

    [Theory]
    [MemberData(nameof(Names))]
    public void No_model_output_makes_an_environment_throw(string name)
    {
        var rng = new Random(12345);
        string[] pieces = ["<tool_call>", "</tool_call>", "{", "}", "\"", "answer:", "is it ", "?", "\n", " ", "n", "e", "50", "-1",
            "99999999999999999999", "\u0000", "é", "🙂", "\uD800", "calc", "\"name\"", "\"arguments\"", "expression", "(", ")", "/", "0", "*"];
        for (int episode = 0; episode < 30; episode++)
        {
            var env = (TextEnvironment)EnvironmentRegistry.Create(name);
            var obs = env.Reset(episode);
            Assert.NotEmpty(obs);
            Assert.All(obs.SelectMany(m => m.Content), c => Assert.Contains(c, env.Alphabet));
            for (int turn = 0; turn < 60; turn++)
            {
                var text = string.Concat(Enumerable.Range(0, rng.Next(0, 12)).Select(_ => rng.Next(3) == 0
                    ? ((char)rng.Next(0, 0xFFFF)).ToString() : pieces[rng.Next(pieces.Length)]));
                if (rng.Next(20) == 0) text = new string('9', 5000);
                var step = env.Step(text);
                Assert.True(double.IsFinite(step.Reward));
                Assert.All(step.Observation.SelectMany(m => m.Content), c => Assert.Contains(c, env.Alphabet));
                if (step.Done) break;
            }
        }
    }

    [Fact]
    public void The_registry_makes_environments_by_name_and_lists_names_on_a_miss()
    {
        Assert.Equal(["countdown-tool", "daslam", "dsp", "guess-number", "maze", "self-correction", "twenty-questions", "wordle"], EnvironmentRegistry.Names);
        Assert.IsType<WordleEnvironment>(EnvironmentRegistry.Create("Wordle"));
        var e = Assert.Throws<ArgumentException>(() => EnvironmentRegistry.Create("chess"));
        Assert.Contains("unknown environment 'chess' (known environments: countdown-tool, daslam, dsp, guess-number, maze", e.Message);
        Assert.Contains("takes MazeOptions, not WordleOptions", Assert.Throws<ArgumentException>(() => EnvironmentRegistry.Create("maze", new WordleOptions())).Message);
        var g = (GuessNumberEnvironment)EnvironmentRegistry.Create("guess-number", new GuessNumberOptions { High = 20 });
        Assert.Equal("guess 1-20", g.Reset(0)[0].Content);
        Assert.Throws<ArgumentOutOfRangeException>(() => EnvironmentRegistry.Create("wordle", new WordleOptions { Words = ["toolong"] }));
        Assert.Throws<ArgumentException>(() => EnvironmentRegistry.Register("maze", _ => new MazeEnvironment()));
        Assert.All(EnvironmentRegistry.Names.Where(n => n is not ("dsp" or "daslam")), n => Assert.Equal(n, EnvironmentRegistry.Create(n).Name));
    }
}
