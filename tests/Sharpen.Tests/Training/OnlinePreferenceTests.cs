using System.Text.Json.Nodes;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Training;
using Sharpen.Recipes;
using Sharpen.Training.Preference;
using Sharpen.Training.Rl;
using Sharpen.Checkpoints;
using Sharpen.Data;

namespace Sharpen.Tests.Training;

/// <summary>DNO and SPIN as settings of <see cref="OnlineDpoTrainer"/>, P3O in <see cref="RlTrainer"/>, on the shared bandit.</summary>
public class OnlinePreferenceTests
{
    /// <summary>The bandit prompt "a" whose data completion (SPIN's real answer, DNO's gold answer) is the rewarded "c".</summary>
    static List<RlPrompt> PromptsWithAnswer(int n) =>
        Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string> { [OnlineDpoTrainer.DataCompletionField] = "c" }), n).ToList();

    static Dictionary<string, float[]> Snapshot(CausalLM m) => WeightValues.Of(m);

    static double MaxDiff(Dictionary<string, float[]> a, Dictionary<string, float[]> b) =>
        a.Keys.Max(k => a[k].Zip(b[k]).Max(p => (double)Math.Abs(p.First - p.Second)));

    [Fact]
    public void Dno_moves_the_reference_to_the_previous_iterate_and_online_dpo_keeps_the_initial_one()
    {
        foreach (var update in new[] { ReferenceUpdate.PreviousIterate, ReferenceUpdate.Initial })
        {
            using var dir = new TempDir();
            using var model = Bandit.Model();
            var initial = Snapshot(model);
            var afterIteration = new Dictionary<int, Dictionary<string, float[]>>();
            var referenceAt = new Dictionary<int, Dictionary<string, float[]>>();
            var o = OnlineDpoOptions.Dno() with
            {
                Iterations = 3, PromptsPerIteration = 8, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2, ReferenceUpdate = update,
            };
            new OnlineDpoTrainer(model, Bandit.Tok, o, Bandit.RewardC)
            {
                AfterIteration = (it, policy, reference) => { afterIteration[it] = Snapshot(policy); referenceAt[it] = Snapshot(reference!); },
            }.Run(PromptsWithAnswer(8), dir.Path);
            Assert.True(MaxDiff(afterIteration[1], initial) > 1e-4);           // iteration 1 trained
            if (update == ReferenceUpdate.PreviousIterate)
            {
                Assert.Equal(0, MaxDiff(referenceAt[1], initial));             // π_1's reference is π_0 = the start
                Assert.Equal(0, MaxDiff(referenceAt[2], afterIteration[1]));   // iteration 2 compares against the iterate-1 weights
                Assert.Equal(0, MaxDiff(referenceAt[3], afterIteration[2]));
            }
            else
            {
                Assert.Equal(0, MaxDiff(referenceAt[3], initial));
            }
        }
    }

    [Fact]
    public void Dno_keeps_only_pairs_whose_margin_clears_the_threshold_and_scores_the_gold_answer()
    {
        // Candidates of one prompt: samples scored 0.2 and 0.6, and the gold answer 1.0 (appended last).
        Assert.Null(OnlineDpoTrainer.SelectPair([0.2, 0.6], PairSelection.BestVsWorst, minMargin: 0.5));
        Assert.Equal((2, 0), OnlineDpoTrainer.SelectPair([0.2, 0.6, 1.0], PairSelection.BestVsWorst, minMargin: 0.5));

        // In the loop: a judge that gives every sample 0 and "c" 1. With the gold "c" a candidate, every prompt whose samples
        // are not all "c" gets a pair with margin 1; with a threshold above 1 none is kept and the policy does not move.
        using var dir = new TempDir();
        using var model = Bandit.Model();
        var before = Snapshot(model);
        var o = OnlineDpoOptions.Dno() with { Iterations = 2, PromptsPerIteration = 6, SamplesPerPrompt = 2, MaxNewTokens = 1, LearningRate = 1e-2, MinMargin = 1.5 };
        new OnlineDpoTrainer(model, Bandit.Tok, o, Bandit.RewardC).Run(PromptsWithAnswer(6), dir.Path);
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.All(rows, r => { Assert.Equal(0, r["pairs"]!.GetValue<int>()); Assert.Equal(6, r["prompts_without_pairs"]!.GetValue<int>()); });
        Assert.Equal(0, MaxDiff(before, Snapshot(model)));
    }

    [Fact]
    public void Dno_trains_on_every_pair_that_passes_and_online_dpo_on_one_per_prompt()
    {
        // The gold answer "cc" is two tokens; the samples are one (max_new_tokens 1), so the judge below scores every sample
        // 0 and the gold 1. all_margin: the gold against each of the 3 samples = 3 pairs per prompt, 4 prompts → 12;
        // best_vs_worst: gold vs the first sample = 1 per prompt → 4. No prompt is left without a pair.
        IReadOnlyList<WeightedReward> judge = [new(new DelegateReward("is_cc", c => c.Completion == "cc" ? 1.0 : 0.0))];
        var prompts = Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string> { [OnlineDpoTrainer.DataCompletionField] = "cc" }), 4).ToList();
        foreach (var (selection, perIteration) in new[] { (PairSelection.AllMargin, 12), (PairSelection.BestVsWorst, 4) })
        {
            using var dir = new TempDir();
            using var model = Bandit.Model();
            var o = OnlineDpoOptions.Dno() with
            {
                Iterations = 2, PromptsPerIteration = 4, SamplesPerPrompt = 3, MaxNewTokens = 1, LearningRate = 1e-3, PairSelection = selection,
            };
            var result = new OnlineDpoTrainer(model, Bandit.Tok, o, judge).Run(prompts, dir.Path);
            var rows = new RunLog(dir.Path, append: true).ReadMetrics();
            Assert.All(rows, r => { Assert.Equal(perIteration, r["pairs"]!.GetValue<int>()); Assert.Equal(0, r["prompts_without_pairs"]!.GetValue<int>()); });
            Assert.Equal(2 * perIteration, result.TotalPairs);
        }
    }

    [Fact]
    public void Dno_learns_the_bandit()
    {
        using var dir = new TempDir();
        using var model = Bandit.Model();
        double before = Bandit.ProbabilityOfC(model);
        var o = OnlineDpoOptions.Dno() with { Iterations = 15, PromptsPerIteration = 16, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2 };
        var result = new OnlineDpoTrainer(model, Bandit.Tok, o, Bandit.RewardC).Run(PromptsWithAnswer(16), dir.Path);
        double after = Bandit.ProbabilityOfC(model);
        Assert.True(after > 0.8, $"p(c) went from {before:F3} to {after:F3}");
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal("dno", summary["algorithm"]!.GetValue<string>());
        Assert.Equal("PreviousIterate", summary["reference_update"]!.GetValue<string>());
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.True(Math.Abs(rows[0]["kl_ref"]!.GetValue<double>()) < 1e-4);   // iteration 1: π_1 is its own reference
        Assert.True(result.TotalPairs > 0);
    }

    [Fact]
    public void Dno_can_end_with_its_best_iterate_on_held_out_prompts()
    {
        // The last prompt, "v", is held out. The judge scores it from a script, one value per validation pass, so the best
        // iterate is the 2nd of 4 (0.9; the 4th ties at 0.9 and the earlier wins); every training prompt is scored as the bandit.
        double[] script = [0.2, 0.9, 0.5, 0.9];
        int calls = 0;
        var judge = new DelegateReward("judge", c => c.Prompt == "v" ? script[calls++] : c.Completion == "c" ? 1.0 : 0.0);
        var prompts = PromptsWithAnswer(8).Append(new RlPrompt("v", new Dictionary<string, string> { [OnlineDpoTrainer.DataCompletionField] = "c" })).ToList();
        var seen = new List<Dictionary<string, float[]>>();
        using var dir = new TempDir();
        using var model = Bandit.Model();
        var o = OnlineDpoOptions.Dno() with { Iterations = 4, PromptsPerIteration = 8, SamplesPerPrompt = 4, MaxNewTokens = 1, LearningRate = 1e-2, ValidationPrompts = 1 };
        new OnlineDpoTrainer(model, Bandit.Tok, o, [new(judge)]) { AfterIteration = (_, m, _) => seen.Add(Snapshot(m)) }.Run(prompts, dir.Path);

        Assert.Equal(4, calls);   // "v" was scored once per iteration, by the validation pass only: never sampled for training
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.Equal(script, rows.Select(r => r["validation_reward"]!.GetValue<double>()));
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        Assert.Equal((2, 0.9, 1), (summary["best_iteration"]!.GetValue<int>(), summary["best_validation_reward"]!.GetValue<double>(), summary["validation_prompts"]!.GetValue<int>()));
        Assert.True(MaxDiff(seen[1], seen[3]) > 1e-4);          // iterates 2 and 4 differ, so the check below can tell them apart
        Assert.True(MaxDiff(seen[1], Snapshot(model)) < 1e-6);  // the policy ends as iterate 2
        var final = Sharpen.Checkpoints.HfCheckpoint.Load(Path.Combine(dir.Path, "final"));
        using (final.Model) Assert.True(MaxDiff(seen[1], Snapshot(final.Model)) < 1e-6);

        Assert.Contains("leaves none of the 9 prompts", Assert.Throws<ArgumentException>(() =>
            new OnlineDpoTrainer(Bandit.Model(), Bandit.Tok, o with { ValidationPrompts = 9 }, [new(judge)]).Run(prompts, dir.Path)).Message);
        Assert.Contains("dno.validation_prompts", Assert.Throws<ArgumentException>(() => (o with { ValidationPrompts = -1 }).Validate()).Message);
    }

    [Fact]
    public void Spin_learns_the_real_answer_from_self_play()
    {
        using var dir = new TempDir();
        using var model = Bandit.Model();
        double before = Bandit.ProbabilityOfC(model);
        var o = OnlineDpoOptions.Spin() with { Iterations = 15, PromptsPerIteration = 16, MaxNewTokens = 1, LearningRate = 1e-2, UpdatesPerIteration = 2 };
        var result = new OnlineDpoTrainer(model, Bandit.Tok, o, []).Run(PromptsWithAnswer(16), dir.Path);
        double after = Bandit.ProbabilityOfC(model);
        Assert.True(after > 0.8, $"p(c) went from {before:F3} to {after:F3}");
        var rows = new RunLog(dir.Path, append: true).ReadMetrics();
        Assert.All(rows, r => Assert.Equal(16, r["pairs"]!.GetValue<int>()));   // one (real, opponent) pair per prompt and sample
        Assert.Equal(15 * 16, result.TotalPairs);

        // SPIN without the real answers is an error naming the method.
        using var model2 = Bandit.Model();
        var e = Assert.Throws<ArgumentException>(() => new OnlineDpoTrainer(model2, Bandit.Tok, o, [])
            .Run([new RlPrompt("a", new Dictionary<string, string>())], dir.Path));
        Assert.Contains("spin", e.Message);
    }

    [Fact]
    public void A_stopped_and_resumed_online_run_ends_with_the_weights_of_an_uninterrupted_run()
    {
        var prompts = "a b c d ab cd".Split(' ').Select(p => new RlPrompt(p, new Dictionary<string, string>())).ToList();
        IReadOnlyList<WeightedReward> rewards = [new(new DelegateReward("len", c => c.Completion.Length / 4.0))];
        var o = new OnlineDpoOptions
        {
            Iterations = 4, PromptsPerIteration = 4, SamplesPerPrompt = 3, MaxNewTokens = 3, LearningRate = 5e-3, CheckpointEvery = 2,
            KeepCheckpoints = 1, UpdatesPerIteration = 2, MiniBatchSize = 2, PairSelection = PairSelection.Random,
        };
        using var straightDir = new TempDir();
        using var straight = Bandit.Model(seed: 3);
        new OnlineDpoTrainer(straight, Bandit.Tok, o, rewards).Run(prompts, straightDir.Path);

        using var stoppedDir = new TempDir();
        using (var first = Bandit.Model(seed: 3))
        {
            using var cts = new CancellationTokenSource();
            var t = new OnlineDpoTrainer(first, Bandit.Tok, o, rewards) { AfterIteration = (it, _, _) => { if (it == 3) cts.Cancel(); } };
            Assert.Throws<OperationCanceledException>(() => t.Run(prompts, stoppedDir.Path, cancel: cts.Token));
        }
        using var resumed = Bandit.Model(seed: 77);
        new OnlineDpoTrainer(resumed, Bandit.Tok, o, rewards).Run(prompts, stoppedDir.Path, resume: true);
        Assert.True(MaxDiff(Snapshot(straight), Snapshot(resumed)) < 1e-6);
        Assert.Equal([1, 2, 3, 4], new RunLog(stoppedDir.Path, append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>()));
    }

    [Fact]
    public void P3o_learns_the_bandit_with_two_samples_per_prompt()
    {
        using var dir = new TempDir();
        using var model = Bandit.Model();
        double before = Bandit.ProbabilityOfC(model);
        var o = RlOptions.P3o() with { Iterations = 40, PromptsPerIteration = 16, MaxNewTokens = 1, LearningRate = 1e-2, Beta = 0.01, EvalEvery = 0, MiniBatchSize = 16, MicroBatchSize = 8 };
        new RlTrainer(model, Bandit.Tok, o, Bandit.RewardC).Run(Enumerable.Repeat(new RlPrompt("a", new Dictionary<string, string>()), 16).ToList(), dir.Path);
        double after = Bandit.ProbabilityOfC(model);
        Assert.True(after > 0.8, $"p3o: p(c) went from {before:F3} to {after:F3}");
    }

    [Fact]
    public void Bad_online_options_name_their_section_and_key()
    {
        Assert.Contains("dno.min_margin", Assert.Throws<ArgumentException>(() => (OnlineDpoOptions.Dno() with { MinMargin = -1 }).Validate()).Message);
        Assert.Contains("spin.samples_per_prompt", Assert.Throws<ArgumentException>(() => (OnlineDpoOptions.Spin() with { SamplesPerPrompt = 0 }).Validate()).Message);
        Assert.Contains("online_dpo.mini_batch_size", Assert.Throws<ArgumentException>(() => new OnlineDpoOptions { MiniBatchSize = -1 }.Validate()).Message);
        Assert.Contains("rl.samples_per_prompt must be 2 for p3o", Assert.Throws<ArgumentException>(() => (RlOptions.P3o() with { SamplesPerPrompt = 4 }).Validate()).Message);
        Assert.Contains("rl.micro_batch_size", Assert.Throws<ArgumentException>(() => (RlOptions.P3o() with { MicroBatchSize = 5 }).Validate()).Message);
    }

    [Theory]
    [InlineData("online-dpo-countdown.yaml", "online_dpo", "dpo")]
    [InlineData("dno-countdown.yaml", "dno", "dpo")]
    [InlineData("spin-countdown.yaml", "spin", "spin")]
    public void Shipped_online_preference_recipes_parse_over_their_presets(string file, string algorithm, string loss)
    {
        var r = Recipe.Load(RepoPaths.Of("recipes", file));
        var o = r.OnlinePreferenceOptions();
        Assert.Equal(algorithm, r.Kind);
        Assert.Equal(algorithm, o.Algorithm);
        Assert.Equal(loss, o.Loss);
        Assert.Equal(algorithm == "online_dpo" ? ReferenceUpdate.Initial : ReferenceUpdate.PreviousIterate, o.ReferenceUpdate);
        Assert.Equal(algorithm == "spin" ? PairSource.DataVsSample : PairSource.Samples, o.PairSource);
    }

    [Fact]
    public void The_dno_preset_and_recipe_carry_the_papers_settings_and_online_dpo_keeps_best_vs_worst()
    {
        // DNO §5.1 (arXiv:2404.03715): learning rate 5e-5, temperature 0.7, top-p 0.95, one epoch, batches of 64; all pairs
        // that clear the margin.
        var preset = OnlineDpoOptions.Dno();
        Assert.Equal(5e-5, preset.LearningRate);
        Assert.Equal(PairSelection.AllMargin, preset.PairSelection);
        Assert.Equal(0.7, preset.Temperature);
        Assert.Equal(0.95, preset.TopP);
        Assert.Equal(1, preset.UpdatesPerIteration);
        Assert.Equal(64, preset.MiniBatchSize);
        Assert.Null(preset.MinPositiveScore);
        Assert.Null(preset.StudentMargin);

        var recipe = Recipe.Load(RepoPaths.Of("recipes", "dno-countdown.yaml")).OnlinePreferenceOptions();
        Assert.Equal(1e-5, recipe.LearningRate);   // the recipe departs from the preset (measured; see its header)
        Assert.Equal(PairSelection.AllMargin, recipe.PairSelection);
        Assert.Equal(0.95, recipe.TopP);
        // A dno section with nothing in it is the preset.
        const string head = "model: { path: m }\ntask: { name: countdown }\n";
        var bare = Recipe.Parse("kind: dno\n" + head + "dno: { iterations: 3 }\n").OnlinePreferenceOptions();
        Assert.Equal((5e-5, PairSelection.AllMargin), (bare.LearningRate, bare.PairSelection));

        // online_dpo is unchanged: one best-vs-worst pair per prompt, no nucleus cut.
        var online = Recipe.Load(RepoPaths.Of("recipes", "online-dpo-countdown.yaml")).OnlinePreferenceOptions();
        Assert.Equal(PairSelection.BestVsWorst, online.PairSelection);
        Assert.Equal((PairSelection.BestVsWorst, 1.0), (new OnlineDpoOptions().PairSelection, new OnlineDpoOptions().TopP));

        // The new keys bind by their snake_case names and are checked with the section's name.
        var keys = Recipe.Parse("kind: online_dpo\n" + head +
            "online_dpo: { pair_selection: all_margin, min_positive_score: 0.8, student_margin: 0.25, top_p: 0.9 }\n").OnlinePreferenceOptions();
        Assert.Equal((PairSelection.AllMargin, 0.8, 0.25, 0.9), (keys.PairSelection, keys.MinPositiveScore, keys.StudentMargin, keys.TopP));
        string Bad(string yaml) => Assert.Throws<RecipeException>(() => Recipe.Parse(yaml, "r.yaml")).Message;
        Assert.Contains("dno.student_margin", Bad("kind: dno\n" + head + "dno: { student_margin: -1 }\n"));
        Assert.Contains("dno.top_p", Bad("kind: dno\n" + head + "dno: { top_p: 0 }\n"));
    }

    [Fact]
    public void The_p3o_recipe_parses_over_its_preset_and_online_sections_are_checked()
    {
        var o = Recipe.Load(RepoPaths.Of("recipes", "p3o-countdown.yaml")).RlOptions();
        Assert.Equal("p3o", o.Algorithm);
        Assert.Equal(2, o.SamplesPerPrompt);
        const string head = "model: { path: m }\ntask: { name: countdown }\n";
        string Bad(string yaml) => Assert.Throws<RecipeException>(() => Recipe.Parse(yaml, "r.yaml")).Message;
        Assert.Contains("'dno.min_margn'", Bad("kind: dno\n" + head + "dno: { min_margn: 1 }\n"));
        Assert.Contains("'spin' section in a 'dno' recipe", Bad("kind: dno\n" + head + "spin: { iterations: 1 }\n"));
        Assert.Contains("needs a 'task'", Bad("kind: online_dpo\nmodel: { path: m }\ndata: { train: x }\n"));
        Assert.Contains("'dno.algorithm' is set by 'kind'", Bad("kind: dno\n" + head + "dno: { algorithm: spin }\n"));
        Assert.Equal(0.3, Recipe.Parse("kind: spin\nmodel: { path: m }\ndata: { train: x }\nspin: { beta: 0.3 }\n").OnlinePreferenceOptions().Beta);
    }
}
