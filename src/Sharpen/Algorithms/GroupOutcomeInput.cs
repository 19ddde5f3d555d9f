using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// Inputs of the group-relative estimators (GRPO, Dr. GRPO, RLOO). The <paramref name="GroupSize"/> samples of one prompt
/// are consecutive rows, so B must be a multiple of G.
/// </summary>
/// <param name="Rewards">Outcome reward per sequence, <c>(B)</c>.</param>
/// <param name="ResponseMask">1 at real response tokens, 0 at padding, <c>(B, A)</c>.</param>
/// <param name="GroupSize">G, the number of samples per prompt.</param>
public sealed record GroupOutcomeInput(Tensor Rewards, Tensor ResponseMask, int GroupSize);
