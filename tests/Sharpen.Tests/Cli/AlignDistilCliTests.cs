using Sharpen.Checkpoints;
using Sharpen.Cli;
using Sharpen.Models;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Data;

namespace Sharpen.Tests.Cli;

/// <summary><c>sharpen train</c> on an <c>align_distil</c> recipe: it runs to report.md and summary.json, and a teacher folder
/// that does not exist is one <c>error:</c> line naming <c>align_distil.dpo_model</c>.</summary>
[Collection("console")]
public class AlignDistilCliTests
{
    [Fact]
    public void Train_runs_an_align_distil_recipe_and_names_a_missing_teacher()
    {
        using var dir = new TempDir();
        var tok = CharTokenizer.Create("abcd");
        var cfg = CausalLMTests.Tiny() with { VocabSize = tok.VocabSize, MaxPositionEmbeddings = 16 };
        using (var r = new CausalLM(cfg, 1)) HfCheckpoint.Save(dir.File("ref"), r, tok);
        using (var d = new CausalLM(cfg, 2)) HfCheckpoint.Save(dir.File("dpo"), d, tok);
        File.WriteAllText(dir.File("rows.jsonl"), "{\"prompt\": \"a\", \"completion\": \"cd\"}\n{\"prompt\": \"b\", \"completion\": \"dc\"}\n");
        string Yaml(string dpo) => $"""
            kind: align_distil
            output: {dir.File("run")}
            model: {"{"} path: {dir.File("ref")} {"}"}
            data: {"{"} train: {dir.File("rows.jsonl")} {"}"}
            align_distil: {"{"} dpo_model: {dpo}, alpha: 1.5, max_steps: 3, batch_size: 2, log_every: 1, checkpoint_every: 0 {"}"}
            """;
        File.WriteAllText(dir.File("r.yaml"), Yaml(dir.File("dpo")));
        var (code, output, err) = CliHarness.Root("train", dir.File("r.yaml"));
        Assert.True(code == 0, err);
        Assert.Contains("align_distil: 3 steps on 2 prompt/response rows", output);
        Assert.True(File.Exists(dir.File("run/report.md")));
        var summary = new RunLog(dir.File("run"), append: true).ReadSummary();
        Assert.Equal(3, summary["steps"]!.GetValue<int>());
        Assert.Equal(("completed", "align_distil"), (summary["status"]!.GetValue<string>(), summary["loss_name"]!.GetValue<string>()));

        File.WriteAllText(dir.File("bad.yaml"), Yaml(dir.File("nowhere")).Replace(dir.File("run"), dir.File("run2")));
        var (badCode, _, badErr) = CliHarness.Root("train", dir.File("bad.yaml"));
        Assert.Equal(1, badCode);
        var lines = badErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, badErr);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains("'align_distil.dpo_model'", lines[0]);
    }
}
