using Sharpen.Tasks;
using F = Sharpen.Tasks.StackCodeTask.Formula;

namespace Sharpen.Tests.Tasks;

/// <summary>The stack language's interpreter limits, the generated unit tests and the two rewards, worked by hand.</summary>
public class StackCodeTaskTests
{
    static readonly StackLimits Limits = new();

    [Theory]
    [InlineData("x 3 * 2 +", 4, 14, 5)]
    [InlineData("0 5 [ x + ]", 3, 15, 18)]          // 3 set-up steps + 5 passes of (x, +, ]) = 18
    [InlineData("7 0 [ x + ]", 3, 7, 3)]            // a zero count skips the block: push, push, [
    [InlineData("0 7 - 2 /", 0, -3, 5)]             // −7/2 truncates toward zero
    [InlineData("0 7 - 2 %", 0, -1, 5)]             // remainder takes the sign of the dividend
    [InlineData("1 2 over + swap drop", 0, 3, 6)]   // 1 2 → 1 2 1 → 1 3 → 3 1 → 3
    public void Runs_programs_to_the_values_and_step_counts_worked_by_hand(string program, long x, long value, int steps)
    {
        var run = StackMachine.Run(program, x, Limits);
        Assert.True(run.Ok, run.Message);
        Assert.Equal(value, run.Value);
        Assert.Equal(steps, run.Steps);
    }

    [Fact]
    public void The_step_limit_stops_an_endless_loop_after_exactly_max_steps()
    {
        var run = StackMachine.Run("1 1000000 [ dup drop ]", 0, Limits with { MaxSteps = 2000 });
        Assert.False(run.Ok);
        Assert.Equal(StackMachine.StepLimit, run.Error);
        Assert.Equal(2000, run.Steps);
    }

    [Fact]
    public void The_memory_limit_stops_a_growing_stack_at_the_dup_that_would_pass_it()
    {
        // 1 100 [ → one value; pass k's dup leaves 1 + k values; the 32nd dup would make 33 > 32.
        // Steps: 3 + 31 passes × (dup, ]) + that dup = 66.
        var run = StackMachine.Run("1 100 [ dup ]", 0, Limits);
        Assert.Equal(StackMachine.StackOverflow, run.Error);
        Assert.Equal(66, run.Steps);
    }

    [Theory]
    [InlineData("1000000 1000000 *", StackMachine.Overflow)]       // 10^12 > 10^9
    [InlineData("x 0 /", StackMachine.DivisionByZero)]
    [InlineData("x 0 %", StackMachine.DivisionByZero)]
    [InlineData("+", StackMachine.StackUnderflow)]
    [InlineData("1 2", StackMachine.BadEnd)]
    [InlineData("x drop", StackMachine.BadEnd)]
    [InlineData("0 1 - [ x ]", StackMachine.NegativeCount)]
    [InlineData("x 3 * ]", StackMachine.ParseError)]
    [InlineData("[ x", StackMachine.ParseError)]
    [InlineData("x y +", StackMachine.ParseError)]
    [InlineData("1000000001", StackMachine.ParseError)]            // a literal beyond MaxValue
    [InlineData("99999999999999999999999", StackMachine.ParseError)]
    [InlineData("1 [ 1 [ 1 [ 1 [ 1 [ x ] ] ] ] ]", StackMachine.ParseError)]   // five levels, limit four
    [InlineData("", StackMachine.ParseError)]
    public void Errors_are_reported_as_codes_not_exceptions(string program, string error)
    {
        var run = StackMachine.Run(program, 2, Limits);
        Assert.False(run.Ok);
        Assert.Equal(error, run.Error);
    }

    [Fact]
    public void Too_many_words_is_a_parse_error()
    {
        var program = string.Join(' ', Enumerable.Repeat("x drop", 64)) + " x";   // 129 words
        Assert.Equal(StackMachine.ParseError, StackMachine.Run(program, 0, Limits).Error);
        Assert.True(StackMachine.Run(program, 0, Limits with { MaxWords = 129 }).Ok);
    }

    [Fact]
    public void Formulas_print_with_the_parentheses_precedence_needs_and_compile_to_postfix()
    {
        var c = F.Const;
        var threeXPlus2 = F.Bin('+', F.Bin('*', c(3), F.X), c(2));
        Assert.Equal("3*x+2", threeXPlus2.Infix());
        Assert.Equal("3 x * 2 +", threeXPlus2.Postfix(slow: false));
        Assert.Equal("x dup dup + + 2 +", threeXPlus2.Postfix(slow: true));
        Assert.Equal("x*(x-4)", F.Bin('*', F.X, F.Bin('-', F.X, c(4))).Infix());
        Assert.Equal("5-(x+1)", F.Bin('-', c(5), F.Bin('+', F.X, c(1))).Infix());
        Assert.Equal("x+x-1", F.Bin('+', F.X, F.Bin('-', F.X, c(1))).Infix());
        Assert.Equal("(x+1)*2", F.Bin('*', F.Bin('+', F.X, c(1)), c(2)).Infix());
        Assert.Equal("x 1 + 2 *", F.Bin('*', F.Bin('+', F.X, c(1)), c(2)).Postfix(slow: true));   // c = 2 is not slowed
    }

    static Problem ThreeXPlus2(StackCodeTask task) =>
        task.Create(F.Bin('+', F.Bin('*', F.Const(3), F.X), F.Const(2)), [1, -2, 4], slowSolution: false);

    [Fact]
    public void A_problem_carries_its_generated_tests_and_reference()
    {
        var p = ThreeXPlus2(new StackCodeTask());
        Assert.Equal("f(x)=3*x+2:", p.Prompt);
        Assert.Equal("3 x * 2 +", p.Answer);
        Assert.Equal("1:5 -2:-4 4:14", p.Fields["tests"]);   // 3·1+2, 3·(−2)+2, 3·4+2
        Assert.Equal([(1L, 5L), (-2L, -4L), (4L, 14L)], StackCodeTask.ReadTests(p));
        Assert.Equal(15, new StackCodeTask().ReferenceSteps(p, StackCodeTask.ReadTests(p)));   // 5 words × 3 tests
    }

    [Theory]
    [InlineData(" 3 x * 2 +", 1.0, "correct")]
    [InlineData(" x x + x + 2 +", 1.0, "correct")]
    [InlineData(" x 2 * 2 +", 0.0, "failed_test")]
    [InlineData(" x +", 0.0, "runtime_error")]
    [InlineData(" x 1000000 [ dup drop ]", 0.0, "limit_exceeded")]
    [InlineData(" print(x)", 0.0, "unparsable")]
    [InlineData("   ", 0.0, "no_answer")]
    public void The_tests_reward_is_one_when_every_generated_test_passes(string completion, double reward, string reason)
    {
        var task = new StackCodeTask();
        var v = task.Verify(ThreeXPlus2(task), completion);
        Assert.Equal(reason, v.Reason);
        Assert.Equal(reward, v.Reward, 12);
        Assert.Equal(reason == "correct", v.Correct);
    }

    [Theory]
    [InlineData(" 3 x * 2 +", 1.0)]                           // E = E_ref = 15: 0.5 + 0.5·1
    [InlineData(" x 3 * 2 +\nanything after", 1.0)]           // the first line is the program
    [InlineData(" x x + x + 2 +", 0.5 + 0.5 * 15.0 / 21.0)]   // 7 words × 3 tests = 21 steps: 0.857142…
    [InlineData(" x dup dup + + 2 +", 0.5 + 0.5 * 15.0 / 21.0)]
    [InlineData(" 0 3 [ x + ] 2 +", 0.5 + 0.5 * 15.0 / 42.0)] // 3 + 3 passes × 3 + 2 = 14 steps per test: 42
    [InlineData(" 5", -0.5 + 0.5 / 3.0)]                      // passes the test at x = 1 only
    [InlineData(" x 2 * 2 +", -0.5)]                          // passes none
    [InlineData(" x 1000000 [ dup drop ]", -0.5)]
    [InlineData(" print(x)", -1.0)]
    public void The_runtime_reward_follows_the_step_function_worked_by_hand(string completion, double reward)
    {
        var task = new StackCodeTask(new StackCodeOptions { Reward = StackCodeReward.Runtime });
        Assert.Equal(reward, task.Verify(ThreeXPlus2(task), completion).Reward, 12);
    }

    [Fact]
    public void Generated_problems_are_deterministic_and_their_solutions_pass_their_tests()
    {
        var fast = new StackCodeTask();
        var slow = new StackCodeTask(new StackCodeOptions { SlowSolutionFraction = 1 });
        var a = fast.Generate(300, 3);
        Assert.Equal(a.Select(p => p.Id), fast.Generate(300, 3).Select(p => p.Id));
        Assert.Equal(a.Select(p => p.Id), slow.Generate(300, 3).Select(p => p.Id));   // the slow share changes solutions only
        Assert.NotEqual(a.Select(p => p.Prompt), fast.Generate(300, 4).Select(p => p.Prompt));
        var slower = 0;
        foreach (var (p, q) in a.Zip(slow.Generate(300, 3)))
        {
            var tests = StackCodeTask.ReadTests(p);
            Assert.Equal(5, tests.Count);
            Assert.Equal(5, tests.Select(t => t.Input).Distinct().Count());
            Assert.All(tests, t => Assert.InRange(t.Input, -9, 9));
            Assert.True(tests.Select(t => t.Output).Distinct().Count() > 1, p.Id);
            Assert.True(fast.Verify(p, fast.Solve(p)).Correct, p.Id);
            Assert.True(slow.Verify(q, slow.Solve(q)).Correct, q.Id);
            Assert.All(p.Prompt, ch => Assert.Contains(ch, StackCodeTask.Characters));
            Assert.All(slow.Solve(q), ch => Assert.Contains(ch, StackCodeTask.Characters));
            if (slow.Solve(q) != fast.Solve(p)) slower++;
        }
        Assert.True(slower > 30, $"only {slower} of 300 slow solutions differ");
    }

    [Fact]
    public void The_verifier_never_throws_on_random_text()
    {
        var task = new StackCodeTask(new StackCodeOptions { Reward = StackCodeReward.Runtime });
        var p = ThreeXPlus2(task);
        var rng = new Random(7);
        const string chars = StackCodeTask.Characters + "\n[]]][[xx--";
        for (var i = 0; i < 3000; i++)
        {
            var text = new string(Enumerable.Range(0, rng.Next(0, 40)).Select(_ => chars[rng.Next(chars.Length)]).ToArray());
            var v = task.Verify(p, text);
            Assert.InRange(v.Reward, -1.0, 1.0);
        }
    }

    [Fact]
    public void The_task_is_registered_and_the_recipe_section_binds_its_options()
    {
        Assert.Contains("stack-code", TaskRegistry.Names);
        var t = Assert.IsType<StackCodeTask>(TaskRegistry.Create("stack-code", new StackCodeOptions { Tests = 4 }));
        Assert.Equal(4, t.Options.Tests);
        var section = System.Text.Json.JsonSerializer.Deserialize<Sharpen.Recipes.TaskSection>(
            """{"name": "stack-code", "reward": "runtime", "slow_solution_fraction": 0.5, "limits": {"max_steps": 500}}""",
            Sharpen.Recipes.Recipe.Json)!;
        var options = Assert.IsType<StackCodeOptions>(section.BuildOptions("r.yaml"));
        Assert.Equal(StackCodeReward.Runtime, options.Reward);
        Assert.Equal(0.5, options.SlowSolutionFraction);
        Assert.Equal(500, options.Limits.MaxSteps);
        var bad = System.Text.Json.JsonSerializer.Deserialize<Sharpen.Recipes.TaskSection>(
            """{"name": "stack-code", "tests": 1}""", Sharpen.Recipes.Recipe.Json)!;
        Assert.Contains("r.yaml", Assert.Throws<Sharpen.Recipes.RecipeException>(() => bad.BuildOptions("r.yaml")).Message);
    }
}
