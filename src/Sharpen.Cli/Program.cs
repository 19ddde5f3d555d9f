return Sharpen.Cli.SharpenCli.Run(args);
