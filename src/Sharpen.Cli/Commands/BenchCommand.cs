using System.CommandLine;
using Sharpen.Bench;

namespace Sharpen.Cli.Commands;

/// <summary><c>sharpen bench generate|train</c>: the benchmark programs in bench/.</summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var dir = new Option<DirectoryInfo>("--dir") { Description = "The bench/ folder to write results/ and README.md into", DefaultValueFactory = _ => new DirectoryInfo("bench") };
        var gen = new Command("generate", "Decode tokens/s for ~3M and ~25M models at batch 1/16/64, with and without the KV cache.") { dir };
        gen.SetAction(pr => CliErrors.Run(() => { BenchReport.Write(pr.GetValue(dir)!.FullName, GenerateBench.Run(Console.WriteLine)); return 0; }));
        var train = new Command("train", "Training tokens/s and GFLOPS against the measured fp32 matmul GFLOPS.") { dir };
        train.SetAction(pr => CliErrors.Run(() => { BenchReport.Write(pr.GetValue(dir)!.FullName, TrainBench.Run(Console.WriteLine)); return 0; }));
        var budget = new Option<double>("--budget") { Description = "Training seconds per algorithm", DefaultValueFactory = _ => 90 };
        var work = new Option<string>("--work") { Description = "Scratch folder (SFT model, per-algorithm runs)", DefaultValueFactory = _ => "runs/bench-rl" };
        var rl = new Command("rl", "PPO, ReMax, GRPO, RLOO and REINFORCE on one SFT model: s/iteration, peak memory, accuracy over a time budget.") { dir, budget, work };
        rl.SetAction(pr => CliErrors.Run(() =>
        {
            var self = Environment.ProcessPath!;
            var entry = System.Reflection.Assembly.GetEntryAssembly()!.Location;
            var child = Path.GetFileNameWithoutExtension(self) == "dotnet" ? $"{self} {entry}" : self;
            var result = RlBench.Run(Console.WriteLine, pr.GetValue(work)!, child, pr.GetValue(budget));
            BenchReport.PlotRl(pr.GetValue(dir)!.FullName, result);
            BenchReport.Write(pr.GetValue(dir)!.FullName, result);
            return 0;
        }));
        var algorithm = new Option<string>("--algorithm") { Required = true };
        var one = new Command("rl-one", "One algorithm of `bench rl` (run by it in a child process).") { algorithm, budget, work };
        one.Hidden = true;
        one.SetAction(pr => CliErrors.Run(() => { RlBench.RunOne(pr.GetValue(algorithm)!, pr.GetValue(work)!, pr.GetValue(budget)); return 0; }));
        return new Command("bench", "Benchmarks (results in bench/results, table in bench/README.md).") { gen, train, rl, one };
    }
}
