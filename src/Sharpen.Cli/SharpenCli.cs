using System.CommandLine;
using Sharpen.Cli.Commands;

namespace Sharpen.Cli;

/// <summary>The <c>sharpen</c> command tree and its entry point; Program.cs only calls <see cref="Run"/>.</summary>
public static class SharpenCli
{
    /// <summary>Builds the root command with every subcommand and the global <c>--debug</c> flag.</summary>
    public static (RootCommand Root, Option<bool> Debug) Build()
    {
        Sharpen.LlamaCpp.LlamaCppEngines.Register();   // rollout engine 'llamacpp' for recipes and --engine
        var root = new RootCommand("sharpen: teach language models with rewards (RL, preferences, process supervision, search) on TorchSharp.");
        var debug = new Option<bool>("--debug") { Description = "On an error, print the stack trace after the one-line message", Recursive = true };
        root.Options.Add(debug);
        root.Subcommands.Add(InitCommand.Create());
        root.Subcommands.Add(GenerateCommand.Create());
        root.Subcommands.Add(DataCommand.Create());
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(QuickstartCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        return (root, debug);
    }

    /// <summary>Parses and runs <paramref name="args"/>; every error is one <c>error: ...</c> line and exit code 1.</summary>
    public static int Run(string[] args)
    {
        var (root, debug) = Build();
        var parsed = root.Parse(args);
        CliErrors.ShowStackTraces = parsed.GetValue(debug);
        try
        {
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            CliErrors.Report(e);
            return 1;
        }
    }
}
