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
        return new Command("bench", "Benchmarks (results in bench/results, table in bench/README.md).") { gen, train };
    }
}
