using Sharpen.Data;
using System.CommandLine;
using Sharpen.Checkpoints;
using Sharpen.Generation;

namespace Sharpen.Cli.Commands;

/// <summary><c>sharpen generate</c>: sample completions from any supported Hugging Face folder.</summary>
public static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Checkpoint folder (config.json, model.safetensors, tokenizer)", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "Prompt text", Required = true };
        var samples = new Option<int>("--samples") { Description = "Completions to draw", DefaultValueFactory = _ => 1 };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature; 0 is greedy", DefaultValueFactory = _ => 1.0 };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling mass", DefaultValueFactory = _ => 1.0 };
        var topK = new Option<int>("--top-k") { Description = "Keep the K most likely tokens (0 = all)", DefaultValueFactory = _ => 0 };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Most tokens per completion", DefaultValueFactory = _ => 64 };
        var seed = new Option<long>("--seed") { Description = "Sampling seed", DefaultValueFactory = _ => 0 };
        var stop = new Option<string[]>("--stop") { Description = "Stop strings", AllowMultipleArgumentsPerToken = false };
        var chat = new Option<bool>("--chat")
        {
            Description = "Treat --prompt as a user message and render it with the checkpoint's chat template (or the plain <|role|> format when it has none)",
        };
        var engineFlags = new EngineFlags();
        var cmd = new Command("generate", "Generate completions for a prompt.") { model, prompt, samples, temperature, topP, topK, maxNew, seed, stop, chat };
        engineFlags.AddTo(cmd);
        cmd.SetAction(pr => CliErrors.Run(() =>
        {
            var loaded = HfCheckpoint.Load(pr.GetValue(model)!.FullName, requireTokenizer: true);
            using var policy = loaded.Model;
            var engine = RolloutEngines.Create(engineFlags.Spec(pr), policy, loaded.Tokenizer!);
            using var disposeEngine = engine as IDisposable;
            var options = new SamplingOptions
            {
                SamplesPerPrompt = pr.GetValue(samples),
                Temperature = pr.GetValue(temperature),
                TopP = pr.GetValue(topP),
                TopK = pr.GetValue(topK),
                MaxNewTokens = pr.GetValue(maxNew),
                Seed = pr.GetValue(seed),
                StopStrings = pr.GetValue(stop) ?? [],
            };
            var text = pr.GetValue(prompt)!;
            if (pr.GetValue(chat)) text = ChatFormat.ForTokenizer(loaded.Tokenizer!).RenderPrompt([new ChatMessage("user", text)]);
            foreach (var r in engine.Generate([text], options))
            {
                Console.WriteLine($"--- sample {r.SampleIndex} ({r.CompletionIds.Length} tokens, stop: {r.Stop.ToString().ToLowerInvariant()})");
                Console.WriteLine(r.CompletionText);
            }
            return 0;
        }));
        return cmd;
    }
}
