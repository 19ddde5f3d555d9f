using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>What an advantage estimator returns.</summary>
/// <param name="Advantages">Advantage per response token, <c>(B, A)</c>, 0 at padding.</param>
/// <param name="Returns">Value targets <c>(B, A)</c> (GAE: advantages + values, 0 at padding), or null for critic-free estimators.</param>
public sealed record AdvantageOutput(Tensor Advantages, Tensor? Returns);
