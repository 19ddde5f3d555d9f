using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>Inputs of REINFORCE with a scalar baseline (Williams 1992), e.g. from <see cref="MovingAverageBaseline"/>.</summary>
/// <param name="Rewards">Reward of each sequence, <c>(B)</c>.</param>
/// <param name="ResponseMask">1 at real response tokens, 0 at padding, <c>(B, A)</c>.</param>
/// <param name="Baseline">The baseline b subtracted from every reward.</param>
public sealed record BaselineInput(Tensor Rewards, Tensor ResponseMask, double Baseline);
