// The consumer program .ci/package-check builds in a fresh temporary project that references the packed Sharpen
// package (not this repository): a tiny random model saved as a Hugging Face folder, then one sampled completion.
// Usage: Program <checkpoint-dir> <prompt> <max-new-tokens> <seed>
using Sharpen.Checkpoints;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;

var (dir, prompt, maxNew, seed) = (args[0], args[1], int.Parse(args[2]), long.Parse(args[3]));
var tokenizer = CharTokenizer.Create("abcdefgh ");
using var model = new CausalLM(new ModelConfig
{
    VocabSize = tokenizer.VocabSize, HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 2,
    NumAttentionHeads = 4, NumKeyValueHeads = 2, MaxPositionEmbeddings = 64,
}, seed: 7);
HfCheckpoint.Save(dir, model, tokenizer);
var rollout = new RolloutEngine(model, tokenizer)
    .Generate([prompt], new SamplingOptions { Temperature = 1, MaxNewTokens = maxNew, Seed = seed })[0];
// The line the script compares with what the installed sharpen tool samples from the saved folder with the same seed.
Console.WriteLine($"completion ({rollout.CompletionIds.Length} tokens): {rollout.CompletionText}");
