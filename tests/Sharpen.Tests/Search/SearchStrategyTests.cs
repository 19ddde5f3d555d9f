using Sharpen.Search;
using Sharpen.Data;
using Sharpen.Tasks;

namespace Sharpen.Tests.Search;

public class SearchStrategyTests
{
    // Tree 1 (right answer 7, reached only through "b c "):
    //   ""    → "a " (0.6) | "b " (0.4)
    //   "a "  → "ans:1" (1.0)                 greedy path: "a ans:1" → 1, wrong
    //   "b "  → "c " (0.5) | "d " (0.5)
    //   "b c " → "ans:7" (1.0);  "b d " → "ans:2" (1.0)
    static Dictionary<string, (string, double)[]> Tree1() => new()
    {
        [""] = [("a ", 0.6), ("b ", 0.4)],
        ["a "] = [("ans:1", 1.0)],
        ["b "] = [("c ", 0.5), ("d ", 0.5)],
        ["b c "] = [("ans:7", 1.0)],
        ["b d "] = [("ans:2", 1.0)],
    };

    // Tree 2: ""  → "a " (0.4) → "ans:1" | "b " (0.3) → "ans:7" | "c " (0.3) → "ans:7". Greedy takes "a " (wrong); 7 is the most likely answer.
    static Dictionary<string, (string, double)[]> Tree2() => new()
    {
        [""] = [("a ", 0.4), ("b ", 0.3), ("c ", 0.3)],
        ["a "] = [("ans:1", 1.0)],
        ["b "] = [("ans:7", 1.0)],
        ["c "] = [("ans:7", 1.0)],
    };

    static readonly SearchProblem Problem = new("Q:", new Dictionary<string, string>(),
        c => c.IndexOf("ans:", StringComparison.Ordinal) is var i and >= 0 && i + 4 < c.Length ? c[(i + 4)..] : null);

    // Step values of prefixes: the path to 7 scores highest at every depth.
    static readonly TableStepScorer Prm = new(new()
    {
        ["a "] = 0.2, ["b "] = 0.6, ["b c "] = 0.9, ["b d "] = 0.3, ["a ans:1"] = 0.1, ["b c ans:7"] = 0.95, ["b d ans:2"] = 0.2,
    });

    static readonly AnswerScorer Oracle = new(new() { ["7"] = 1.0 });
    static readonly AnswerScorer Soft = new(new() { ["7"] = 0.9, ["1"] = 0.1, ["2"] = 0.3 });

    static SearchContext Ctx(Dictionary<string, (string, double)[]> tree, SearchOptions o, IOutcomeScorer? outcome = null) =>
        new(new StubPolicy(tree), o, outcome ?? Soft, _ => Prm);

    static SearchResult Run(string strategy, SearchContext c, long seed = 3) => SearchStrategies.Create(strategy).Search(Problem, c, seed);

    [Fact]
    public void Greedy_follows_the_most_likely_steps_to_the_wrong_answer()
    {
        var r = Run("greedy", Ctx(Tree1(), new SearchOptions { BudgetTokens = 100 }));
        Assert.Equal("a ans:1", r.Completion);
        Assert.Equal("1", r.Answer);
        Assert.Equal(7, r.Cost.GeneratedTokens);
    }

    [Fact]
    public void Best_of_n_with_an_oracle_finds_the_right_answer()
    {
        // 10 samples on tree 1 (systematic): "a " 6, "b " 4 → "b c " 2, "b d " 2. The oracle scores the two "ans:7" ones 1.
        var r = Run("bon", Ctx(Tree1(), new SearchOptions { BudgetTokens = 200, MaxSamples = 10 }, Oracle));
        Assert.Equal("b c ans:7", r.Completion);
        Assert.Equal("7", r.Answer);
        Assert.Equal(10, r.Trace.Count);
        Assert.Equal(6 * 7 + 4 * 9, r.Cost.GeneratedTokens);   // "a ans:1" is 7 tokens, "b c ans:7" / "b d ans:2" 9
        Assert.Equal(1, r.Cost.ScorerCalls);
        Assert.Equal(10, r.Cost.ScoredSequences);
    }

    [Fact]
    public void Vote_picks_the_most_frequent_answer()
    {
        // Tree 2, 10 samples: "a " 4 (answer 1), "b " 3 and "c " 3 (answer 7): 7 wins 6 to 4, though greedy says 1.
        var c = Ctx(Tree2(), new SearchOptions { BudgetTokens = 200, MaxSamples = 10 });
        Assert.Equal("1", Run("greedy", c).Answer);
        var r = Run("vote", c);
        Assert.Equal("7", r.Answer);
        Assert.Equal(6, r.Trace.Count(n => n.Answer == "7"));
        Assert.Equal(0, r.Cost.ScorerCalls);
    }

    [Fact]
    public void Weighted_vote_is_right_where_the_plain_vote_is_wrong()
    {
        // Tree 1, 10 samples: answers 1 ×6, 7 ×2, 2 ×2. Plain vote: 1 (wrong).
        // Weighted by Soft (7 → 0.9, 1 → 0.1, 2 → 0.3): 1 → 6·0.1 = 0.6, 7 → 2·0.9 = 1.8, 2 → 2·0.3 = 0.6 → 7.
        var c = Ctx(Tree1(), new SearchOptions { BudgetTokens = 200, MaxSamples = 10 });
        Assert.Equal("1", Run("vote", c).Answer);
        var r = Run("weighted-vote", c);
        Assert.Equal("7", r.Answer);
        Assert.Equal("b c ans:7", r.Completion);
    }

    [Fact]
    public void Beam_search_follows_the_step_scores_to_the_right_answer()
    {
        // W = 2, E = 3. Depth 0: 3 samples of the root hold both "a " (0.2) and "b " (0.6) (each gets ⌊1.8⌋..⌈1.8⌉ or ⌊1.2⌋..⌈1.2⌉ ≥ 1).
        // Depth 1: "a " → "a ans:1" (finished, 0.1, pooled); "b " → "b c " 0.9 and "b d " 0.3; one slot left (W − pool) keeps "b c ".
        // Depth 2: "b c ans:7" (0.95) finished; pool = 2 = W → stop; best pooled: 0.95.
        var r = Run("beam", Ctx(Tree1(), new SearchOptions { BudgetTokens = 200, BeamWidth = 2, Expansions = 3 }));
        Assert.Equal("b c ans:7", r.Completion);
        Assert.Equal("7", r.Answer);
        // Tokens: depth 0: 3 × 2; depth 1: 3 × 5 ("ans:1") + 3 × 2; depth 2: 3 × 5.
        Assert.Equal(6 + 15 + 6 + 15, r.Cost.GeneratedTokens);
        Assert.Equal(3, r.Cost.ScorerCalls);
    }

    [Fact]
    public void Mcts_finds_the_right_answer_with_step_values_and_with_rollouts_alone()
    {
        // Step values: b (0.6) beats a (0.2) at the root; terminals take the outcome score (7 → 0.9 is the best).
        var r = Run("mcts", Ctx(Tree1(), new SearchOptions { BudgetTokens = 200, Expansions = 3 }));
        Assert.Equal("7", r.Answer);
        Assert.Equal("b c ans:7", r.Completion);
        // The tree is exhausted (root closed) before the budget: every leaf of tree 1 is in the trace, each terminal once.
        Assert.Equal(["1", "2", "7"], r.Trace.Where(n => n.Terminal).Select(n => n.Answer!).Order());
        // Root children's visits add up: every evaluated node below the root counts once in its ancestors.
        Assert.Equal(r.Trace.Count, r.Trace.Where(n => n.Parent == -1).Sum(n => n.Visits));

        // λ = 1 and no step scorer: values come from rollouts scored by the outcome scorer (AlphaMath's λ).
        var c = new SearchContext(new StubPolicy(Tree1()), new SearchOptions { BudgetTokens = 300, Expansions = 3, MctsLambda = 1 }, Soft);
        var r2 = Run("mcts", c);
        Assert.Equal("7", r2.Answer);

        // UCT selection and the most-visited path reach it too.
        var r3 = Run("mcts", Ctx(Tree1(), new SearchOptions { BudgetTokens = 200, Expansions = 3, MctsSelection = "uct", MctsPick = "visits" }));
        Assert.Equal("7", r3.Answer);
    }

    [Fact]
    public void Dvts_runs_independent_greedy_in_prm_subtrees_on_equal_budget_shares()
    {
        // N = 6 beams, M = 3 → 2 subtrees, each a beam of width 1 expanding 3 ways on 100 of the 200 tokens. In each: depth 0
        // draws both "a " (0.2) and "b " (0.6) among 3 root samples (⌊1.8⌋..⌈1.8⌉ and ⌊1.2⌋..⌈1.2⌉ ≥ 1) and keeps "b "; depth 1 draws
        // "c " and "d " and keeps "b c " (0.9 > 0.3); depth 2: three "ans:7" (merged), finished at 0.95 → the subtree stops.
        var r = Run("dvts", Ctx(Tree1(), new SearchOptions { BudgetTokens = 200, BeamWidth = 6, Expansions = 3 }));
        Assert.Equal("b c ans:7", r.Completion);
        Assert.Equal("7", r.Answer);
        Assert.Equal(2 * (3 * 2 + 3 * 2 + 3 * 5), r.Cost.GeneratedTokens);   // per subtree: 6 + 6 + 15
        Assert.Equal(2 * 3, r.Cost.ScorerCalls);
        Assert.Equal(10, r.Trace.Count);                                      // 5 nodes per subtree: a, b | b c, b d | b c ans:7
        Assert.Equal(4, r.Trace.Count(n => n.Parent == -1));                  // each subtree's two root children
        Assert.All(r.Trace.Skip(5).Where(n => n.Parent >= 0), n => Assert.True(n.Parent >= 5));   // the second subtree's own nodes
        // N < M: one subtree on the whole budget (27 tokens).
        Assert.Equal(27, Run("dvts", Ctx(Tree1(), new SearchOptions { BudgetTokens = 200, BeamWidth = 2, Expansions = 3 })).Cost.GeneratedTokens);
    }

    [Fact]
    public void Compute_optimal_bins_by_probe_scores_and_runs_the_bins_strategy_on_the_rest_of_the_budget()
    {
        // Difficulty = 1 − mean score (NaN counts 0): [1, 1, 0, NaN] → 0.5, not below 0.5 → hard; below 0.6 → easy.
        Assert.Equal("hard", ComputeOptimalSearch.Bin([1, 1, 0, double.NaN], 0.5));
        Assert.Equal("easy", ComputeOptimalSearch.Bin([1, 1, 0, double.NaN], 0.6));
        var o = new SearchOptions { BudgetTokens = 200, BeamWidth = 2, Expansions = 3, ProbeSamples = 4, DifficultyThreshold = 0.6 };
        // Tree 2 with the oracle: of 4 probe samples "a " takes ⌊1.6⌋..⌈1.6⌉, so 2 or 3 end in 7 → difficulty 0.5 or 0.25 → easy →
        // weighted vote on the 200 − 4·7 = 172 tokens left; 7 carries all the weight.
        var easy = Run("compute-optimal", Ctx(Tree2(), o, Oracle));
        Assert.Equal("compute-optimal:easy:weighted-vote", easy.Strategy);
        Assert.Equal("7", easy.Answer);
        // The vote spends all 172: rounds of 8, 5, 4, 2, 1, 1, 1, 1, 1 whole samples (24 × 7 = 168), then one cut at the 4 left.
        Assert.Equal(200, easy.Cost.GeneratedTokens);
        Assert.Equal(4 + 25, easy.Trace.Count);
        // Tree 1 with the oracle: "a " takes 2 or 3 of 4, "b c " at most 1 → difficulty ≥ 0.75 → hard → beam search.
        var hard = Run("compute-optimal", Ctx(Tree1(), o, Oracle));
        Assert.Equal("compute-optimal:hard:beam", hard.Strategy);
        Assert.Equal("7", hard.Answer);
        Assert.Contains("hard_strategy", Assert.Throws<ArgumentException>(() => (o with { HardStrategy = "compute-optimal" }).Validate()).Message);
        Assert.Contains("outcome scorer", Assert.Throws<ArgumentException>(() =>
            Run("compute-optimal", new SearchContext(new StubPolicy(Tree1()), o, null, _ => Prm))).Message);
    }

    public static TheoryData<string> Strategies => new(SearchStrategies.Names);

    [Theory]
    [MemberData(nameof(Strategies))]
    public void Every_strategy_stays_within_its_token_budget(string strategy)
    {
        foreach (int budget in new[] { 1, 5, 12, 30, 57, 100 })
        {
            var r = Run(strategy, Ctx(Tree1(), new SearchOptions { BudgetTokens = budget, Expansions = 3, BeamWidth = 2 }));
            Assert.True(r.Cost.GeneratedTokens <= budget, $"{strategy} spent {r.Cost.GeneratedTokens} of {budget}");
            Assert.True(r.Cost.GeneratedTokens > 0);
            // Sampling strategies keep every sample in the trace; beam and MCTS merge identical steps, whose tokens are
            // spent but not in the trace.
            long traced = r.Trace.Sum(n => (long)n.Tokens);
            if (strategy is "beam" or "mcts" or "dvts" or "compute-optimal") Assert.True(r.Cost.GeneratedTokens >= traced);
            else Assert.Equal(r.Cost.GeneratedTokens, traced);
        }
    }

    [Theory]
    [MemberData(nameof(Strategies))]
    public void Same_seed_same_result_and_trace(string strategy)
    {
        var o = new SearchOptions { BudgetTokens = 80, Expansions = 3, BeamWidth = 2, MctsLambda = strategy == "mcts" ? 0.5 : 0 };
        var a = Run(strategy, Ctx(Tree1(), o), seed: 11);
        var b = Run(strategy, Ctx(Tree1(), o), seed: 11);
        Assert.Equal(a.Completion, b.Completion);
        Assert.Equal(a.Answer, b.Answer);
        Assert.Equal(a.Trace, b.Trace);
        Assert.Equal(a.Cost with { Seconds = 0 }, b.Cost with { Seconds = 0 });
    }

    [Fact]
    public void Unknown_names_and_bad_options_are_errors_naming_them()
    {
        var e = Assert.Throws<ArgumentException>(() => SearchStrategies.Create("bfs"));
        Assert.Contains("'bfs'", e.Message);
        foreach (var n in new[] { "greedy", "bon", "vote", "weighted-vote", "beam", "mcts" }) Assert.Contains(n, e.Message);
        Assert.Contains("beam_width", Assert.Throws<ArgumentException>(() => new SearchOptions { BeamWidth = 0 }.Validate()).Message);
        Assert.Contains("mcts_lambda", Assert.Throws<ArgumentException>(() => new SearchOptions { MctsLambda = 2 }.Validate()).Message);
        Assert.Contains("budget_tokens", Assert.Throws<ArgumentException>(() => new SearchOptions { BudgetTokens = 0 }.Validate()).Message);
        // Beam needs a step scorer.
        var noSteps = new SearchContext(new StubPolicy(Tree1()), new SearchOptions(), Soft);
        Assert.Contains("step scorer", Assert.Throws<ArgumentException>(() => Run("beam", noSteps)).Message);
        var scorer = Assert.Throws<ArgumentException>(() => SearchScorerRegistry.Create("prm2:x", new Sharpen.Tasks.CountdownTask(), Sharpen.Data.StepSplitter.Countdown));
        Assert.Contains("verifier, reward-model:DIR", scorer.Message);
    }
}
