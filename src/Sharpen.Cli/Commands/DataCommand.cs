using System.CommandLine;
using Sharpen.Data;
using Sharpen.Tasks;

namespace Sharpen.Cli.Commands;

/// <summary>
/// <c>sharpen data make --task countdown --n 20000 --seed 1 --out data/countdown.jsonl [--split 0.05] [--task-option max_numbers=3 ...]</c>:
/// writes generated problems with worked solutions as SFT JSONL; with <c>--split</c> writes
/// <c>name.train.jsonl</c> and <c>name.test.jsonl</c>, which never share a problem.
/// </summary>
public static class DataCommand
{
    /// <summary>The <c>data</c> command with its <c>make</c> subcommand.</summary>
    public static Command Create()
    {
        var task = new Option<string>("--task")
        {
            Description = $"Task to generate: {string.Join(", ", TaskRegistry.Names.Where(n => n != "gsm8k"))}",
            Required = true,
        };
        var n = new Option<int>("--n") { Description = "Number of distinct problems", DefaultValueFactory = _ => 1000 };
        var seed = new Option<int>("--seed") { Description = "Generation seed (same seed, same file)", DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--out") { Description = "Output JSONL path, e.g. data/countdown.jsonl", Required = true };
        var split = new Option<double>("--split")
        {
            Description = "Fraction of problems for a test file; writes <name>.train.jsonl and <name>.test.jsonl",
            DefaultValueFactory = _ => 0.0,
        };

        var taskOption = new Option<string[]>("--task-option")
        {
            Description = "A task option as key=value, the keys of a recipe's task section (repeatable), e.g. --task-option min_numbers=4 --task-option max_numbers=4",
            AllowMultipleArgumentsPerToken = false,
        };

        var make = new Command("make", "Generate problems with worked solutions as {\"prompt\",\"completion\",...fields} JSONL")
        {
            task, n, seed, output, split, taskOption,
        };
        make.SetAction(parseResult =>
        {
            var stdout = parseResult.InvocationConfiguration.Output;
            var stderr = parseResult.InvocationConfiguration.Error;
            try
            {
                var pairs = parseResult.GetValue(taskOption) ?? [];
                var t = pairs.Length == 0 ? TaskRegistry.Create(parseResult.GetValue(task)!)
                    : Recipes.TaskSection.FromPairs(parseResult.GetValue(task)!, pairs, "--task-option").Build("--task-option");
                var result = DatasetWriter.MakeDataset(t, parseResult.GetValue(n), parseResult.GetValue(seed),
                    parseResult.GetValue(output)!, parseResult.GetValue(split));
                var written = result.TrainCount + result.TestCount;
                if (written < result.Requested)
                    stderr.WriteLine($"warning: {t.Name} yielded only {written} distinct problems of the {result.Requested} asked for");
                stdout.WriteLine(result.TestCount == 0
                    ? $"wrote {result.TrainCount} problems to {result.Files[0]}"
                    : $"wrote {result.TrainCount} problems to {result.Files[0]} and {result.TestCount} to {result.Files[1]}");
                stdout.WriteLine($"duplicates skipped: {result.DuplicatesSkipped}");
                return 0;
            }
            catch (ArgumentException e)
            {
                stderr.WriteLine($"error: {e.Message}");
                return 1;
            }
            catch (InvalidOperationException e)
            {
                stderr.WriteLine($"error: {e.Message}");
                return 1;
            }
            catch (Recipes.RecipeException e)
            {
                stderr.WriteLine($"error: {e.Message}");
                return 1;
            }
        });

        return new Command("data", "Make and inspect datasets") { make, LabelStepsCommand.Create(), OpaDpoCommand.Create(), UpoCertaintyCommand.Create(), JudgeStepsCommand.Create() };
    }
}
