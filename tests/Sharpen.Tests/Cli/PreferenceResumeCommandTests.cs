using Sharpen.Cli.Commands;
using Sharpen.Training;
using Sharpen.Data;

namespace Sharpen.Tests.Cli;

/// <summary><c>sharpen train --resume</c> for <c>preference</c> and <c>reward_model</c> recipes.</summary>
[Collection("console")]
public class PreferenceResumeCommandTests
{
    [Theory]
    [InlineData("preference")]
    [InlineData("reward_model")]
    public void Resume_continues_from_the_last_checkpoint(string kind)
    {
        using var dir = new TempDir();
        CliHarness.WritePairs(dir.File("pairs.jsonl"));
        File.WriteAllText(dir.File("r.yaml"), $"""
            kind: {kind}
            output: {dir.File("run")}
            model:
              init: {"{"} hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 64 {"}"}
              tokenizer: "chars:abcd"
            data: {"{"} train: {dir.File("pairs.jsonl")}, skip_bad_lines: true {"}"}
            {kind}: {"{"} max_steps: 4, batch_size: 2, log_every: 1, warmup_steps: 0, checkpoint_every: 2, keep_checkpoints: 1 {"}"}
            """);
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.True(code == 0, err + output);
        Assert.True(Directory.Exists(Path.Combine(dir.File("run"), "checkpoints", "checkpoint-2")));

        (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"), "--resume");
        Assert.True(code == 0, err + output);
        Assert.Contains("resumed from", output);
        Assert.Contains("at step 2", output);
        Assert.Equal([1, 2, 3, 4], new RunLog(dir.File("run"), append: true).ReadMetrics().Select(r => r["step"]!.GetValue<int>()));
    }
}
