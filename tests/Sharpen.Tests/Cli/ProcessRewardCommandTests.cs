using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Cli.Commands;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tasks;
using Sharpen.Tokenizers;
using Sharpen.Training;

namespace Sharpen.Tests.Cli;

/// <summary><c>sharpen data label-steps</c> and <c>sharpen train</c> with <c>kind: prm</c> / <c>kind: implicit_prm</c>, end to end on tiny models.</summary>
[Collection("console")]
public class ProcessRewardCommandTests
{
    const string Init = "init: { hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 64 }";

    [Fact]
    public void Label_steps_writes_step_labels_outcomes_and_a_summary_with_token_counts()
    {
        using var dir = new TempDir();
        var task = new CountdownTask();
        var tok = CharTokenizer.Create(task.Alphabet);
        var modelDir = dir.File("policy");
        using (var m = new CausalLM(new ModelConfig
               {
                   VocabSize = tok.VocabSize, HiddenSize = 16, IntermediateSize = 32, NumHiddenLayers = 1, NumAttentionHeads = 2,
                   NumKeyValueHeads = 2, MaxPositionEmbeddings = 64, EosTokenIds = [tok.EosTokenId!.Value], BosTokenId = tok.BosTokenId, PadTokenId = tok.PadTokenId,
               }, seed: 1))
            HfCheckpoint.Save(modelDir, m, tok);
        DatasetWriter.MakeDataset(task, 3, seed: 1, dir.File("problems.jsonl"), testCount: 0);

        var (code, output, err) = CliHarness.Invoke(DataCommand.Create(), "label-steps", "--model", modelDir, "--data", dir.File("problems.jsonl"),
            "--task", "countdown", "--samples-per-problem", "2", "--rollouts", "2", "--steps", "delimiter:1", "--max-new-tokens", "8",
            "--out", dir.File("steps.jsonl"), "--outcomes", dir.File("outcomes.jsonl"), "--seed", "3");
        Assert.True(code == 0, err + output);
        var summary = JsonNode.Parse(File.ReadAllText(dir.File("steps.summary.json")))!;
        var rows = StepLabelledExample.Load(dir.File("steps.jsonl")).Items;
        Assert.Equal(rows.Count, summary["rows"]!.GetValue<int>());
        Assert.Equal(3, summary["problems"]!.GetValue<int>());
        Assert.Equal(rows.Sum(r => r.Steps.Count), summary["steps"]!.GetValue<int>());
        // N = 2 rollouts from every prefix but the last of each solution.
        Assert.Equal(rows.Sum(r => r.Steps.Count - 1) * 2, summary["rollouts"]!.GetValue<int>());
        Assert.Equal(summary["solution_tokens"]!.GetValue<long>() + summary["rollout_tokens"]!.GetValue<long>(), summary["generated_tokens"]!.GetValue<long>());
        Assert.InRange(summary["solution_tokens"]!.GetValue<long>(), 1, 3 * 2 * 8);
        Assert.All(rows, r => Assert.All(r.Labels, l => Assert.Contains(l, new[] { 0, 0.5, 1 })));
        Assert.All(rows, r => Assert.True(r.Fields.ContainsKey("target") && r.Fields.ContainsKey("soft_labels")));
        var outcomes = OutcomeExample.Load(dir.File("outcomes.jsonl")).Items;
        Assert.Equal(rows.Count, outcomes.Count);
        Assert.Equal(rows.Select(r => string.Concat(r.Steps)), outcomes.Select(o => o.Completion));
        Assert.Equal(rows.Select(r => r.Labels[^1]), outcomes.Select(o => o.Label));

        (code, _, err) = CliHarness.Invoke(DataCommand.Create(), "label-steps", "--model", modelDir, "--data", dir.File("problems.jsonl"),
            "--task", "countdown", "--steps", "sideways", "--out", dir.File("x.jsonl"));
        Assert.Equal(1, code);
        Assert.Contains("step splitter 'sideways'", err);
    }

    [Fact]
    public void Train_runs_a_prm_recipe_with_a_held_out_set()
    {
        using var dir = new TempDir();
        string Row(string s1, string s2, string l1, string l2) => $$"""{"prompt": "ab", "steps": ["{{s1}}", "{{s2}}"], "labels": [{{l1}}, {{l2}}]}""";
        File.WriteAllLines(dir.File("train.jsonl"), [Row("ab ", "cd", "true", "true"), Row("dd ", "ab", "false", "false"), Row("ab ", "dd", "1", "0.25"), "oops"]);
        File.WriteAllLines(dir.File("test.jsonl"), [Row("ab ", "cd", "true", "true"), Row("dd ", "cd", "false", "false")]);
        File.WriteAllText(dir.File("r.yaml"), $"""
            kind: prm
            output: {dir.File("run")}
            model:
              {Init}
              tokenizer: "chars:abcd "
            data: {"{"} train: {dir.File("train.jsonl")}, test: {dir.File("test.jsonl")}, skip_bad_lines: true {"}"}
            prm: {"{"} max_steps: 3, batch_size: 2, log_every: 1, warmup_steps: 0, step_splitter: "delimiter: " {"}"}
            """);
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.True(code == 0, err + output);
        Assert.Contains("prm: 3 steps on 3 solutions (1 lines skipped)", output);
        Assert.Contains("first-wrong-step F1", output);
        var run = dir.File("run");
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Count(l => l.Trim().Length > 0));
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal(3, summary["steps"]!.GetValue<int>());
        Assert.Equal(1, summary["skipped_lines"]!.GetValue<int>());
        Assert.Equal(6, summary["labelled_steps"]!.GetValue<int>());
        Assert.NotNull(summary["held_out_first_error_f1"]);
        using var prm = new ProcessRewardModel(Path.Combine(run, "final"));
        Assert.Equal(["ab ", "cd"], prm.Splitter.Split("ab cd"));
        Assert.True(File.Exists(Path.Combine(run, "report.md")));
    }

    [Fact]
    public void Train_runs_an_implicit_prm_recipe()
    {
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("outcomes.jsonl"),
        [
            """{"prompt": "ab", "completion": "c\nd", "label": 1}""",
            """{"prompt": "ab", "completion": "d\nd", "label": 0}""",
            """{"prompt": "ba", "completion": "c", "reward": 1.0}""",
            """{"prompt": "ba", "completion": "a", "label": false}""",
        ]);
        File.WriteAllText(dir.File("r.yaml"), $"""
            kind: implicit_prm
            output: {dir.File("run")}
            model:
              {Init}
              tokenizer: "chars:abcd\n"
            data: {"{"} train: {dir.File("outcomes.jsonl")} {"}"}
            implicit_prm: {"{"} loss: dpo, beta: 0.1, max_steps: 2, batch_size: 2, log_every: 1, warmup_steps: 0 {"}"}
            """);
        var (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"));
        Assert.True(code == 0, err + output);
        Assert.Contains("implicit prm (dpo): 2 steps on 2 pairs", output);
        var run = dir.File("run");
        var rows = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Where(l => l.Trim().Length > 0).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(2, rows.Count);
        Assert.Equal(Math.Log(2), rows[0]["loss"]!.GetValue<double>(), 5);   // the policy starts as the reference: −log σ(0)
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal(2, summary["correct_completions"]!.GetValue<int>());
        Assert.True(Directory.Exists(Path.Combine(run, "final", ImplicitPrm.ReferenceFolder)));
        using var prm = ImplicitPrm.Load(Path.Combine(run, "final"));
        Assert.Equal(0.1, prm.Beta);

        // No checkpoint was written (2 steps, checkpoint_every 100): --resume starts from scratch and the metrics hold each step once.
        (code, output, err) = CliHarness.Invoke(TrainCommand.Create(), dir.File("r.yaml"), "--resume");
        Assert.True(code == 0, err + output);
        Assert.Contains("starting from scratch", output);
        Assert.Equal([1, 2], File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Where(l => l.Trim().Length > 0)
            .Select(l => JsonNode.Parse(l)!["step"]!.GetValue<int>()));
    }
}
