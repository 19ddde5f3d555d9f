using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>Inputs of ReMax (Li et al. 2023, arXiv:2310.10505).</summary>
/// <param name="Rewards">Reward of each sampled sequence, <c>(B)</c>.</param>
/// <param name="ResponseMask">1 at real response tokens, 0 at padding, <c>(B, A)</c>.</param>
/// <param name="BaselineRewards">Reward of the greedy completion of the same row's prompt, <c>(B)</c>.</param>
public sealed record RemaxInput(Tensor Rewards, Tensor ResponseMask, Tensor BaselineRewards);
