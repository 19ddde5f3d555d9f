using System.CommandLine;
using Sharpen.Checkpoints;
using Sharpen.Models;
using Sharpen.Tokenizers;

namespace Sharpen.Cli.Commands;

/// <summary><c>sharpen init</c>: a randomly initialised checkpoint for tests, benchmarks and the quickstart.</summary>
public static class InitCommand
{
    public static Command Create()
    {
        var config = new Option<FileInfo>("--config") { Description = "Hugging Face config.json describing the architecture", Required = true };
        var tokenizer = new Option<string>("--tokenizer") { Description = "chars:ALPHABET for a character tokenizer, or a folder holding tokenizer.json", Required = true };
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder to write the checkpoint into", Required = true };
        var seed = new Option<long>("--seed") { Description = "Seed of the random initialisation", DefaultValueFactory = _ => 0 };
        var cmd = new Command("init", "Write a randomly initialised model with a tokenizer as a Hugging Face folder.") { config, tokenizer, output, seed };
        cmd.SetAction(pr => CliErrors.Run(() =>
        {
            var dir = Run(pr.GetValue(config)!.FullName, pr.GetValue(tokenizer)!, pr.GetValue(output)!.FullName, pr.GetValue(seed));
            Console.WriteLine($"wrote {dir}");
            return 0;
        }));
        return cmd;
    }

    /// <summary>
    /// Builds the model from config.json and the tokenizer spec. The tokenizer's special-token ids
    /// fill bos/eos/pad when config.json leaves them out; vocab_size must cover the tokenizer.
    /// </summary>
    public static string Run(string configPath, string tokenizerSpec, string outDir, long seed)
    {
        var cfg = ModelConfig.Load(configPath);
        var tok = tokenizerSpec.StartsWith("chars:", StringComparison.Ordinal)
            ? TokenizerFiles.FromSpec(tokenizerSpec)
            : TokenizerFiles.Load(tokenizerSpec);
        if (cfg.VocabSize < tok.VocabSize)
            throw new ModelConfigException($"{configPath}: 'vocab_size' is {cfg.VocabSize} but the tokenizer has {tok.VocabSize} tokens");
        cfg = cfg with
        {
            BosTokenId = cfg.BosTokenId ?? tok.BosTokenId,
            EosTokenIds = cfg.EosTokenIds.Count > 0 ? cfg.EosTokenIds : tok.EosTokenId is { } e ? [e] : [],
            PadTokenId = cfg.PadTokenId ?? tok.PadTokenId,
        };
        using var model = new CausalLM(cfg, seed);
        HfCheckpoint.Save(outDir, model, tok);
        return outDir;
    }
}
