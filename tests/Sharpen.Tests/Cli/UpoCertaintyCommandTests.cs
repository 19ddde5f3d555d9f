using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Cli.Commands;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Rewards;

namespace Sharpen.Tests.Cli;

/// <summary><c>sharpen data upo-certainty</c> on three tiny reward models with random heads, checked against BALD's mutual
/// information computed from each model's own scores of the same pairs.</summary>
[Collection("console")]
public class UpoCertaintyCommandTests
{
    const string TinyConfig = """
    {"model_type":"qwen2","vocab_size":40,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,
     "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":128,"tie_word_embeddings":true}
    """;

    static double H(double p) => -(p * Math.Log(p) + (1 - p) * Math.Log(1 - p));

    [Fact]
    public void The_certainty_column_is_one_minus_the_ensembles_mutual_information_over_ln2()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), TinyConfig);
        var (code, _, err) = CliHarness.Invoke(InitCommand.Create(), "--config", dir.File("config.json"), "--tokenizer", "chars:0123456789+-*=>", "--out", dir.File("m"));
        Assert.True(code == 0, err);
        var loaded = HfCheckpoint.Load(dir.File("m"), requireTokenizer: true);
        using (loaded.Model)
            for (int k = 0; k < 3; k++)
            {
                using var head = new ScalarHead(loaded.Model.Config.HiddenSize, initStd: 0.5);
                HfCheckpoint.Save(dir.File($"rm{k}"), loaded.Model, loaded.Tokenizer, head);
            }
        (string P, string C, string R)[] pairs = [("1 2 -> 3", "1+2=3", "1*2=3"), ("4 5 -> 9", "4+5=9", "5-4=9"), ("2 2 -> 4", "2*2=4", "2-2=4")];
        File.WriteAllLines(dir.File("pairs.jsonl"), pairs.Select(p => new JsonObject { ["prompt"] = p.P, ["chosen"] = p.C, ["rejected"] = p.R }.ToJsonString()));

        (code, _, err) = CliHarness.Invoke(DataCommand.Create(), "upo-certainty", "--reward-model", dir.File("rm0"), "--reward-model", dir.File("rm1"),
            "--reward-model", dir.File("rm2"), "--data", dir.File("pairs.jsonl"), "--out", dir.File("upo.jsonl"));
        Assert.True(code == 0, err);
        var rows = JsonlDataset.LoadPreferences(dir.File("upo.jsonl")).Items;
        Assert.Equal(3, rows.Count);
        // Independently: each model scores chosen and rejected; P_m = σ(Δ_m); u = H(p̄) − mean H(P_m); certainty = 1 − u/ln 2.
        var delta = new double[3][];
        for (int k = 0; k < 3; k++)
        {
            using var rm = new ModelReward(dir.File($"rm{k}"));
            var s = rm.Score([.. pairs.Select(p => (p.P, p.C)), .. pairs.Select(p => (p.P, p.R))]);
            delta[k] = [s[0] - s[3], s[1] - s[4], s[2] - s[5]];
        }
        var certainties = new List<double>();
        for (int i = 0; i < 3; i++)
        {
            var p = delta.Select(d => 1 / (1 + Math.Exp(-d[i]))).ToArray();
            double u = H(p.Average()) - p.Select(H).Average();
            certainties.Add(1 - u / Math.Log(2));
            Assert.Equal(1 - u / Math.Log(2), double.Parse(rows[i].Fields["certainty"], System.Globalization.CultureInfo.InvariantCulture), 4);
            Assert.Equal(p.Average(), double.Parse(rows[i].Fields["label_probability"], System.Globalization.CultureInfo.InvariantCulture), 4);
        }
        var summary = JsonNode.Parse(File.ReadAllText(dir.File("upo.summary.json")))!;
        Assert.Equal(certainties.Average(), summary["mean_certainty"]!.GetValue<double>(), 4);

        // --keep 2: two distinct pairs of the three; one member is an error naming the option.
        (code, _, err) = CliHarness.Invoke(DataCommand.Create(), "upo-certainty", "--reward-model", dir.File("rm0"), "--reward-model", dir.File("rm1"),
            "--data", dir.File("pairs.jsonl"), "--out", dir.File("kept.jsonl"), "--keep", "2");
        Assert.True(code == 0, err);
        var kept = JsonlDataset.LoadPreferences(dir.File("kept.jsonl")).Items;
        Assert.Equal(2, kept.Select(r => r.Prompt).Distinct().Count());
        (code, _, err) = CliHarness.Invoke(DataCommand.Create(), "upo-certainty", "--reward-model", dir.File("rm0"), "--data", dir.File("pairs.jsonl"), "--out", dir.File("x.jsonl"));
        Assert.NotEqual(0, code);
        Assert.Contains("--reward-model: UPO's uncertainty needs at least two reward models", err);
    }
}
