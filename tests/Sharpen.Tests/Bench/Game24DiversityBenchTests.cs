using Sharpen.Bench;
using Sharpen.Tasks;

namespace Sharpen.Tests.Bench;

/// <summary>How <c>bench diversity-game24</c> counts distinct correct solutions, on real Game24 verdicts.</summary>
public class Game24DiversityBenchTests
{
    [Fact]
    public void Distinct_correct_solutions_are_distinct_accepted_expressions_with_spaces_ignored()
    {
        var task = new Game24Task();
        var problem = task.Create([4, 7, 8, 8]);
        string[] completions =
        [
            " 7+4=11, 11-8=3, 8*3=24. answer: 8*(7+4-8)",          // 8·3 = 24: correct
            " 7+4=11, 11-8=3, 3*8=24. answer: 8 * (7+4-8)",        // the same expression with spaces: not a new solution
            " 8/8=1, 7-1=6, 6*4=24. answer: (7-8/8)*4",              // (7 − 1)·4 = 24: a second solution
            " 7+8=15, 15+8=23, 23+4=27. answer: 7+8+8+4",          // 27: wrong
            " 7+4=11. answer: 8*(7+4)",                            // 88, and not every number used: wrong
        ];
        var verdicts = completions.Select(c => task.Verify(problem, c)).ToList();
        Assert.Equal([true, true, true, false, false], verdicts.Select(v => v.Correct));
        Assert.Equal(2, Game24DiversityBench.DistinctCorrect(verdicts));
        Assert.Equal(0, Game24DiversityBench.DistinctCorrect(verdicts.Skip(3)));
    }
}
