using Sharpen.Tasks;

namespace Sharpen.Tests.Tasks;

public class TaskRegistryTests
{
    [Fact]
    public void KnowsTheBuiltInTasks()
    {
        Assert.Equal(["arithmetic", "countdown", "game24", "gsm8k"], TaskRegistry.Names.Where(n => n is "arithmetic" or "countdown" or "game24" or "gsm8k"));
        Assert.IsType<CountdownTask>(TaskRegistry.Create("countdown"));
        Assert.IsType<CountdownTask>(TaskRegistry.Create("Countdown"));
        Assert.IsType<Game24Task>(TaskRegistry.Create("game24", new Game24Options { MaxNumber = 10 }));
        Assert.IsType<ArithmeticTask>(TaskRegistry.Create("arithmetic"));
        var options = new CountdownOptions { UseAllNumbers = true };
        Assert.Same(options, ((CountdownTask)TaskRegistry.Create("countdown", options)).Options);
    }

    [Fact]
    public void UnknownNameListsTheKnownOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => TaskRegistry.Create("sudoku"));
        Assert.Contains("unknown task 'sudoku'", e.Message);
        Assert.Contains("arithmetic, countdown, game24, gsm8k", e.Message);
    }

    [Fact]
    public void WrongOptionsTypeOrMissingFileThrow()
    {
        var e = Assert.Throws<ArgumentException>(() => TaskRegistry.Create("countdown", new Game24Options()));
        Assert.Contains("CountdownOptions", e.Message);
        Assert.Throws<ArgumentException>(() => TaskRegistry.Create("gsm8k"));
    }

    [Fact]
    public void DuplicateRegistrationThrows() =>
        Assert.Throws<ArgumentException>(() => TaskRegistry.Register("countdown", _ => new CountdownTask()));
}
