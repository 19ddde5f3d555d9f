using System.Text.Json.Nodes;
using Sharpen.Cli.Commands;
using Sharpen.Data;
using Sharpen.Recipes;
using Sharpen.Tasks;
using Sharpen.Tests.Cli;
using Sharpen.Training.Preference;

namespace Sharpen.Tests.Training;

/// <summary>OPA-DPO's data: wrong on-policy samples revised by the verifier's corrected answer; the CLI writes both stages' files.</summary>
[Collection("console")]
public class OpaDpoDataTests
{
    [Fact]
    public void Wrong_samples_become_revision_pairs_and_correct_ones_are_left_alone()
    {
        var task = TaskRegistry.Create("countdown");
        var problems = task.Generate(3, 7).ToList();
        var right = task.Solve(problems[0]);
        var samples = new List<(Problem, string)> { (problems[0], right), (problems[1], "no idea"), (problems[2], "= 1") };
        var d = OpaDpoData.Build(task, samples);
        Assert.Equal((1, 0), (d.Correct, d.BadRevisions));
        Assert.Equal([problems[1].Prompt, problems[2].Prompt], d.Pairs.Select(p => p.Prompt));
        Assert.Equal(["no idea", "= 1"], d.Pairs.Select(p => p.Rejected));
        Assert.Equal([task.Solve(problems[1]), task.Solve(problems[2])], d.Pairs.Select(p => p.Chosen));
        Assert.Equal(d.Pairs.Select(p => p.Chosen), d.Sft.Select(s => s.Completion));
        // A reviser whose answer is still wrong: dropped and counted.
        var bad = OpaDpoData.Build(task, samples, (_, s) => s + "!");
        Assert.Equal((0, 2), (bad.Pairs.Count, bad.BadRevisions));
    }

    [Fact]
    public void The_cli_writes_sft_rows_and_pairs_that_both_recipes_read()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), """
            {"model_type":"qwen2","vocab_size":40,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,
             "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":128,"tie_word_embeddings":true}
            """);
        var task = TaskRegistry.Create("countdown");
        var (code, _, err) = CliHarness.Invoke(InitCommand.Create(), "--config", dir.File("config.json"), "--tokenizer", "chars:" + task.Alphabet, "--out", dir.File("m"));
        Assert.True(code == 0, err);
        DatasetWriter.MakeDataset(task, 4, 5, dir.File("p.jsonl"));
        (code, _, err) = CliHarness.Invoke(DataCommand.Create(), "opa-dpo", "--model", dir.File("m"), "--data", dir.File("p.jsonl"), "--task", "countdown",
            "--samples", "2", "--max-new-tokens", "8", "--out", dir.File("o"));
        Assert.True(code == 0, err);
        var summary = JsonNode.Parse(File.ReadAllText(dir.File("o/summary.json")))!;
        Assert.Equal(8, summary["samples"]!.GetValue<int>());
        var pairs = JsonlDataset.LoadPreferences(dir.File("o/pairs.jsonl")).Items;
        var sft = JsonlDataset.LoadSft(dir.File("o/sft.jsonl")).Items;
        // An untrained model is (almost surely) wrong everywhere; every wrong sample gives one pair.
        Assert.Equal(8 - summary["correct_samples"]!.GetValue<int>(), pairs.Count);
        Assert.Equal(pairs.Count, sft.Count);
        foreach (var p in pairs)
        {
            var problem = SftPipeline.ToProblem(sft.First(s => s.Prompt == p.Prompt));
            Assert.True(task.Verify(problem, p.Chosen).Correct);
            Assert.False(task.Verify(problem, p.Rejected).Correct);
        }
        Assert.Equal("sft", Recipe.Load(RepoPaths.Of("recipes", "opa-dpo-sft-countdown.yaml")).Kind);
        Assert.Equal("dpo", Recipe.Load(RepoPaths.Of("recipes", "opa-dpo-countdown.yaml")).PreferenceOptions().Loss);
    }
}
