using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>Inputs of generalized advantage estimation (Schulman et al. 2015, arXiv:1506.02438).</summary>
/// <param name="TokenRewards">Reward at each response token, <c>(B, A)</c>: usually the outcome reward on the last real token plus a per-token KL penalty.</param>
/// <param name="Values">Critic values V(s_t), <c>(B, A)</c>.</param>
/// <param name="ResponseMask">1 at real response tokens, 0 at padding, <c>(B, A)</c>; right-padded (real tokens first).</param>
/// <param name="Gamma">Discount γ.</param>
/// <param name="Lambda">GAE λ.</param>
public sealed record GaeInput(Tensor TokenRewards, Tensor Values, Tensor ResponseMask, double Gamma, double Lambda);
