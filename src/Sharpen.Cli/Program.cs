Sharpen.Torch.TorchRuntime.EnsureLoaded();
Console.WriteLine("sharpen: commands arrive in the next commits");
