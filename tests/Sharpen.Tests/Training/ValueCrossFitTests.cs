using Sharpen.Training;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;
using Sharpen.Training.Rl;

namespace Sharpen.Tests.Training;

/// <summary>A-LoL's out-of-sample value: prompt folds and the cross-fitted head.</summary>
public class ValueCrossFitTests
{
    [Fact]
    public void Folds_split_by_prompt_deterministically_with_the_seed()
    {
        // 7 prompts (one to three rows each), 3 folds: every row of a prompt shares its fold; the 7 prompts are dealt 3/2/2.
        string[] prompts = ["p0", "p1", "p1", "p2", "p3", "p3", "p3", "p4", "p5", "p6", "p0"];
        var folds = ValueCrossFit.PromptFolds(prompts, 3, seed: 1);
        Assert.Equal(prompts.Length, folds.Length);
        foreach (var g in prompts.Select((p, i) => (p, f: folds[i])).GroupBy(x => x.p)) Assert.Single(g.Select(x => x.f).Distinct());
        var promptsPerFold = prompts.Select((p, i) => (p, f: folds[i])).Distinct().GroupBy(x => x.f).Select(g => g.Count()).OrderBy(c => c);
        Assert.Equal([2, 2, 3], promptsPerFold);
        Assert.Equal(folds, ValueCrossFit.PromptFolds(prompts, 3, seed: 1));
        Assert.Contains(Enumerable.Range(2, 20), s => !ValueCrossFit.PromptFolds(prompts, 3, s).SequenceEqual(folds));
        // Fewer prompts than folds: one prompt per fold. One fold: everything in fold 0 (in-sample).
        Assert.Equal(2, ValueCrossFit.PromptFolds(["a", "b", "a"], 5, seed: 1).Distinct().Count());
        Assert.Equal([0, 0, 0], ValueCrossFit.PromptFolds(["a", "b", "a"], 1, seed: 1));
    }

    [Fact]
    public void A_single_prompt_cannot_be_cross_fitted_and_the_message_says_what_to_do()
    {
        var e = Assert.Throws<ArgumentException>(() => ValueCrossFit.PromptFolds(["a", "a", "a"], 5, seed: 1));
        Assert.Contains("offline_pg.value_folds = 5", e.Message);
        Assert.Contains("1 distinct prompt", e.Message);
        Assert.Contains("value_folds: 1", e.Message);
    }

    [Fact]
    public void With_constant_features_each_folds_value_is_the_mean_reward_of_the_other_folds()
    {
        using var scope = NewDisposeScope();
        // Zero features leave the head its bias, whose MSE optimum is the mean target of the rows it is fitted on.
        // Prompt A rows R (1, 0.8), B (0, 0.2), C (0.5, 0.5); one prompt per fold.
        //   in-sample: V = mean of all six = 3/6 = 0.5 for every row.
        //   cross-fitted: V_A = mean(B, C) = 1.2/4 = 0.3; V_B = mean(A, C) = 2.8/4 = 0.7; V_C = mean(A, B) = 2/4 = 0.5.
        var features = zeros(6, 4);
        float[] r = [1, 0.8f, 0, 0.2f, 0.5f, 0.5f];
        int[] fold = [0, 0, 1, 1, 2, 2];
        var cross = ValueCrossFit.Fit(features, r, fold, steps: 1000, learningRate: 0.01);
        Close([0.3, 0.3, 0.7, 0.7, 0.5, 0.5], tensor(cross), 2e-3);
        var inSample = ValueCrossFit.Fit(features, r, new int[6], steps: 1000, learningRate: 0.01);
        Close([0.5, 0.5, 0.5, 0.5, 0.5, 0.5], tensor(inSample), 2e-3);
    }

    [Fact]
    public void A_prompts_own_rewards_never_move_its_value()
    {
        using var scope = NewDisposeScope();
        // Four prompts, one completion each, one-hot features: in-sample the head interpolates, V = R and every A = 0 —
        // the failure the cross-fit is for. Cross-fitted, changing prompt 0's reward leaves V of prompt 0 exactly as it
        // was (its rows are only ever scored, never fitted on) while the other prompts' values move.
        var features = eye(4);
        float[] r = [1, 0, 0.5f, 0.2f];
        int[] fold = [0, 1, 2, 3];
        var inSample = ValueCrossFit.Fit(features, r, new int[4], steps: 1000, learningRate: 0.05);
        Close(r.Select(x => (double)x).ToArray(), tensor(inSample), 1e-2);

        var cross = ValueCrossFit.Fit(features, r, fold, steps: 1000, learningRate: 0.05);
        var moved = ValueCrossFit.Fit(features, [-5, 0, 0.5f, 0.2f], fold, steps: 1000, learningRate: 0.05);
        Assert.Equal(cross[0], moved[0]);
        Assert.All(Enumerable.Range(1, 3), i => Assert.NotEqual(cross[i], moved[i]));
        Assert.True(Math.Abs(cross[0] - r[0]) > 0.1, $"cross-fitted V {cross[0]} should not reproduce R {r[0]}");
    }
}
