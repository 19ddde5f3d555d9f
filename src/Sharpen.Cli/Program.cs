using System.CommandLine;
using Sharpen.Cli.Commands;

var root = new RootCommand("sharpen: teach language models with rewards (RL, preferences, process supervision, search) on TorchSharp.");
root.Subcommands.Add(InitCommand.Create());
root.Subcommands.Add(GenerateCommand.Create());
root.Subcommands.Add(ServeCommand.Create());
root.Subcommands.Add(DataCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(EvalCommand.Create());
root.Subcommands.Add(QuickstartCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
return await root.Parse(args).InvokeAsync();
