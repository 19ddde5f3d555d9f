using System.CommandLine;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Recipes;
using Sharpen.Tasks;
using Sharpen.Training.Preference;

namespace Sharpen.Cli.Commands;

/// <summary>
/// <c>sharpen data opa-dpo --model DIR --data problems.jsonl --task countdown --out DIR [--samples K]</c>: OPA-DPO's data
/// (<see cref="OpaDpoData"/>): K on-policy samples per problem, each wrong one revised by the verifier's corrected answer;
/// writes <c>sft.jsonl</c> (the revisions: stage 1), <c>pairs.jsonl</c> (revision ≻ sample: stage 2) and <c>summary.json</c>.
/// </summary>
public static class OpaDpoCommand
{
    /// <summary>The <c>opa-dpo</c> subcommand of <c>data</c>.</summary>
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Policy checkpoint folder (its samples are the on-policy data)", Required = true };
        var data = new Option<string>("--data") { Description = "Problems JSONL as `data make` writes it", Required = true };
        var task = new Option<string>("--task") { Description = $"Verifier and reviser: {string.Join(", ", TaskRegistry.Names)}", Required = true };
        var samples = new Option<int>("--samples") { Description = "Samples per problem", DefaultValueFactory = _ => 2 };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature", DefaultValueFactory = _ => 1.0 };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Most new tokens per sample", DefaultValueFactory = _ => 64 };
        var seed = new Option<long>("--seed") { Description = "Sampling seed", DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--out") { Description = "Output folder (sft.jsonl, pairs.jsonl, summary.json)", Required = true };
        var cmd = new Command("opa-dpo", "OPA-DPO data: on-policy samples, wrong ones revised by the verifier's corrected answer; SFT rows of the revisions and DPO pairs (revision ≻ sample)")
            { model, data, task, samples, temperature, maxNew, seed, output };
        cmd.SetAction(pr => CliErrors.Run(() =>
        {
            var t = TaskRegistry.Create(pr.GetValue(task)!);
            int k = pr.GetValue(samples);
            if (k < 1) throw new ArgumentException($"--samples must be ≥ 1, got {k}");
            var dataPath = pr.GetValue(data)!;
            var problems = JsonlDataset.LoadSft(dataPath).Items.Select(SftPipeline.ToProblem).ToList();
            if (problems.Count == 0) throw new ArgumentException($"{dataPath}: no problems");
            var loaded = HfCheckpoint.Load(pr.GetValue(model)!, requireTokenizer: true);
            using var policy = loaded.Model;
            var engine = new RolloutEngine(policy, loaded.Tokenizer!);
            var rollouts = engine.Generate(problems.Select(p => p.Prompt).ToList(), new SamplingOptions
            {
                Temperature = pr.GetValue(temperature), MaxNewTokens = pr.GetValue(maxNew), SamplesPerPrompt = k, Seed = pr.GetValue(seed),
            });
            var result = OpaDpoData.Build(t, [.. rollouts.Select(r => (problems[r.PromptIndex], r.CompletionText))]);
            var outDir = pr.GetValue(output)!;
            OpaDpoData.Write(result, outDir);
            var summary = new JsonObject
            {
                ["problems"] = problems.Count, ["samples"] = rollouts.Count, ["correct_samples"] = result.Correct,
                ["revised_pairs"] = result.Pairs.Count, ["bad_revisions"] = result.BadRevisions, ["task"] = t.Name, ["model"] = pr.GetValue(model),
            };
            AtomicFile.WriteAllText(Path.Combine(outDir, "summary.json"), summary.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"opa-dpo: {rollouts.Count} samples, {result.Correct} correct, {result.Pairs.Count} revised into sft.jsonl and pairs.jsonl in {outDir}");
            return 0;
        }));
        return cmd;
    }
}
