using Sharpen.Models;

namespace Sharpen.Bench;

/// <summary>The two model sizes the benchmarks measure (vocabulary of a character/byte-level task).</summary>
public static class BenchModels
{
    /// <summary>~3.4M parameters: d=256, 4 layers, 4 heads.</summary>
    public static ModelConfig Small => new()
    {
        ModelType = "llama", VocabSize = 512, HiddenSize = 256, IntermediateSize = 688, NumHiddenLayers = 4,
        NumAttentionHeads = 4, NumKeyValueHeads = 4, MaxPositionEmbeddings = 1024, TieWordEmbeddings = false,
        EosTokenIds = [2], BosTokenId = 1, PadTokenId = 0,
    };

    /// <summary>~25.8M parameters: d=512, 8 layers, 8 heads.</summary>
    public static ModelConfig Medium => new()
    {
        ModelType = "llama", VocabSize = 512, HiddenSize = 512, IntermediateSize = 1376, NumHiddenLayers = 8,
        NumAttentionHeads = 8, NumKeyValueHeads = 8, MaxPositionEmbeddings = 1024, TieWordEmbeddings = false,
        EosTokenIds = [2], BosTokenId = 1, PadTokenId = 0,
    };

    /// <summary>Both, with labels.</summary>
    public static IReadOnlyList<(string Name, ModelConfig Config)> All => [("3M", Small), ("25M", Medium)];
}
