using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>Inputs shared by the policy losses.</summary>
/// <param name="LogProbs">log π_θ of the sampled tokens under the current policy, <c>(B, A)</c>, requires grad.</param>
/// <param name="OldLogProbs">log μ of the same tokens under the behaviour policy that sampled them, <c>(B, A)</c>, no grad.</param>
/// <param name="Advantages">Advantage per token, <c>(B, A)</c>, no grad.</param>
/// <param name="Mask">1 at real response tokens, 0 at padding, <c>(B, A)</c>.</param>
public sealed record PolicyLossInput(Tensor LogProbs, Tensor OldLogProbs, Tensor Advantages, Tensor Mask);
