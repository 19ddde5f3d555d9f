using System.CommandLine;
using Sharpen.Checkpoints;
using Sharpen.Export;

namespace Sharpen.Cli.Commands;

/// <summary><c>sharpen export gguf</c>: write a checkpoint folder as one GGUF file for llama.cpp (and what runs on it).</summary>
public static class ExportCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Checkpoint folder (config.json, model.safetensors, tokenizer)", Required = true };
        var output = new Option<FileInfo>("--out") { Description = "GGUF file to write", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "Weight storage: f32, f16 or q8_0 (norms and biases stay f32)", DefaultValueFactory = _ => "f32" };
        dtype.AcceptOnlyFromAmong("f32", "f16", "q8_0");
        var gguf = new Command("gguf", "Write the model and its tokenizer as a GGUF v3 file that llama.cpp loads.") { model, output, dtype };
        gguf.SetAction(pr => CliErrors.Run(() =>
        {
            var type = pr.GetValue(dtype) switch { "f16" => GgufDType.F16, "q8_0" => GgufDType.Q8_0, _ => GgufDType.F32 };
            var loaded = HfCheckpoint.Load(pr.GetValue(model)!.FullName, requireTokenizer: true);
            using var policy = loaded.Model;
            var path = pr.GetValue(output)!.FullName;
            GgufExporter.Export(policy, loaded.Tokenizer!, path, type);
            Console.WriteLine($"wrote {path} ({new FileInfo(path).Length / 1e6:F1} MB, {policy.Config.ModelType}, {pr.GetValue(dtype)})");
            return 0;
        }));
        return new Command("export", "Export a checkpoint for other engines.") { gguf };
    }
}
