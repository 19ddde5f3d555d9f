using Sharpen.Rewards;

namespace Sharpen.Tests.Rewards;

public class PrmMetricsTests
{
    [Fact]
    public void First_error_accuracy_on_erroneous_and_correct_solutions_and_their_harmonic_mean()
    {
        double[][] labels =
        [
            [1, 1, 0, 0],      // first wrong step 2
            [1, 0],            // first wrong step 1
            [0.2, 1],          // first wrong step 0 (0.2 < 0.5)
            [1, 1],            // correct
            [1, 0.6, 1],       // correct
        ];
        double[][] scores =
        [
            [0.9, 0.8, 0.3, 0.1],   // predicted 2: hit
            [0.4, 0.2],             // predicted 0: miss
            [0.1, 0.9],             // predicted 0: hit
            [0.9, 0.7],             // predicted none: hit
            [0.9, 0.45, 0.9],       // predicted 1: miss
        ];
        var r = PrmMetrics.FirstError(labels, scores);
        // Erroneous: 2 of 3; correct: 1 of 2; F1 = 2·(2/3)(1/2)/((2/3)+(1/2)) = (2/3)/(7/6) = 4/7.
        Assert.Equal(3, r.Erroneous);
        Assert.Equal(2, r.Correct);
        Assert.Equal(2.0 / 3, r.ErroneousAccuracy, 12);
        Assert.Equal(0.5, r.CorrectAccuracy, 12);
        Assert.Equal(4.0 / 7, r.F1, 12);
        // Step accuracy: row0 4/4, row1 1/2 (0.4 vs 1 wrong), row2 2/2, row3 2/2, row4 2/3 → 11/13.
        Assert.Equal(11.0 / 13, PrmMetrics.StepAccuracy(labels, scores), 12);
        // With no correct solutions the correct accuracy and F1 are undefined.
        Assert.True(double.IsNaN(PrmMetrics.FirstError([labels[0]], [scores[0]]).F1));
        Assert.Null(PrmMetrics.FirstBelow([0.5, 0.7], 0.5));
    }

    [Fact]
    public void Best_of_n_picks_the_highest_score_and_the_first_on_ties()
    {
        bool[][] correct = [[false, true, false], [true, false], [false, true], [false, false]];
        double[][] scores = [[0.1, 0.9, 0.5], [0.3, 0.3], [0.7, 0.7], [0.2, 0.8]];
        // Group 0 picks index 1 (correct); group 1 ties → index 0 (correct); group 2 ties → index 0 (wrong); group 3 wrong. 2/4.
        Assert.Equal(0.5, PrmMetrics.BestOfN(correct, scores), 12);
        Assert.Throws<ArgumentException>(() => PrmMetrics.BestOfN([[true]], [[0.1, 0.2]]));
    }
}
