using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>
/// The one-token bandit the RL tests share: vocabulary of 4 specials + "abcd" (8 tokens), prompt "a",
/// reward 1 for the completion "c" only. A near-uniform tiny model starts at p(c) ≈ 1/8.
/// </summary>
static class Bandit
{
    public static readonly CharTokenizer Tok = CharTokenizer.Create("abcd");

    public static CausalLM Model(long seed = 1) =>
        new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, InitializerRange = 0.02, MaxPositionEmbeddings = 32 }, seed);

    public static readonly IReadOnlyList<WeightedReward> RewardC = [new(new DelegateReward("is_c", c => c.Completion == "c" ? 1.0 : 0.0))];

    /// <summary>π(c | "a") under <paramref name="m"/>.</summary>
    public static double ProbabilityOfC(CausalLM m)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var ids = Tok.Encode("a").Select(i => (long)i).ToArray();
        var probs = m.Forward(tensor(ids).view(1, -1)).Logits[0, -1].softmax(-1);
        return probs[Tok.Encode("c", addSpecialTokens: false)[0]].item<float>();
    }
}
