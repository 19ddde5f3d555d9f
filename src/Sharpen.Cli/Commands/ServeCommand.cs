using System.CommandLine;
using Microsoft.Extensions.Logging;
using Sharpen.Serving;

namespace Sharpen.Cli.Commands;

/// <summary><c>sharpen serve</c>: the policy behind the OpenAI protocol (docs/architecture.md, Serving/).</summary>
public static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Checkpoint folder (config.json, model.safetensors, tokenizer)", Required = true };
        var host = new Option<string>("--host") { Description = "Address to listen on (loopback by default; 0.0.0.0 for every interface)", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port (0 picks a free one)", DefaultValueFactory = _ => 8000 };
        var maxBatch = new Option<int>("--max-batch") { Description = "Most sequences decoding at once (slots of the running batch; finished ones free theirs at once)", DefaultValueFactory = _ => 64 };
        var maxQueue = new Option<int>("--max-queue") { Description = "Most requests waiting; past it the server answers 429", DefaultValueFactory = _ => 256 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on /v1 (default: the SHARPEN_API_KEY variable, else none)" };
        var name = new Option<string?>("--model-name") { Description = "Model id clients ask for (default: the folder's name)" };
        var cors = new Option<string[]>("--cors-origin") { Description = "Allow browser requests from this origin (repeatable; off by default)" };
        var noReload = new Option<bool>("--no-reload") { Description = "Do not serve POST /v1/sharpen/reload" };
        var cmd = new Command("serve", "Serve a checkpoint through the OpenAI protocol (/v1/models, /v1/completions, /v1/chat/completions, /health).")
            { model, host, port, maxBatch, maxQueue, apiKey, name, cors, noReload };
        cmd.SetAction((pr, ct) => CliErrors.RunAsync(async () =>
        {
            var hostOptions = new PolicyHostOptions { MaxBatch = pr.GetValue(maxBatch), MaxQueue = pr.GetValue(maxQueue), ModelId = pr.GetValue(name) }.Validate();
            using var policy = PolicyHost.Load(pr.GetValue(model)!.FullName, hostOptions);
            var options = new ServerOptions
            {
                Host = pr.GetValue(host)!, Port = pr.GetValue(port),
                ApiKey = pr.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("SHARPEN_API_KEY"),
                CorsOrigins = pr.GetValue(cors) ?? [], EnableReload = !pr.GetValue(noReload),
                Logging = b => b.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; }).SetMinimumLevel(LogLevel.Warning),
            };
            await using var server = await OpenAiServer.StartAsync(policy, options, ct);
            Console.WriteLine($"serving {policy.ModelId} at {server.BaseAddress}v1 (max batch {hostOptions.MaxBatch}, queue {hostOptions.MaxQueue}{(options.ApiKey is null ? "" : ", API key required")}); Ctrl-C stops");
            try { await server.WaitForShutdownAsync(ct); }
            catch (OperationCanceledException) { }
            Console.WriteLine("stopping: finishing requests in flight");
            return 0;
        }));
        return cmd;
    }
}
