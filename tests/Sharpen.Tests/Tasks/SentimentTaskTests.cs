using Sharpen.Tasks;

namespace Sharpen.Tests.Tasks;

public class SentimentTaskTests
{
    [Fact]
    public void Labels_are_the_majority_polarity_of_the_words()
    {
        var task = (SentimentTask)TaskRegistry.Create("sentiment", new SentimentOptions { Words = 7, MaxPolarWords = 5 });
        var problems = task.Generate(200, seed: 3);
        Assert.Contains(problems, p => p.Answer == "good");
        Assert.Contains(problems, p => p.Answer == "bad");
        foreach (var p in problems)
        {
            var words = p.Fields["text"].Split(' ');
            Assert.Equal(7, words.Length);
            string[] pos = ["fun", "nice", "warm", "kind", "sweet", "bright"], neg = ["dull", "cold", "sad", "rude", "sour", "dark"];
            int np = words.Count(pos.Contains), nn = words.Count(neg.Contains);
            Assert.True((np + nn) % 2 == 1 && np + nn <= 5, p.Prompt);                // an odd number of polar words: no tie
            Assert.Equal(np > nn ? "good" : "bad", p.Answer);
            Assert.Equal($"review: {p.Fields["text"]}. label:", p.Prompt);
            Assert.All(p.Prompt + task.Solve(p), ch => Assert.Contains(ch, task.Alphabet));
        }
        Assert.Equal(problems.Select(p => p.Id), task.Generate(200, seed: 3).Select(p => p.Id));   // same seed, same problems
    }

    [Fact]
    public void The_verifier_reads_the_first_word_as_the_label()
    {
        var task = new SentimentTask();
        var p = SentimentTask.Create(["the", "film", "was", "fun"], "good");
        Assert.True(task.Verify(p, " good").Correct);
        Assert.True(task.Verify(p, "good. it was").Correct);
        var wrong = task.Verify(p, " bad");
        Assert.False(wrong.Correct);
        Assert.Equal(VerdictReasons.WrongValue, wrong.Reason);
        Assert.Equal(VerdictReasons.Unparsable, task.Verify(p, "goody").Reason);
        Assert.Equal(VerdictReasons.NoAnswer, task.Verify(p, "  ").Reason);
        Assert.Equal(1.0, task.Verify(p, task.Solve(p)).Reward);
    }
}
