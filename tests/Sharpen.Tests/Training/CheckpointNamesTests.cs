using Sharpen.Training;

namespace Sharpen.Tests.Training;

/// <summary>Checkpoint folders: transformers' <c>checkpoint-N</c>, ordered by step (not by name), and the older <c>step-NNNNNNN</c> still listed.</summary>
public class CheckpointNamesTests
{
    [Fact]
    public void List_orders_new_and_old_names_by_step()
    {
        using var dir = new TempDir();
        foreach (var name in new[] { "checkpoint-10", "step-0000002", "checkpoint-3", "checkpoint-7", "checkpoint-x", "other" })
        {
            Directory.CreateDirectory(dir.File(name));
            if (name != "checkpoint-7") File.WriteAllText(Path.Combine(dir.File(name), "trainer_state.json"), "{}");   // 7 is incomplete
        }
        Assert.Equal(["step-0000002", "checkpoint-3", "checkpoint-10"], TrainingCheckpoint.List(dir.Path).Select(Path.GetFileName));
        Assert.Equal("checkpoint-10", Path.GetFileName(TrainingCheckpoint.Latest(dir.Path)));
    }
}
