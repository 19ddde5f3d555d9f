using System.Text.Json.Nodes;
using Sharpen.Cli.Commands;
using Sharpen.Data;
using Sharpen.Tests.Serving;

namespace Sharpen.Tests.Cli;

/// <summary><c>sharpen data judge-steps</c> against a scripted judge server on loopback that checks arithmetic.</summary>
[Collection("console")]
public class JudgeStepsCommandTests
{
    [Fact]
    public void Judge_steps_writes_genprm_and_aurora_labels_as_step_labelled_jsonl()
    {
        using var server = ChatJudgeTests.Server(JudgeStepLabelerTests.Arithmetician);
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("solutions.jsonl"),
        [
            new JsonObject { ["prompt"] = "2 + 3 * 4", ["completion"] = "3 * 4 = 12\n2 + 12 = 15\n15 - 1 = 14", ["answer"] = "14" }.ToJsonString(),
            new JsonObject { ["prompt"] = "2 + 3 * 4", ["completion"] = "3 * 4 = 12\n2 + 12 = 14" }.ToJsonString(),
        ]);
        string[] common = ["data", "--judge-url", server.Url.TrimEnd('/'), "--data", dir.File("solutions.jsonl")];
        var (code, _, err) = CliHarness.Invoke(DataCommand.Create(), ["judge-steps", .. common[1..], "--out", dir.File("genprm.jsonl")]);
        Assert.True(code == 0, err);
        var rows = StepLabelledExample.Load(dir.File("genprm.jsonl")).Items;
        Assert.Equal(["3 * 4 = 12\n", "2 + 12 = 15\n", "15 - 1 = 14"], rows[0].Steps);
        Assert.Equal([1.0, 0.0, 0.0], rows[0].Labels);   // the second step is wrong; the third is not asked
        Assert.Equal([1.0, 1.0], rows[1].Labels);
        Assert.Equal("14", rows[0].Fields["reference"]);
        var summary = JsonNode.Parse(File.ReadAllText(dir.File("genprm.summary.json")))!;
        Assert.Equal((2, 0, 4), (summary["rows"]!.GetValue<int>(), summary["failed"]!.GetValue<int>(), summary["judge_requests"]!.GetValue<int>()));

        (code, _, err) = CliHarness.Invoke(DataCommand.Create(), ["judge-steps", .. common[1..], "--method", "aurora", "--out", dir.File("aurora.jsonl")]);
        Assert.True(code == 0, err);
        var aurora = StepLabelledExample.Load(dir.File("aurora.jsonl")).Items;
        // Signs [+ - +], first error 2 → [+ - -], per step [+ - +]: [1, 0, 2/3]; the final 14 matches the answer.
        Assert.Equal(1.0, aurora[0].Labels[0], 6);
        Assert.Equal(0.0, aurora[0].Labels[1], 6);
        Assert.Equal(2.0 / 3, aurora[0].Labels[2], 5);
        Assert.Equal("true", aurora[0].Fields["matches_reference"]);

        (code, _, err) = CliHarness.Invoke(DataCommand.Create(), ["judge-steps", .. common[1..], "--method", "vote", "--out", dir.File("x.jsonl")]);
        Assert.NotEqual(0, code);
        Assert.Contains("--method must be genprm or aurora, got 'vote'", err);
    }
}
